"""llama-quantize's options, parsed and checked the way tools/quantize/quantize.cpp reads them."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from gguf.constants import GGMLQuantizationType

from ggufkit.errors import BadInputError

KV_TYPES = ("int", "float", "bool", "str")
_KEY_MAX = 127  # llama_model_kv_override.key is char[128]
_STR_MAX = 127  # .val_str is char[128]


@dataclass(frozen=True)
class KvOverride:
    key: str
    kind: str  # one of KV_TYPES
    value: int | float | bool | str


@dataclass
class QuantizeOptions:
    threads: int = 0  # 0: llama.cpp uses every hardware thread
    allow_requantize: bool = False
    leave_output_tensor: bool = False
    pure: bool = False
    output_tensor_type: int | None = None  # ggml_type
    token_embedding_type: int | None = None
    tensor_types: list[tuple[str, int]] = field(default_factory=list)  # (regex on tensor names, ggml_type)
    imatrix: Path | None = None
    imatrix_text: str | None = None  # compute the matrix on this text ("default": the built-in one), cached
    imatrix_chunks: int | None = None
    imatrix_gpu_layers: int | str | None = None  # -ngl for computing it
    kv_overrides: list[KvOverride] = field(default_factory=list)
    dry_run: bool = False
    keep_split: bool = False
    split_max_size: int | None = None  # bytes of tensor data per shard: the output is split (surgery.split)


# ggml types llama.cpp cannot quantize to: llama-quantize accepts their names, then aborts mid-file.
_NOT_TARGETS = frozenset(GGMLQuantizationType[n] for n in ("Q8_1", "Q8_K", "I8", "I16", "I32", "I64", "F64"))


def ggml_type(name: str) -> int:
    """A ggml tensor type to quantize to, by its name (q4_K, q8_0, f16, iq4_xs...), case-insensitive."""
    key = name.strip().upper()
    names = [t.name for t in GGMLQuantizationType if t not in _NOT_TARGETS]
    if key in GGMLQuantizationType.__members__ and key not in names:
        raise BadInputError(f"llama.cpp cannot quantize tensors to {name!r} (choose from {', '.join(n.lower() for n in names)})")
    try:
        return int(GGMLQuantizationType[key])
    except KeyError:
        close = difflib.get_close_matches(key, names, n=4, cutoff=0.5)
        hint = f" (did you mean {', '.join(c.lower() for c in close)}?)" if close else ""
        raise BadInputError(f"unknown tensor type {name!r}{hint}") from None


def parse_tensor_type(spec: str) -> tuple[str, int]:
    """`PATTERN=TYPE` -> (lower-cased pattern, ggml_type); the pattern is a regex searched in tensor names."""
    pattern, sep, type_ = spec.partition("=")
    if not sep or not pattern or not type_:
        raise BadInputError(f"--tensor-type wants PATTERN=TYPE (e.g. attn_q=q8_0), got {spec!r}")
    pattern = pattern.lower()  # quantize.cpp lower-cases it too
    try:
        re.compile(pattern)
    except re.error as e:
        raise BadInputError(f"--tensor-type pattern {pattern!r} is not a valid regex: {e}") from None
    return pattern, ggml_type(type_)


def parse_override_kv(spec: str) -> KvOverride:
    """`KEY=TYPE:VALUE` with TYPE int, float, bool or str (common.cpp's string_parse_kv_override)."""
    key, sep, rest = spec.partition("=")
    kind, colon, raw = rest.partition(":")
    if not sep or not key or not colon or kind not in KV_TYPES:
        raise BadInputError(f"--override-kv wants KEY=TYPE:VALUE with TYPE one of {', '.join(KV_TYPES)}, got {spec!r}")
    if len(key.encode()) > _KEY_MAX:
        raise BadInputError(f"--override-kv key is longer than {_KEY_MAX} bytes: {key!r}")
    value: int | float | bool | str
    try:
        if kind == "int":
            value = int(raw)
        elif kind == "float":
            value = float(raw)
        elif kind == "bool":
            if raw not in ("true", "false"):
                raise ValueError
            value = raw == "true"
        else:
            if len(raw.encode()) > _STR_MAX:
                raise BadInputError(f"--override-kv value is longer than {_STR_MAX} bytes: {spec!r}")
            value = raw
    except ValueError:
        raise BadInputError(f"--override-kv: {raw!r} is not a valid {kind} in {spec!r}") from None
    return KvOverride(key, kind, value)
