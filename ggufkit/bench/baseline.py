"""The CI gate: compare a run's pp/tg speeds with a saved JSON run, row by matching row.

Rows match on (model file name, GPU layers, mmap, threads, batch, context, -p, -n). A figure regresses
when it is more than `max_regression` percent below the baseline's; rows without a match are listed,
never failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ggufkit.bench.results import SCHEMA_VERSION, BenchRun, Row
from ggufkit.errors import BadInputError

KEY_FIELDS = ("model", "backend", "gpu_layers", "mmap", "threads", "batch", "ctx", "n_prompt", "n_gen")
METRICS = ("pp", "tg")


@dataclass
class Change:
    label: str
    metric: str  # "pp512", "tg128"
    baseline_tps: float
    tps: float
    regressed: bool

    @property
    def change_pct(self) -> float:
        return (self.tps - self.baseline_tps) / self.baseline_tps * 100


@dataclass
class Comparison:
    baseline: str
    max_regression: float
    changes: list[Change] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # rows of this run the baseline lacks (or that failed)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regressed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline, "max_regression_pct": self.max_regression,
            "changes": [{"row": c.label, "metric": c.metric, "baseline_tps": c.baseline_tps, "tps": c.tps,
                         "change_pct": round(c.change_pct, 2), "regressed": c.regressed} for c in self.changes],
            "unmatched": self.unmatched,
        }


def load_baseline(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError("baseline file not found", path) from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BadInputError(f"not a readable JSON bench run ({e})", path) from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or "schema_version" not in data:
        raise BadInputError("not a `ggufkit bench --format json` run (no schema_version and rows)", path)
    if data["schema_version"] != SCHEMA_VERSION:
        raise BadInputError(f"bench schema_version {data['schema_version']} is not {SCHEMA_VERSION}", path)
    rows = [r for r in data["rows"] if isinstance(r, dict) and all(k in r for k in KEY_FIELDS)]
    if len(rows) != len(data["rows"]):
        raise BadInputError(f"a row lacks one of {', '.join(KEY_FIELDS)}", path)
    return rows


def compare(run: BenchRun, baseline_rows: list[dict[str, Any]], max_regression: float, baseline_name: str) -> Comparison:
    if max_regression < 0:
        raise BadInputError(f"--max-regression must be >= 0, not {max_regression}")
    saved = {tuple(r[k] for k in KEY_FIELDS): r for r in baseline_rows}
    cmp = Comparison(baseline_name, max_regression)
    floor = 1 - max_regression / 100
    for row in run.rows:
        old = saved.get(_key(row))
        if old is None or row.error:
            cmp.unmatched.append(row.label() + (" (failed)" if row.error else ""))
            continue
        for metric in METRICS:
            new_tps, old_tps = getattr(row, f"{metric}_tps"), old.get(f"{metric}_tps")
            if new_tps is None or not isinstance(old_tps, (int, float)) or old_tps <= 0:
                continue
            n = row.n_prompt if metric == "pp" else row.n_gen
            cmp.changes.append(Change(row.label(), f"{metric}{n}", float(old_tps), new_tps, new_tps < old_tps * floor))
    return cmp


def _key(row: Row) -> tuple:
    return tuple(getattr(row, k) for k in KEY_FIELDS)
