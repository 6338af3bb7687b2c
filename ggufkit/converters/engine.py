"""The one conversion engine: a legacy file (reader) + its family (mapping) + block repackers -> GGUF.

Each tensor gets one plan: copy (today's blocks: bytes unchanged, copied in the kernel), repack (an older
block layout rearranged into today's: nibble order and/or f32 -> f16 scales), or requantize (a removed
type, dequantized and quantized again by llama.cpp). gguf-py's GGUFWriter writes the header, key/values
and tensor table; the data section is written by datapath.py, a slice of rows at a time by a few
workers, so memory stays flat and the disk sets the pace whatever the model size.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf.constants import Keys

from ggufkit.converters import requantize
from ggufkit.converters.tokenizer import add_vocab
from ggufkit.converters.datapath import write_data
from ggufkit.converters.metadata import ConvertOptions, Resolved, resolve
from ggufkit.errors import BadInputError
from ggufkit.families.base import Geometry
from ggufkit.formats.ggml_types import LEGACY_FTYPES, TensorInfo, ftype_name
from ggufkit.formats.legacy import LegacyModel, not_that_family, read_legacy
from ggufkit.formats.legacy import blocks
from ggufkit.formats.legacy.parts import RowReader
from ggufkit.fsutil import atomic_output, check_output, check_split_outputs

ProgressFn = Callable[[int], None]  # called with the number of input bytes just converted


@dataclass(frozen=True)
class TensorPlan:
    src: TensorInfo
    name: str  # GGUF name
    layout: blocks.Layout  # how the source stores it
    out_type: int
    out_nbytes: int
    action: str  # "copy" | "repack" | "requantize"
    rows: np.ndarray | None = None  # source row of each output row (a fused tensor llama.cpp lays out otherwise)


class Cancelled(Exception):
    """A batch was interrupted: the conversion stopped between two chunks, and its output was not written."""


class NotConvertible(BadInputError):
    """A legacy model of a family current llama.cpp cannot run (`inspect` only): a batch skips it."""

    def __init__(self, model: LegacyModel):
        super().__init__(f"{model.family.name} ({model.label}): cannot convert: {model.family.why_not}", model.path)
        self.why = model.family.why_not or ""


@dataclass
class ConvertReport:
    """One file's conversion: `convert --json` prints it for one file, and a list of them for a batch (one
    schema), where skipped and failed files carry their status and message and empty figures."""

    input: str
    output: str
    status: str = "converted"  # "converted" | "skipped" | "failed"
    message: str = ""  # why it was skipped or failed
    file_type: str | None = None
    tensors: int = 0
    bytes: int = 0
    seconds: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)  # what the legacy file lacked, and where it came from
    conversion: dict[str, Any] = field(default_factory=dict)  # source format, what happened to the blocks, loss
    verified: dict[str, Any] | None = None  # --verify: what was compared and the largest difference
    warnings: list[str] = field(default_factory=list)  # e.g. an unknown file type in the header
    shards: list[str] = field(default_factory=list)  # --split-max-size: every file written (output is the first)


def default_name(src: Path) -> str:
    """general.name of a conversion without --name: the input's file name up to its first dot."""
    return src.name.split(".")[0]


def open_convertible(src: Path, options: ConvertOptions | None = None) -> tuple[LegacyModel, Geometry]:
    """Read and validate a legacy file that `convert` can turn into GGUF, with one clear error otherwise
    (the reader itself says so of a GGUF file: the file is not sniffed first)."""
    family = options.family if options is not None else None
    m = read_legacy(src, family)
    if m.family.arch is None:
        raise NotConvertible(m)
    try:
        return m, m.family.geometry(m, {"gqa": options.gqa if options else None, "forced": family is not None})
    except BadInputError as e:
        raise (None if family is None else not_that_family(src, family, "the tensors are")) or e from None


