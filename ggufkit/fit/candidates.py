"""The candidates of a fit: which types, their predicted sizes, and their files.

Each candidate is quantized once, by llama.cpp's own quantizer (quantize/quantizer.py), into the
content-keyed cache beside the conversions of legacy inputs (converters/cache.py: same folder, same
cap, `ggufkit cache` lists them); its name holds a hash of the source's content, the type, the
importance matrix and the llama.cpp version, so a later fit of the same file finds it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ggufkit.errors import BadInputError
from ggufkit.fit import store
from ggufkit.fit.result import Row
from ggufkit.quantize.quant_types import QuantType, quant_type

# The common types, largest first; the IQ2 types need an importance matrix and join when there is one.
LADDER = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S", "IQ4_XS", "Q3_K_M", "IQ3_M", "Q2_K")
WITH_MATRIX = ("IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS")
_UNQUANTIZED = frozenset({"F32", "F16", "BF16", "F64"})

TensorFn = Callable[[int, int, str], None]  # (tensors done, tensor count, tensor name)


def ladder(types: list[str], has_matrix: bool) -> list[QuantType]:
    """The -t types (duplicates once), or the default ladder; checked before any work."""
    names = types or [*LADDER, *(WITH_MATRIX if has_matrix else ())]
    qtypes = list(dict.fromkeys(quant_type(t) for t in names))
    copies = [q.name for q in qtypes if q.only_copy]
    if copies:
        raise BadInputError(f"{copies[0]} only copies the tensors: it is not a quantization to compare")
    needing = [q.name for q in qtypes if q.needs_imatrix]
    if needing and not has_matrix:
        raise BadInputError(f"{', '.join(needing)} need{'s' * (len(needing) == 1)} an importance matrix: pass "
                            "--imatrix FILE or --imatrix-text TEXT|default")
    return qtypes


@dataclass(frozen=True)
class Source:
    path: Path  # as the user named it
    gguf: Path  # what llama.cpp opens: the file, or a legacy file's cached conversion
    key: str  # its content key (converters/cache.content_key)
    quantized: bool  # already quantized: candidates are requantized from it


def open_source(path: Path, on_notice: Callable[[str], None] | None = None) -> Source:
    from ggufkit.converters.cache import content_key
    from ggufkit.runtime.prepare import prepare_model

    prepared = prepare_model(path, on_notice)  # a legacy file is converted once, as `run` does
    quantized = any(t.type_name not in _UNQUANTIZED for t in prepared.gguf.tensors)
    return Source(path, prepared.path, content_key(prepared.path), quantized)


@dataclass(frozen=True)
class Candidate:
    qtype: QuantType
    key: str  # what the file depends on: source content, type, matrix, llama.cpp and ggufkit versions
    file: Path  # its place in the cache

    @property
    def name(self) -> str:
        return self.qtype.name


def candidate(src: Source, qtype: QuantType, matrix_key: str | None) -> Candidate:
    from ggufkit import __version__
    from ggufkit.converters.cache import cache_dir
    from ggufkit.system import llama_cpp_python_version

    k = store.key(src.key, qtype.name, matrix_key, llama_cpp_python_version(), __version__)
    return Candidate(qtype, k, cache_dir() / f"{src.path.stem}-{qtype.name}-{k}.gguf")


def _options(src: Source, imatrix: Path | None, threads: int | None, dry_run: bool = False):
    from ggufkit.quantize.options import QuantizeOptions

    return QuantizeOptions(threads=threads or 0, imatrix=imatrix, allow_requantize=src.quantized, dry_run=dry_run)


def predicted_size(src: Source, cand: Candidate, imatrix: Path | None) -> int:
    """The file size llama.cpp's dry run gives (exact tensor data, estimated header); kept in the store."""
    from ggufkit.quantize.quantizer import quantize_targets

    hit = store.get("size", cand.key)
    if hit is not None:
        return int(hit["bytes"])
    (report,) = quantize_targets(src.gguf, [(cand.qtype, None)], _options(src, imatrix, None, dry_run=True))
    store.put("size", cand.key, {"bytes": report.output_bytes})
    return report.output_bytes


def make(src: Source, cand: Candidate, imatrix: Path | None, threads: int | None,
         on_tensor: TensorFn | None = None) -> Path:
    """The candidate's file, quantized now unless the cache holds it (a hit is marked used)."""
    from ggufkit.fsutil import make_dir
    from ggufkit.quantize.quantizer import quantize_targets

    if cand.file.exists():
        try:
            os.utime(cand.file)  # used now: the last to be evicted
        except OSError:
            pass
        return cand.file
    make_dir(cand.file.parent)
    hook = None if on_tensor is None else (lambda _k, i, n, name: on_tensor(i, n, name))
    quantize_targets(src.gguf, [(cand.qtype, cand.file)], _options(src, imatrix, threads), True, hook)
    return cand.file


def keep_files(source: Path, made: list[tuple[Candidate, Row]], folder: Path) -> None:
    """--keep DIR: each file copied to DIR/STEM-TYPE.gguf, whole or not at all; its row then names the copy."""
    import shutil

    from ggufkit.fsutil import atomic_output, check_output, make_dir

    make_dir(folder)
    for c, row in made:
        out = folder / f"{source.stem}-{c.name}.gguf"
        check_output(out, [source], force=True)  # never the input itself
        with atomic_output(out) as tmp:
            shutil.copyfile(c.file, tmp)
        row.file = str(out)
