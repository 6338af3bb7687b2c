"""`make_sample`: a sample LLaMA model of any size, file type and format (GGUF or legacy), streamed.

Every way ends in stream.fill: the random rows, drawn in one order, encoded as the format's own tool
encoded them (f16; an era's quantizer; llama.cpp's, whose choices samples/llama_plan.py asks llama.cpp
for) and written where they belong, so memory stays flat at any size (7B: a few hundred MB) and the
bytes are those the first, whole-model writers made (tests/test_samples.py holds their digests).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from gguf.constants import GGMLQuantizationType as T

from ggufkit.errors import BadInputError, GgufkitError
from ggufkit.families import llama
from ggufkit.formats.ggml_types import LEGACY_FTYPES
from ggufkit.fsutil import atomic_output, check_output
from ggufkit.quantize.quant_types import quant_type
from ggufkit.samples import llama_plan
from ggufkit.samples.legacy import MAX_PARTS, check_split, era_type, hparams, legacy_tensor, llama_vocab, open_legacy
from ggufkit.samples.model import SIZES, SampleSpec, write_gguf
from ggufkit.samples.stream import Encoder, f16_rows, f32_rows, fill, random_rows
from ggufkit.samples.vocab import build_vocab
from ggufkit.units import human_bytes

# sample format -> (container, version) of the legacy files; GGJT v3 holds today's blocks
LEGACY_FORMATS = {"ggml": ("GGML", None), "ggmf": ("GGMF", 1), "ggjt1": ("GGJT", 1), "ggjt2": ("GGJT", 2),
                  "ggjt3": ("GGJT", 3)}
FORMATS = ("gguf", *LEGACY_FORMATS)
ERA_ONLY = ("q4_2", "q4_3")  # types of GGJT v1 alone, quantized by its own arithmetic
Typed = Callable[[str, tuple[int, ...]], tuple[int, Encoder]]  # (GGUF name, numpy shape) -> (type, encoder)


def part_paths(out: Path, parts: int) -> list[Path]:
    """A multi-part model's files as the first converters named them: NAME, NAME.1, NAME.2, ..."""
    return [out if k == 0 else Path(f"{out}.{k}") for k in range(parts)]


def make_sample(out: Path, type_name: str = "f16", fmt: str = "gguf", size: str | SampleSpec = "tiny",
                seed: int = 0, force: bool = False, parts: int = 1,
                on_progress: Callable[[int, int], None] | None = None) -> Path:
    """Write a random-weight LLaMA model; quantized types go through llama.cpp's quantizer, or for the
    formats before GGJT v3 through that era's own quantizer (q4_2 and q4_3 exist only in ggjt1).
    `parts` > 1: a legacy model in that many files (OUT, OUT.1, ...), as 13B and larger ones were.
    `on_progress(bytes done, bytes in all)` is called as the data is written."""
    spec = size if isinstance(size, SampleSpec) else SIZES.get(size)
    if spec is None:
        raise BadInputError(f"unknown sample size {size!r} (choose from {', '.join(SIZES)})")
    if fmt not in FORMATS:
        raise BadInputError(f"unknown sample format {fmt!r} (choose from {', '.join(FORMATS)})")
    type_name = type_name.lower()
    if fmt != "gguf" and out.suffix.lower() == ".gguf":
        raise BadInputError(f"a {fmt} file is not GGUF: give it another name (its era's were .bin)", out)
    if not 1 <= parts <= MAX_PARTS:
        raise BadInputError(f"--parts must be between 1 and {MAX_PARTS}, not {parts}")
    if parts > 1 and fmt == "gguf":
        raise BadInputError("--parts makes the multi-part legacy files of 2023 (--format ggml, ggmf, ggjt1, "
                            "ggjt2, ggjt3); GGUF files are split with llama-gguf-split")
    _check_type(type_name, fmt)
    paths = part_paths(out, parts)
    for p in paths:
        check_output(p, [], force)
    stray = Path(f"{out}.{parts}")
    if stray.exists():
        raise BadInputError(f"lies beside the output, and a reader would take it for part {parts + 1}: remove it", stray)
    with tempfile.TemporaryDirectory(prefix=".ggufkit-sample-", dir=out.parent) as work:  # llama_plan's proxy
        write = _plan(spec, type_name, fmt, seed, Path(work), parts)
        need = write.nbytes
        free = shutil.disk_usage(out.parent).free
        if need > free:
            raise GgufkitError(f"needs {human_bytes(need)} of disk, {human_bytes(free)} free", out.parent)
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            if on_progress is not None:
                on_progress(done, need)

        with ExitStack() as stack:
            tmps = [stack.enter_context(atomic_output(p)) for p in paths]  # all appear, the first last
            write.write(tmps, progress)
    return out


