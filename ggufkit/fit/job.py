"""One `ggufkit fit` call: candidates quantized, measured, scored, chosen; every figure kept in the store.

Steps, each skipped where the store already holds its figures: predicted sizes (only with
--max-memory: a candidate whose file alone is over it is never made), the quantized files, memory
and speed per candidate in a fresh child, quality of all of them in one `eval` pass. Ctrl-C stops
the work: what was measured is kept (in the store, and in the result, marked partial).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ggufkit.errors import BadInputError
from ggufkit.fit import store
from ggufkit.fit.measure import Settings
from ggufkit.fit.result import Budgets, FitResult, Row

DEFAULT_CHUNKS = 20


@dataclass
class FitOptions:
    source: Path
    types: list[str] = field(default_factory=list)  # empty: the default ladder
    budgets: Budgets = field(default_factory=Budgets)
    ctx: int = 512
    text: Path | None = None  # None: the text `eval` uses by default
    chunks: int = DEFAULT_CHUNKS
    imatrix: Path | None = None
    imatrix_text: str | None = None  # a file, or "default": a matrix made by `ggufkit.imatrix`
    gpu_layers: int = 0
    threads: int | None = None
    repetitions: int = 3
    keep: Path | None = None

    def check(self) -> None:
        if self.ctx < 16 or self.ctx % 2:
            raise BadInputError(f"--ctx must be an even number of at least 16 tokens, not {self.ctx}")
        for name, v, low in (("--chunks", self.chunks, 1), ("--repetitions", self.repetitions, 1),
                             ("--threads", self.threads or 1, 1)):
            if v < low:
                raise BadInputError(f"{name} must be >= {low}, not {v}")
        b = self.budgets
        for name, v in (("--max-memory", b.max_memory), ("--min-speed", b.min_speed), ("--max-kld", b.max_kld)):
            if v is not None and v < 0:
                raise BadInputError(f"{name} must not be negative, not {v}")
        if self.imatrix is not None and self.imatrix_text is not None:
            raise BadInputError("give --imatrix FILE or --imatrix-text TEXT, not both")


@dataclass
class Progress:
    stage: str  # "size", "quantize", "measure", "eval"
    label: str  # the candidate's type, or the eval's summary
    done: int  # steps of this stage done (tensors, chunks)
    total: int


ProgressFn = Callable[[Progress], None]
NoticeFn = Callable[[str], None]


def run_fit(opts: FitOptions, on_progress: ProgressFn | None = None, on_notice: NoticeFn | None = None) -> FitResult:
    from ggufkit.evaluate.text import load_text
    from ggufkit.fit import candidates as C
    from ggufkit.fit.choose import choose

    opts.check()
    started = time.perf_counter()
    if opts.gpu_layers and not store.build().gpu_offload:
        from ggufkit.system import GPU_INSTALL_ADVICE

        if on_notice is not None:
            on_notice(f"{GPU_INSTALL_ADVICE}: -ngl ignored, measuring on the CPU")
        opts.gpu_layers = 0
    report = on_progress or (lambda p: None)
    src = C.open_source(opts.source, on_notice)
    if src.quantized and on_notice is not None:
        on_notice(f"{opts.source}: already quantized: candidates are requantized from it, at some loss, and "
                  "compared with it")
    body, text_name = load_text(opts.text)
    qtypes = C.ladder(opts.types, opts.imatrix is not None or opts.imatrix_text is not None)
    imatrix = _matrix(opts, src, report)
    matrix_key = None if imatrix is None else _matrix_key(imatrix)
    cands = [C.candidate(src, q, matrix_key) for q in qtypes]
    s = Settings(opts.ctx, opts.threads, opts.gpu_layers, opts.repetitions)
    result = FitResult(str(opts.source), text_name, opts.ctx, 0, opts.budgets, opts.threads, opts.gpu_layers,
                       None if imatrix is None else str(imatrix), [Row(c.name) for c in cands])
    try:
        _measure_all(src, cands, result, imatrix, s, body, opts, report, on_notice)
    except KeyboardInterrupt:
        result.partial = True
    choose(result, result.imatrix)
    _keep_and_evict(src, cands, result, imatrix, opts, report, on_notice)
    result.seconds = time.perf_counter() - started
    return result


def _measure_all(src, cands, result: FitResult, imatrix: Path | None, s: Settings, body: str, opts: FitOptions,
                 report: ProgressFn, on_notice: NoticeFn | None) -> None:
    from ggufkit.fit import candidates as C
    from ggufkit.fit.measure import check_text, quality, speed_and_memory

    machine = store.machine_id()
    text_key = store.text_key(body)
    speed_keys = {c.name: store.key("speed", c.key, s.speed_key(), machine) for c in cands}
    quality_keys = {c.name: store.key("quality", c.key, src.key, text_key, s.ctx, opts.chunks, s.gpu_layers, machine)
                    for c in cands}
    for c, row in zip(cands, result.rows):  # what earlier fits measured
        for kind, keys in (("speed", speed_keys), ("quality", quality_keys)):
            hit = store.get(kind, keys[c.name])
            if hit is not None:
                _fill(row, hit)
        row.cached = row.measured
    live = []  # (candidate, row) still in the running
    for i, (c, row) in enumerate(zip(cands, result.rows)):
        if opts.budgets.max_memory is not None and not row.measured:
            if row.size_bytes is None and c.file.exists():
                row.size_bytes = c.file.stat().st_size
            if row.size_bytes is None:  # llama.cpp's dry run: the file's size without making it
                report(Progress("size", c.name, i, len(cands)))
                row.predicted_size_bytes = C.predicted_size(src, c, imatrix)
            if (row.size_bytes or row.predicted_size_bytes or 0) > opts.budgets.max_memory:
                row.skipped = True
                row.predicted_size_bytes = row.predicted_size_bytes or row.size_bytes
                continue
        live.append((c, row))
    if any(not row.measured for _, row in live):
        check_text(src.gguf, body, s.ctx)
    for c, row in live:  # every file the remaining work needs, quantized once
        if not row.measured:
            report(Progress("quantize", c.name, 0, 1))
            row.file = str(C.make(src, c, imatrix, opts.threads,
                                  lambda d, n, _name, c=c: report(Progress("quantize", c.name, d, n))))
    for c, row in live:
        if row.peak_memory_bytes is None:
            report(Progress("measure", c.name, 0, 1))
            figures = speed_and_memory(Path(row.file or c.file), s,
                                       lambda stage, c=c: report(Progress("measure", f"{c.name} {stage}", 0, 1)))
            store.put("speed", speed_keys[c.name], figures)
            _fill(row, figures)
    todo = [(c, row) for c, row in live if row.mean_kld is None]
    if todo:
        label = f"{len(todo)} candidate{'s' * (len(todo) > 1)}"
        q = quality(src.gguf, [Path(row.file or c.file) for c, row in todo], body, result.text, s, opts.chunks,
                    on_notice, lambda d, n: report(Progress("eval", label, d, n)))
        result.chunks, result.base_ppl, result.partial = q.chunks, q.base_ppl, q.partial
        for (c, row), figures in zip(todo, q.figures):
            if figures is None:  # its pass never ran (interrupted)
                continue
            if not q.partial:  # figures from part of the text are shown, never kept
                store.put("quality", quality_keys[c.name], {**figures, "base_ppl": q.base_ppl, "chunks": q.chunks})
            _fill(row, figures)
    else:  # every figure from the store: the base's PPL and the chunks scored, as they were
        hit = next((h for c, _ in live if (h := store.get("quality", quality_keys[c.name]))), {})
        result.base_ppl, result.chunks = hit.get("base_ppl"), hit.get("chunks", 0)


def _fill(row: Row, figures: dict) -> None:
    for k, v in figures.items():
        if hasattr(row, k) and k not in ("type", "file"):
            setattr(row, k, v)


def _matrix(opts: FitOptions, src, report: ProgressFn) -> Path | None:
    """--imatrix FILE, or one made (or found cached) by `ggufkit.imatrix` from --imatrix-text."""
    if opts.imatrix_text is None:
        return opts.imatrix
    try:
        from ggufkit.imatrix import matrix_for  # issue 22
    except ImportError:
        raise BadInputError("--imatrix-text needs `ggufkit imatrix`, which this ggufkit lacks: pass --imatrix FILE "
                            "(made by llama.cpp's llama-imatrix)") from None
    text = None if opts.imatrix_text == "default" else Path(opts.imatrix_text)
    def progress(p) -> None:  # the imatrix module's progress: chunks done of total
        report(Progress("imatrix", "importance matrix", getattr(p, "chunks", 0), getattr(p, "total", 0)))

    return matrix_for(src.gguf, text, ctx=opts.ctx, chunks=opts.chunks, threads=opts.threads,
                      gpu_layers=opts.gpu_layers, on_progress=progress)


def _matrix_key(path: Path) -> str:
    """The matrix's content key, once it has read as an importance matrix (a bad one fails before any work)."""
    from ggufkit.converters.cache import content_key
    from ggufkit.imatrix.files import read_matrix

    read_matrix(path)
    return content_key(path)


