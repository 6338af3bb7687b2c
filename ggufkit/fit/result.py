"""What a fit produces: one row per candidate, the budgets, the choice; as `fit --json` writes it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Budgets:
    max_memory: int | None = None  # bytes: peak resident memory plus GPU memory
    min_speed: float | None = None  # generation tokens/s
    max_kld: float | None = None  # mean KL-divergence from the source, nats

    def given(self) -> bool:
        return any(v is not None for v in (self.max_memory, self.min_speed, self.max_kld))


@dataclass
class Row:
    type: str  # llama-quantize's name, e.g. "Q4_K_M"
    file: str | None = None  # the quantized file (in the cache, or where --keep copied it)
    predicted_size_bytes: int | None = None  # llama.cpp's dry run, when --max-memory asked for it
    size_bytes: int | None = None
    peak_memory_bytes: int | None = None  # peak resident memory of a fresh process at --ctx
    gpu_memory_bytes: int | None = None  # device memory it took (None: nothing offloaded)
    gpu_buffers_bytes: int | None = None  # llama.cpp's own account of its GPU buffers
    pp_tps: float | None = None
    tg_tps: float | None = None
    ppl: float | None = None
    mean_kld: float | None = None
    kld_p99: float | None = None
    same_top: float | None = None
    fits: bool | None = None  # None: not every figure a budget needs was measured (interrupted)
    reason: str = ""
    pareto: bool = False  # on the front of memory against mean KLD
    skipped: bool = False  # not quantized: its predicted file size alone is over --max-memory
    cached: bool = False  # every figure read back from an earlier fit

    @property
    def memory_bytes(self) -> int | None:
        """What --max-memory is compared with."""
        if self.peak_memory_bytes is None:
            return None
        return self.peak_memory_bytes + (self.gpu_memory_bytes or 0)

    @property
    def measured(self) -> bool:
        return self.memory_bytes is not None and self.mean_kld is not None and self.tg_tps is not None


@dataclass
class FitResult:
    source: str  # as the user named it
    text: str  # where the evaluation text came from
    ctx: int
    chunks: int  # chunks scored (0 when every quality figure came from the store)
    budgets: Budgets
    threads: int | None
    gpu_layers: int
    imatrix: str | None
    rows: list[Row] = field(default_factory=list)
    choice: str | None = None
    summary: str = ""  # one sentence: the choice and why, or why there is none
    command: str | None = None  # the `ggufkit quantize` line that makes the chosen file
    base_ppl: float | None = None
    partial: bool = False  # interrupted: the figures measured so far
    seconds: float = 0.0

    def row(self, type_name: str) -> Row | None:
        return next((r for r in self.rows if r.type == type_name), None)

    def as_json(self) -> dict[str, Any]:
        from ggufkit.evaluate.report import json_safe

        data = asdict(self)
        data["candidates"] = [{**asdict(r), "memory_bytes": r.memory_bytes} for r in self.rows]
        del data["rows"]
        return json_safe(data)
