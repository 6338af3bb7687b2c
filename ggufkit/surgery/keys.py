"""What `edit --set` writes: a value typed as the key wants it, and the keys it must not touch.

A value's type comes from, in order: the key's type in the file (what its readers already expect);
gguf-py's key table (below); else the text itself (true/false, an integer, a number, a JSON array or
"string", else text). gguf-py keeps its keys' types only in GGUFWriter's add_* methods
(`add_context_length` writes `{arch}.context_length` as a u32), so the table is read from them: each
is called once on a writer that only records what it is given.
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
import re
import struct
import typing
from collections.abc import Sequence
from typing import Any

from gguf.constants import GGUFValueType as V
from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.surgery.header import SCALAR_FORMATS, KvTypes

_INT_RANGES = {V.UINT8: (0, 0xFF), V.INT8: (-0x80, 0x7F), V.UINT16: (0, 0xFFFF), V.INT16: (-0x8000, 0x7FFF),
               V.UINT32: (0, 0xFFFFFFFF), V.INT32: (-(1 << 31), (1 << 31) - 1), V.UINT64: (0, (1 << 64) - 1),
               V.INT64: (-(1 << 63), (1 << 63) - 1)}
_SHAPES = "the tensors' shapes were made for it: llama.cpp would read them wrongly or refuse the file"
# Keys whose change would make llama.cpp read the tensors differently: refused, with the reason.
PROTECTED: dict[str, str] = {
    Keys.General.ALIGNMENT: "it sets where each tensor's data starts: the tensors would be read from the wrong bytes",
    Keys.General.ARCHITECTURE: "it names the tensor layout llama.cpp expects",
    **{k: "it describes how the shards fit together (use `ggufkit split` / `ggufkit merge`)"
       for k in (Keys.Split.LLM_KV_SPLIT_NO, Keys.Split.LLM_KV_SPLIT_COUNT, Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT)},
    **{k: _SHAPES for k in (
        Keys.LLM.VOCAB_SIZE, Keys.LLM.EMBEDDING_LENGTH, Keys.LLM.EMBEDDING_LENGTH_OUT, Keys.LLM.BLOCK_COUNT,
        Keys.LLM.LEADING_DENSE_BLOCK_COUNT, Keys.LLM.FEED_FORWARD_LENGTH, Keys.LLM.EXPERT_FEED_FORWARD_LENGTH,
        Keys.LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH, Keys.LLM.EXPERT_COUNT, Keys.LLM.EXPERT_SHARED_COUNT,
        Keys.Attention.HEAD_COUNT, Keys.Attention.HEAD_COUNT_KV, Keys.Attention.KEY_LENGTH,
        Keys.Attention.VALUE_LENGTH, Keys.Attention.KV_LORA_RANK, Keys.Attention.Q_LORA_RANK,
        Keys.SSM.CONV_KERNEL, Keys.SSM.INNER_SIZE, Keys.SSM.STATE_SIZE, Keys.SSM.TIME_STEP_RANK,
        Keys.SSM.GROUP_COUNT)},
}
SPECIAL_TOKENS: dict[str, str] = {  # --special-token ROLE=...
    "bos": Keys.Tokenizer.BOS_ID, "eos": Keys.Tokenizer.EOS_ID, "eot": Keys.Tokenizer.EOT_ID,
    "eom": Keys.Tokenizer.EOM_ID, "unk": Keys.Tokenizer.UNK_ID, "sep": Keys.Tokenizer.SEP_ID,
    "pad": Keys.Tokenizer.PAD_ID, "mask": Keys.Tokenizer.MASK_ID, "fim_pre": Keys.Tokenizer.FIM_PRE_ID,
    "fim_suf": Keys.Tokenizer.FIM_SUF_ID, "fim_mid": Keys.Tokenizer.FIM_MID_ID,
}


def refusal(key: str, arch: str | None) -> str | None:
    """Why `key` may not be set or removed, or None."""
    generic = _generic(key, arch)
    return PROTECTED.get(generic) or PROTECTED.get(key)


def _generic(key: str, arch: str | None) -> str:
    """`llama.context_length` -> `{arch}.context_length`; `general.base_model.2.name` -> `general.base_model.{id}.name`."""
    if arch and key.startswith(arch + "."):
        key = "{arch}" + key[len(arch):]
    return re.sub(r"\.\d+\.", ".{id}.", key)


@functools.cache
def key_table() -> dict[str, KvTypes]:
    """gguf-py's keys and their types, as its GGUFWriter's add_* methods write them."""
    import gguf

    samples: dict[Any, Any] = {int: 1, float: 1.0, bool: True, str: "x", bytes: b"x"}

    def sample(hint: Any) -> Any:
        if typing.get_origin(hint) is typing.Union:
            hint = typing.get_args(hint)[0]
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return next(iter(hint))
        if typing.get_origin(hint) in (list, Sequence):
            return [sample(typing.get_args(hint)[0])]
        return samples[hint]

    writer = gguf.GGUFWriter(None, "{arch}")
    table: dict[str, KvTypes] = {}
    for name, method in inspect.getmembers(gguf.GGUFWriter, inspect.isfunction):
        if not name.startswith("add_") or name in ("add_key_value", "add_tensor", "add_tensor_info"):
            continue
        try:
            hints = typing.get_type_hints(method)
            args = [sample(hints[p]) for p in list(inspect.signature(method).parameters)[1:]]
            writer.kv_data = [{}]
            getattr(writer, name)(*args)
        except Exception:  # a method that is not a plain key setter (or a typed one)
            continue
        for key, value in writer.kv_data[0].items():
            table[re.sub(r"\.1\.", ".{id}.", key)] = (V(value.type), value.sub_type)
    return table


def known_type(key: str, arch: str | None) -> KvTypes | None:
    return key_table().get(_generic(key, arch))


def parse_value(key: str, text: str, types: KvTypes | None) -> tuple[Any, KvTypes]:
    """`text` as the value of `key`: of `types` if given (an array's items typed by its item type when
    known), else of the type the text reads as."""
    if types is None:
        return _infer(key, text)
    vtype, sub = types
    if vtype == V.ARRAY:
        items = _json_array(key, text)
        if sub is None:
            return _infer_array(key, items)
        return _array(key, [_typed(key, item, sub) for item in items], sub), (V.ARRAY, sub)
    return _typed(key, text, vtype), (vtype, None)


def _typed(key: str, value: Any, vtype: V) -> Any:
    """One scalar (text from the command line, or an item of a JSON array) as `vtype`, or a clear refusal."""
    what = f"{key} is a {vtype.name.lower()}"
    if vtype == V.STRING:
        if not isinstance(value, str):
            raise BadInputError(f"{what}: {json.dumps(value)} is not text")
        return value
    if vtype == V.BOOL:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in ("true", "1", "yes", "on"):
            return True
        if word in ("false", "0", "no", "off"):
            return False
        raise BadInputError(f"{what}: {value!r} is not true or false")
    if vtype in _INT_RANGES:
        try:
            n = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value).strip(), 0)
        except ValueError:
            raise BadInputError(f"{what}: {value!r} is not an integer") from None
        lo, hi = _INT_RANGES[vtype]
        if not lo <= n <= hi:
            raise BadInputError(f"{what}: {n} is outside {lo}..{hi}")
        return n
    try:
        x = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        x = None
    if x is None:
        raise BadInputError(f"{what}: {value!r} is not a number")
    if vtype == V.FLOAT32:
        try:
            struct.pack("<f", x)
        except OverflowError:
            raise BadInputError(f"{what}: {x} does not fit a 32-bit float") from None
    return x


def _json_array(key: str, text: str) -> list[Any]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInputError(f"{key} is an array: give it as JSON, e.g. [1, 2] or [\"a\", \"b\"] ({e.msg})") from None
    if not isinstance(items, list):
        raise BadInputError(f"{key} is an array: give it as JSON, e.g. [1, 2] or [\"a\", \"b\"]")
    return items


def _array(key: str, items: list[Any], sub: V) -> Any:
    if sub == V.STRING:
        return items
    import numpy as np  # here, not at the top: an edit that sets no array never imports numpy

    return np.asarray(items, dtype=np.dtype(SCALAR_FORMATS[sub]))


def _infer(key: str, text: str) -> tuple[Any, KvTypes]:
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true", (V.BOOL, None)
    if re.fullmatch(r"[+-]?\d+", t):
        n = int(t)
        vtype = V.INT32 if -(1 << 31) <= n < 1 << 31 else V.INT64 if -(1 << 63) <= n < 1 << 63 else V.UINT64
        return _typed(key, n, vtype), (vtype, None)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", t, re.I):
        return _typed(key, t, V.FLOAT32), (V.FLOAT32, None)
    if t.startswith("["):
        return _infer_array(key, _json_array(key, t))
    if t.startswith('"'):
        try:
            s = json.loads(t)
        except json.JSONDecodeError:
            s = None
        if isinstance(s, str):
            return s, (V.STRING, None)
    return text, (V.STRING, None)


def _infer_array(key: str, items: list[Any]) -> tuple[Any, KvTypes]:
    if not items:
        raise BadInputError(f"{key}: an empty array of a new key has no item type to take")
    kinds = {type(x) for x in items}
    if kinds == {str}:
        sub = V.STRING
    elif kinds == {bool}:
        sub = V.BOOL
    elif kinds <= {int, float} and bool not in kinds:
        ints = kinds == {int}
        sub = V.INT32 if ints and all(-(1 << 31) <= x < 1 << 31 for x in items) else V.INT64 if ints else V.FLOAT32
    else:
        raise BadInputError(f"{key}: an array's items must all be text, all numbers or all true/false")
    return _array(key, [_typed(key, x, sub) for x in items], sub), (V.ARRAY, sub)