def _keep_and_evict(src, cands, result: FitResult, imatrix: Path | None, opts: FitOptions, report: ProgressFn,
                    on_notice: NoticeFn | None) -> None:
    """--keep DIR: every candidate file there is, and the chosen one at least (made again if it was evicted);
    then the cache back under its cap, the chosen file kept."""
    from ggufkit.converters import cache
    from ggufkit.fit import candidates as C

    by_name = {c.name: c for c in cands}
    chosen = by_name.get(result.choice or "")
    for c, row in zip(cands, result.rows):
        row.file = str(c.file) if c.file.exists() else None
    if opts.keep is not None:
        if chosen is not None and not chosen.file.exists():
            report(Progress("quantize", chosen.name, 0, 1))
            C.make(src, chosen, imatrix, opts.threads)
        C.keep_files(opts.source, [(c, row) for c, row in zip(cands, result.rows) if c.file.exists()], opts.keep)
    removed = cache.evict(cache.max_bytes(), keep=None if chosen is None else chosen.file)
    for c, row in zip(cands, result.rows):
        if row.file == str(c.file) and not c.file.exists():
            row.file = None
    if removed and on_notice is not None:
        on_notice(f"cache: removed {len(removed)} least recently used file(s) to stay under "
                  f"{cache.max_bytes() / (1 << 30):.2f} GiB (GGUFKIT_CACHE_MAX)")
