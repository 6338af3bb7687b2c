"""Run every benchmarks/*_bench.py module's main() in turn (`make bench`, `python -m benchmarks.run [NAME...]`;
`make bench BENCH=NAME` runs those named, among them the on-demand ones such as scale_bench).

Each main() measures ggufkit against a reference in the same run, prints its own line and returns a dict
with at least "met" (was its goal reached). The results go to build/bench/results.json as well.
Exit status: 0 all ran, 1 a benchmark crashed, 3 with --strict when a goal was missed.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover(names: list[str]) -> list[str]:
    """The benchmarks whose names contain one of `names`; with none named, every one but those marked
    `ON_DEMAND = True` (scale_bench: 40 GB of disk and many minutes)."""
    found = sorted(p for p in HERE.glob("*_bench.py"))
    if names:
        return [p.stem for p in found if any(n in p.stem for n in names)]
    return [p.stem for p in found if "\nON_DEMAND = True" not in p.read_text()]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    strict = "--strict" in args
    modules = discover([a for a in args if not a.startswith("-")])
    if not modules:
        print("no benchmark matched", file=sys.stderr)
        return 1
    results: dict[str, object] = {}
    crashed = missed = 0
    for name in modules:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            result = importlib.import_module(f"benchmarks.{name}").main()
        except (Exception, SystemExit) as e:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            results[name] = {"error": f"{type(e).__name__}: {e}"}
            crashed += 1
            continue
        results[name] = result
        if isinstance(result, dict) and result.get("met") is False:
            missed += 1
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    out = Path(os.environ.get("GGUFKIT_BENCH_DIR", "build/bench")) / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"== {len(modules)} benchmark(s): {crashed} crashed, {missed} missed their goal; results in {out}")
    if crashed:
        return 1
    return 3 if strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
