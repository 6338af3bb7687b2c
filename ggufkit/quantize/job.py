"""One `ggufkit quantize` call, from what the user typed to one report per target type.

The llama.cpp child (quantizer.CHILD) is started first, before this process imports gguf and numpy to
parse and check everything; its own imports (llama_cpp, ~0.3 s) overlap ours, and it sees no file until
every check has passed (it is cancelled if one fails). That is why this module imports only light
modules at its top (and `ggufkit quantize --help` stays fast).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ggufkit.errors import BadInputError
from ggufkit.fsutil import make_dir
from ggufkit.names import child_name
from ggufkit.quantize import CHILD

if TYPE_CHECKING:
    from ggufkit.quantize.quant_types import QuantType
    from ggufkit.quantize.report import QuantizeReport
    from ggufkit.runtime.params import LoadParams

# (target type name, tensors done, tensor count, tensor name)
TypeTensorFn = Callable[[str, int, int, str], None]


@dataclass
class QuantizeJob:
    """A quantize call as given: type names and specs as typed, parsed and checked by run_job."""

    model: Path | None
    types: list[str]  # q4_k_m, Q8_0, ... (case-insensitive; duplicates count once)
    output: Path | None = None  # one type only
    out_dir: Path | None = None  # NAME-TYPE.gguf files here (default: beside the input)
    force: bool = False
    threads: int = 0  # 0: every hardware thread
    allow_requantize: bool = False
    leave_output_tensor: bool = False
    pure: bool = False
    output_tensor_type: str | None = None  # a ggml type name
    token_embedding_type: str | None = None
    tensor_types: list[str] = field(default_factory=list)  # PATTERN=TYPE
    imatrix: Path | None = None
    imatrix_text: str | None = None  # a text file, or "default"
    imatrix_chunks: int | None = None
    gpu_layers: int | str | None = None  # for --imatrix-text's matrix
    kv_overrides: list[str] = field(default_factory=list)  # KEY=TYPE:VALUE
    dry_run: bool = False
    keep_split: bool = False
    split_max_size: int | None = None  # bytes


def run_job(job: QuantizeJob, on_tensor: TypeTensorFn | None = None,
            on_notice: Callable[[str], None] | None = None,
            on_done: Callable[[QuantizeReport], None] | None = None,
            on_imatrix: Callable[[Any], None] | None = None) -> list[QuantizeReport]:
    """One report per type; `on_done` hears of each output as it is finished, `on_imatrix` of the chunks of
    --imatrix-text's matrix."""
    if job.model is None:
        raise BadInputError("missing the input model (see `ggufkit quantize --help`)")
    if not job.types:
        raise BadInputError("no target type: pass -t TYPE (see `ggufkit quantize --list`)")
    from ggufkit.runtime.child import StartedChild

    started = StartedChild(CHILD)
    try:
        from ggufkit.quantize.options import QuantizeOptions, ggml_type, parse_override_kv, parse_tensor_type
        from ggufkit.quantize.quant_types import quant_type
        from ggufkit.quantize.quantizer import quantize_targets

        qtypes = list(dict.fromkeys(quant_type(t) for t in job.types))
        options = QuantizeOptions(
            threads=job.threads, allow_requantize=job.allow_requantize,
            leave_output_tensor=job.leave_output_tensor, pure=job.pure,
            output_tensor_type=None if job.output_tensor_type is None else ggml_type(job.output_tensor_type),
            token_embedding_type=None if job.token_embedding_type is None else ggml_type(job.token_embedding_type),
            tensor_types=[parse_tensor_type(s) for s in job.tensor_types], imatrix=job.imatrix,
            imatrix_text=job.imatrix_text, imatrix_chunks=job.imatrix_chunks, imatrix_gpu_layers=job.gpu_layers,
            kv_overrides=[parse_override_kv(s) for s in job.kv_overrides], dry_run=job.dry_run,
            keep_split=job.keep_split, split_max_size=job.split_max_size,
        )
        targets = list(zip(qtypes, output_paths(job.model, qtypes, job.output, job.out_dir, job.dry_run)))
        hook = None if on_tensor is None else (lambda k, i, n, name: on_tensor(qtypes[k].name, i, n, name))
        return quantize_targets(job.model, targets, options, job.force, hook, on_notice, started, on_done,
                                on_imatrix)
    finally:
        started.cancel()


def output_paths(model: Path, qtypes: list[QuantType], output: Path | None, out_dir: Path | None,
                 dry_run: bool) -> list[Path | None]:
    """Where each type goes: `output` (one type), else OUT_DIR/NAME-TYPE.gguf (beside the input by default),
    NAME being the input's name without its own type; None on a dry run with neither."""
    if output is not None and output.is_dir() and out_dir is None:
        output, out_dir = None, output  # -o DIR: into that folder, named as --out-dir names them
    if output is not None:
        if out_dir is not None:
            raise BadInputError("give -o or --out-dir, not both")
        if len(qtypes) > 1:
            raise BadInputError("-o names one file: with several types use --out-dir DIR (files NAME-TYPE.gguf)")
        if not dry_run:
            make_dir(output.parent)  # -o new/x.gguf: the folder is made, as --out-dir's is
        return [output]
    if out_dir is None and dry_run:
        return [None] * len(qtypes)
    if out_dir is not None and not dry_run:
        make_dir(out_dir)  # a new folder, as users expect of --out-dir
    from ggufkit.quantize.quant_types import ALIASES, QUANT_TYPES

    where = out_dir if out_dir is not None else model.parent
    known = [*(t.name for t in QUANT_TYPES), *ALIASES]
    return [where / child_name(model, q.name, known) for q in qtypes]


QUALITY_KEYS = ("ppl", "ppl_err", "kld_mean", "kld_err", "kld_p99", "same_top", "dp_rms", "ln_ppl_ratio")


def add_quality(job: QuantizeJob, reports: list[QuantizeReport], text: Path | None, ctx: int = 512,
                chunks: int | None = None, load: LoadParams | None = None, on_notice: Callable[[str], None] | None = None,
                on_chunk: Callable[[int, int], None] | None = None) -> str:
    """`quantize --eval`: each output scored against the input in one `eval` pass; returns the text's name."""
    from ggufkit.evaluate.perplexity import evaluate
    from ggufkit.evaluate.text import load_text

    outputs = [r for r in reports if r.outputs]  # a split output is read from its first shard
    if not outputs:
        raise BadInputError("--eval needs written outputs (not --dry-run)")
    body, name = load_text(text)
    assert job.model is not None
    result = evaluate([job.model, *(Path(r.outputs[0]) for r in outputs)], body, name, ctx, chunks, load,
                      on_notice=on_notice, on_chunk=on_chunk)
    for r, m in zip(outputs, result.models[1:]):
        v = m.vs_base or {}
        r.quality = {"ppl": m.ppl, "ppl_err": m.ppl_err, "base_ppl": result.models[0].ppl,
                     **{k: v[k] for k in QUALITY_KEYS if k in v}, "chunks": result.chunks, "ctx": ctx}
    return name