def plan(m: LegacyModel, geo: Geometry, target: int | None = None) -> list[TensorPlan]:
    plans = []
    for t in m.tensors:
        lay = blocks.layout(m.qversion, t.ggml_type)
        assert lay is not None  # the reader refused types the file's era did not have
        if lay.today is None:
            out = target if target is not None else requantize.DEFAULT_TARGET[t.ggml_type]
            action = "requantize"
        else:
            out, action = lay.today, "copy" if lay.repack is None else "repack"
        nbytes = requantize.row_bytes(gguf.GGMLQuantizationType(out), t.shape[0]) * (t.n_elements // t.shape[0])
        plans.append(TensorPlan(t, geo.names[t.name], lay, out, nbytes, action, geo.rows.get(t.name)))
    return plans


@dataclass(frozen=True)
class Prepared:
    """Everything checked and planned before a byte is written (`convert --dry-run` stops here)."""

    model: LegacyModel
    geometry: Geometry
    meta: Resolved
    plans: list[TensorPlan]
    n_head_kv: int


def prepare(src: Path, out: Path, options: ConvertOptions, force: bool = False,
            opened: tuple[LegacyModel, Geometry] | None = None, check_out: bool = True) -> Prepared:
    m, geo = opened or open_convertible(src, options)
    meta = resolve(options, m.family.defaults, m.family.config_keys, geo.from_file)
    # families without grouped-query attention write no head_count_kv: llama.cpp then uses head_count
    n_head_kv = geo.kv.get(Keys.Attention.HEAD_COUNT_KV, geo.kv.get(Keys.Attention.HEAD_COUNT))
    if meta.n_head_kv is not None and options.gqa is None and meta.n_head_kv != n_head_kv:
        raise BadInputError(f"config.json says {meta.n_head_kv} KV heads, the K projection holds {n_head_kv}", src)
    plans = plan(m, geo, requantize.target(options.requantize_to))
    if check_out and options.split_max_size is None:
        check_output(out, [src, *(Path(p.path) for p in m.parts)], force)
    elif check_out:
        check_split_outputs(out, force)
    return Prepared(m, geo, meta, plans, int(n_head_kv))


def convert_legacy(src: Path, out: Path, options: ConvertOptions | None = None, force: bool = False,
                   on_progress: ProgressFn | None = None, opened: tuple[LegacyModel, Geometry] | None = None,
                   cancel: threading.Event | None = None) -> ConvertReport:
    """Convert `src` to `out` (whole or not at all). `cancel`, once set (from another thread), stops the
    conversion at its next chunk of rows by raising Cancelled."""
    options = options or ConvertOptions()
    on_progress = _cancellable(on_progress, cancel)
    started = time.perf_counter()
    ready = prepare(src, out, options, force, opened)
    m, geo, meta, plans, n_head_kv = ready.model, ready.geometry, ready.meta, ready.plans, ready.n_head_kv
    conversion = conversion_summary(m, plans)
    verified = None
    tokenizer: dict[str, str] = {}

    def produce(tmp: Path) -> float | None:
        nonlocal verified
        scale_change = _write(m, geo, meta, options, plans, conversion, src, tmp, on_progress, tokenizer)
        if options.verify:
            from ggufkit.converters.verify import verify

            verified = verify(m, plans, tmp, None if on_progress is None else lambda: on_progress(0))
        if cancel is not None and cancel.is_set():  # not named, then: its fsync alone may take seconds
            raise Cancelled
        return scale_change

    shards: list[Path] = []
    if options.split_max_size is None:
        with atomic_output(out) as tmp:
            scale_change = produce(tmp)
    else:
        from ggufkit.surgery.split import split_written  # the splitter: headers and kernel copies only

        scale_change, shards = split_written(produce, out, options.split_max_size, force)
    if scale_change is not None:
        conversion["max_scale_change"] = scale_change
    file_type = ftype_name(file_type_of(m, plans))
    warnings = [] if m.ftype in LEGACY_FTYPES else [
        f"the header's file type {m.ftype} is unknown to llama.cpp: wrote {file_type}, what the tensors hold"]
    return ConvertReport(
        str(src), str(shards[0] if shards else out), file_type=file_type, tensors=len(m.tensors),
        bytes=sum(p.out_nbytes for p in plans),
        seconds=time.perf_counter() - started,
        metadata={"context_length": meta.context_length, _eps_name(m): meta.eps, "eps_name": _eps_name(m),
                  "rope_freq_base": meta.rope_freq_base, "head_count_kv": n_head_kv, "sources": meta.sources,
                  "tokenizer": tokenizer},
        conversion=conversion, verified=verified, warnings=warnings, shards=[str(p) for p in shards],
    )


def _cancellable(on_progress: ProgressFn | None, cancel: threading.Event | None) -> ProgressFn | None:
    """The progress callback, called after every chunk, is where a cancelled conversion stops."""
    if cancel is None:
        return on_progress

    def step(n: int) -> None:
        if cancel.is_set():
            raise Cancelled
        if on_progress is not None:
            on_progress(n)

    return step


def _eps_name(m: LegacyModel) -> str:
    return "rms_norm_eps" if m.family.eps_key == Keys.Attention.LAYERNORM_RMS_EPS else "layer_norm_eps"


def conversion_summary(m: LegacyModel, plans: list[TensorPlan]) -> dict[str, Any]:
    counts = {a: sum(p.action == a for p in plans) for a in ("copy", "repack", "requantize")}
    losses = {p.layout.loss for p in plans if p.action != "copy"}
    loss = next((x for x in (blocks.REQUANTIZED, blocks.F16_SCALES) if x in losses), blocks.EXACT)
    requantized = sorted({f"{p.layout.name}->{blocks.era_type_name(p.out_type)}" for p in plans
                          if p.action == "requantize"})
    return {"source": m.label, "family": m.family.name, "quantization_version": m.qversion,
            "parts": max(1, len(m.parts)), "copied": counts["copy"], "repacked": counts["repack"],
            "requantized": counts["requantize"], "requantized_types": requantized, "loss": loss,
            "permuted": sum(p.rows is not None for p in plans),
            "max_scale_change": None,
            "vocab_scores": "file" if m.has_scores or m.family.tokenizer != "spm" else "reconstructed from token order"}


def file_type_of(m: LegacyModel, plans: list[TensorPlan]) -> int:
    """The header's file type, unless the tensors say otherwise (requantized, or a type no llama.cpp knew)."""
    if any(p.action == "requantize" for p in plans) or m.ftype not in LEGACY_FTYPES:
        return _common_ftype(plans, m.ftype)
    return m.ftype


def _common_ftype(plans: list[TensorPlan], fallback: int) -> int:
    types = [p.out_type for p in plans if len(p.src.shape) == 2]
    most = max(set(types), key=types.count) if types else None
    return requantize.FTYPE_OF.get(most, fallback) if most is not None else fallback


def _write(m: LegacyModel, geo: Geometry, meta: Resolved, options: ConvertOptions, plans: list[TensorPlan],
           conversion: dict[str, Any], src: Path, tmp: Path, on_progress: ProgressFn | None,
           tokenizer: dict[str, str]) -> float | None:
    arch = m.family.arch
    assert arch is not None
    ftype = file_type_of(m, plans)
    w = gguf.GGUFWriter(tmp, arch)
    w.add_name(options.name or default_name(src))
    lossy = f" ({', '.join(conversion['requantized_types'])} requantized)" if conversion["requantized"] else ""
    w.add_description(options.description or f"converted from legacy {m.label} {ftype_name(m.ftype)} by ggufkit{lossy}")
    w.add_file_type(ftype)
    if any(p.out_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) for p in plans):
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if conversion["loss"] != blocks.EXACT:
        w.add_string("ggufkit.conversion", f"{m.label} -> GGUF: {conversion['loss']}{lossy}")
    w.add_context_length(meta.context_length)
    for key, value in geo.kv.items():
        _add(w, key.format(arch=arch), value)
    w.add_float32(m.family.eps_key.format(arch=arch), meta.eps)
    if meta.rope_freq_base is not None:
        w.add_rope_freq_base(meta.rope_freq_base)
    tokenizer.update(add_vocab(w, m, options))
    for p in plans:
        # GGUFWriter takes numpy (outermost-first) shapes and writes them reversed, i.e. ne0 first again
        w.add_tensor_info(p.name, tuple(reversed(p.src.shape)), np.dtype(np.float32), p.out_nbytes, raw_dtype=p.out_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None
    fout = w.fout[0]
    fout.flush()
    with RowReader(m) as reader:
        worst = write_data(reader, plans, fout.fileno(), fout.tell(), on_progress)
    w.close()
    return worst


def _add(w: gguf.GGUFWriter, key: str, value: int | float | bool) -> None:
    if isinstance(value, bool):
        w.add_bool(key, value)
    elif isinstance(value, int):
        w.add_uint32(key, value)
    else:
        w.add_float32(key, value)
