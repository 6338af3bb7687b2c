"""One `ggufkit imatrix` call: matrices from --in-file, plus a text run through the model, into one file.

As llama-imatrix: the --in-file matrices are added up first (a .dat file's means times the chunk size),
then the model's sums are added to them; with no model the combination alone is written. Everything that
can be checked is checked before the model loads (the output, the text, the files to combine, and that
they are matrices of this model's tensors). The output appears whole or not at all; Ctrl-C writes what
the whole chunks gave, marked partial.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ggufkit.choices import Choice
from ggufkit.errors import BadInputError


class ImatrixFormat(Choice):
    GGUF = "gguf"
    DAT = "dat"


@dataclass
class ImatrixJob:
    model: Path | None  # None: combine --in-file matrices only
    output: Path
    text: Path | None = None  # None: the built-in text
    ctx: int = 512
    chunks: int | None = None
    threads: int | None = None
    gpu_layers: int | str | None = None
    fmt: ImatrixFormat = ImatrixFormat.GGUF
    in_files: list[Path] = field(default_factory=list)
    process_output: bool = False
    force: bool = False


@dataclass
class ImatrixReport:
    output: str
    format: str
    model: str | None
    datasets: list[str]
    in_files: list[str]
    entries: int
    chunk_size: int
    chunk_count: int  # what the file states (in-file chunks included)
    chunks: int  # chunks of the text gathered in this run
    chunks_total: int  # chunks asked for
    text_tokens: int
    ppl: float | None
    ppl_err: float | None
    tokens_per_second: float | None
    seconds: float | None
    partial: bool
    left_out: list[str] = field(default_factory=list)  # .dat: entries with no data at all

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def run_job(job: ImatrixJob, on_progress: Callable | None = None,
            on_notice: Callable[[str], None] | None = None) -> ImatrixReport:
    from ggufkit.evaluate.text import check_ctx
    from ggufkit.fsutil import check_output
    from ggufkit.imatrix.cache import resolve_text
    from ggufkit.imatrix.files import load_into
    from ggufkit.imatrix.matrix import Matrix

    from ggufkit.runtime.settings import parse_gpu_layers

    check_ctx(job.ctx)
    parse_gpu_layers(job.gpu_layers)  # a bad -ngl fails before any work
    if job.model is None and not job.in_files:
        raise BadInputError("give a model to run the text through, or --in-file matrices to combine")
    inputs = [p for p in (job.model, job.text, *job.in_files) if p is not None]
    check_output(job.output, inputs, job.force)
    matrix = Matrix(job.ctx)
    for path in job.in_files:
        load_into(matrix, path)
    if job.model is None:
        return _write(job, matrix, None, on_notice)
    from ggufkit.imatrix.compute import compute

    body, dataset, _ = resolve_text(job.text)
    done = compute(job.model, body, dataset, ctx=job.ctx, chunks=job.chunks, threads=job.threads,
                   gpu_layers=job.gpu_layers, process_output=job.process_output, start=matrix,
                   on_progress=on_progress, on_notice=on_notice)
    return _write(job, done.matrix, done, on_notice)


def _write(job: ImatrixJob, matrix, done, on_notice) -> ImatrixReport:
    from ggufkit.fsutil import atomic_output
    from ggufkit.imatrix.files import write_dat, write_gguf

    note = f"{done.chunks} of {done.chunks_total} chunks" if done is not None and done.partial else None
    left_out: list[str] = []
    with atomic_output(job.output) as tmp:
        if job.fmt == ImatrixFormat.DAT:
            dataset = matrix.datasets[-1] if matrix.datasets else ""
            left_out = write_dat(tmp, matrix, dataset + (f" (partial: {note})" if note else ""))
        else:
            write_gguf(tmp, matrix, note)
    return ImatrixReport(
        output=str(job.output), format=str(job.fmt), model=None if job.model is None else str(job.model),
        datasets=list(matrix.datasets), in_files=[str(p) for p in job.in_files], entries=len(matrix.entries),
        chunk_size=matrix.chunk_size, chunk_count=matrix.chunk_count,
        chunks=0 if done is None else done.chunks, chunks_total=0 if done is None else done.chunks_total,
        text_tokens=0 if done is None else done.text_tokens,
        ppl=None if done is None else done.ppl, ppl_err=None if done is None else done.ppl_err,
        tokens_per_second=None if done is None else done.tokens_per_second,
        seconds=None if done is None else done.seconds, partial=matrix.partial, left_out=left_out)
