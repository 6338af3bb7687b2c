"""ggml tensor types and llama file types, from gguf-py's constants, plus the legacy-era subsets."""

from __future__ import annotations

from dataclasses import dataclass

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from ggufkit.errors import BadInputError

# llama_ftype values of the GGML era (4 = Q4_1_SOME_F16 included: such files exist; 5, 6 = Q4_2, Q4_3 of April 2023).
LEGACY_FTYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_1_SOME_F16", 5: "Q4_2", 6: "Q4_3", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
}


def type_name(t: int) -> str:
    try:
        return GGMLQuantizationType(t).name
    except ValueError:
        return f"type{t}"


def ftype_name(ftype: int | None) -> str | None:
    if ftype is None:
        return None
    try:
        name = LlamaFileType(ftype).name
    except ValueError:
        return LEGACY_FTYPES.get(ftype, f"ftype{ftype}")
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def tensor_nbytes(ggml_type: int, shape: tuple[int, ...], path: str, name: str) -> int:
    """Bytes of a tensor of `shape` (ne0 first) in today's layouts; raises if the type is unknown or rows don't fit blocks."""
    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise BadInputError(f"tensor {name!r} has unknown type {ggml_type}", path) from None
    return blocks_nbytes(block, size, type_name(ggml_type), shape, path, name)


def blocks_nbytes(block: int, size: int, label: str, shape: tuple[int, ...], path: str, name: str) -> int:
    """Bytes of `shape` in blocks of `block` elements of `size` bytes, checking that rows hold whole blocks."""
    if not shape or any(d <= 0 for d in shape):
        raise BadInputError(f"tensor {name!r} has a non-positive dimension {list(shape)}", path)
    if shape[0] % block:
        raise BadInputError(f"tensor {name!r}: row length {shape[0]} is not a multiple of the {label} block ({block})", path)
    n = 1
    for d in shape:
        n *= d
    # Python ints don't overflow, but a crafted shape can still claim absurd sizes: callers compare with the file size.
    return n // block * size


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a model file, as its header describes it (GGUF and legacy alike)."""

    name: str
    ggml_type: int
    shape: tuple[int, ...]  # ne0 (the contiguous row length) first, as on disk
    offset: int  # absolute file offset of the data
    nbytes: int

    @property
    def type_name(self) -> str:
        return type_name(self.ggml_type)

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n