@dataclass(frozen=True)
class _Writer:
    """A sample ready to write: its bytes (for the disk check), and how to write them to the part paths."""

    nbytes: int
    write: Callable[[list[Path], Callable[[int], None]], None]


def _check_type(type_name: str, fmt: str) -> None:
    """Refuse a type the format never held, before any work."""
    if fmt in LEGACY_FORMATS and fmt != "ggjt3" or type_name in ERA_ONLY:
        era_type(*LEGACY_FORMATS.get(fmt, ("GGJT", 3)), type_name)  # q4_2, q4_3: "only in GGJT v1"
    else:
        quant_type(type_name)


def _plan(spec: SampleSpec, type_name: str, fmt: str, seed: int, work: Path, parts: int) -> _Writer:
    container, version = LEGACY_FORMATS.get(fmt, ("GGUF", None))
    if fmt in LEGACY_FORMATS and fmt != "ggjt3":
        target, ftype, encode = era_type(container, version, type_name)
        return _legacy(spec, seed, container, version, ftype, parts,
                       lambda _n, shape: (target, encode) if len(shape) == 2 else (T.F32, f32_rows))
    qtype = quant_type(type_name)
    if qtype.main_type in (T.F32, T.F16) and not qtype.only_copy and qtype.name != "BF16":
        f16 = qtype.main_type == T.F16
        if fmt == "gguf":
            nbytes = sum(2 * math.prod(s) if f16 and len(s) == 2 else 4 * math.prod(s) for _, s in spec.shapes())
            return _Writer(nbytes, lambda paths, progress: write_gguf(paths[0], spec, f16, seed, on_progress=progress))
        return _legacy(spec, seed, container, version, qtype.ftype, parts,
                       lambda _n, shape: (T.F16, f16_rows) if f16 and len(shape) == 2 else (T.F32, f32_rows))
    plan = llama_plan.plan(spec, qtype, work, seed)
    tensors = llama_plan.planned_tensors(spec, plan)
    if fmt == "gguf":
        return _Writer(sum(t.nbytes for t in tensors.values()),
                       lambda paths, progress: llama_plan.write_gguf(paths[0], spec, plan, seed, progress))
    if plan.ftype not in LEGACY_FTYPES:
        raise BadInputError(f"GGJT v3 files had no {qtype.name} type (a GGML-era file type: f32, f16, q4_0, q4_1, "
                            "q5_0, q5_1, q8_0 or a k-quant)")
    return _legacy(spec, seed, container, version, plan.ftype, parts,
                   lambda n, _shape: (tensors[n].ggml_type, llama_plan.encoder(tensors[n].ggml_type)))


def _legacy(spec: SampleSpec, seed: int, container: str, version: int | None, ftype: int, parts: int,
            typed: Typed) -> _Writer:
    """A LLaMA legacy file in `parts` parts from the random stream, each tensor typed by `typed`."""
    names = llama.gguf_to_legacy(spec.n_layer)
    tensors, encoders = [], {}
    for name, shape in spec.shapes():
        ggml_type, encoders[name] = typed(name, shape)
        tensors.append(legacy_tensor(names[name], ggml_type, tuple(reversed(shape)), container, version))
    check_split(tensors, parts, container, version)

    def write(paths: list[Path], on_progress: Callable[[int], None] | None) -> None:
        vocab = llama_vocab(*build_vocab(spec.n_vocab, seed))
        hp = hparams(spec.n_vocab, spec.n_embd, spec.n_head, spec.n_layer, spec.n_ff, ftype)
        with ExitStack() as stack:
            dests = open_legacy(paths, hp, vocab, tensors, container, version, stack)
            fill(random_rows(spec.shapes(), seed), {n: (dests[names[n]], e) for n, e in encoders.items()}, on_progress)

    return _Writer(sum(t.nbytes for t in tensors), write)
