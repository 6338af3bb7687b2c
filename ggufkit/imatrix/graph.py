"""The graph nodes llama.cpp's scheduler hands its eval callback: ggml's tensor struct read through ctypes.

llama-cpp-python binds the callback's type (ggml_backend_sched_eval_callback) but not `struct ggml_tensor`,
so its layout is declared here from ggml.h and checked against the loaded ggml before any use: the struct
size against ggml_tensor_overhead(), and the fields of a small MUL_MAT node built by ggml itself. Op numbers
come from ggml_op_name, never from a copied enum. Functions are reached through libllama's own handle
(runtime/native.py says why a second copy of ggml would not do).
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

import numpy as np

from ggufkit.errors import LlamaFailure
from ggufkit.runtime import native

MAX_DIMS, MAX_SRC, MAX_NAME, MAX_OP_PARAMS = 4, 10, 64, 64
GGML_TYPE_F32 = 0  # ggml.h; checked below on a tensor made as F32
_OBJECT_BYTES = 32  # struct ggml_object: offs, size, next, type, padding[4]

P, S = ctypes.c_void_p, ctypes.c_size_t


class Tensor(ctypes.Structure):
    """struct ggml_tensor (ggml.h), read in place; never allocated here."""

    _fields_ = [
        ("type", ctypes.c_int), ("buffer", P), ("ne", ctypes.c_int64 * MAX_DIMS), ("nb", S * MAX_DIMS),
        ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * (MAX_OP_PARAMS // 4)), ("flags", ctypes.c_int32),
        ("src", P * MAX_SRC), ("view_src", P), ("view_offs", S), ("data", P), ("name", ctypes.c_char * MAX_NAME),
        ("extra", P), ("padding", ctypes.c_char * 8),
    ]


class _InitParams(ctypes.Structure):
    _fields_ = [("mem_size", S), ("mem_buffer", P), ("no_alloc", ctypes.c_bool)]


OP_OFFSET = Tensor.op.offset  # the ask phase reads only this int


@dataclass(frozen=True)
class Ggml:
    """The few ggml functions the collector needs, and the op numbers of the two matrix products."""

    mul_mat: int
    mul_mat_id: int
    nbytes: ctypes._CFuncPtr  # type: ignore[name-defined]
    is_host: ctypes._CFuncPtr  # type: ignore[name-defined]
    tensor_get: ctypes._CFuncPtr  # type: ignore[name-defined]


@functools.lru_cache(maxsize=1)
def ggml() -> Ggml:
    """The checked bindings; LlamaFailure if this llama.cpp's ggml is not laid out as declared."""
    fns = {name: native.symbol(name, *sig) for name, sig in {
        "ggml_op_name": (ctypes.c_char_p, ctypes.c_int), "ggml_nbytes": (S, P),
        "ggml_tensor_overhead": (S,), "ggml_backend_buffer_is_host": (ctypes.c_bool, P),
        "ggml_backend_tensor_get": (None, P, P, S, S), "ggml_init": (P, _InitParams), "ggml_free": (None, P),
        "ggml_new_tensor_2d": (P, P, ctypes.c_int, ctypes.c_int64, ctypes.c_int64), "ggml_mul_mat": (P, P, P, P),
        "ggml_set_name": (P, P, ctypes.c_char_p),
    }.items()}
    missing = [n for n, f in fns.items() if f is None]
    if missing:
        raise LlamaFailure(f"this llama.cpp build lacks {', '.join(missing)}: cannot read its graph")
    ops = {}
    for op in range(256):  # GGML_OP_COUNT is about 100; stop as soon as both are found
        name = fns["ggml_op_name"](op)
        if name in (b"MUL_MAT", b"MUL_MAT_ID"):
            ops[name] = op
        if len(ops) == 2:
            break
    if len(ops) != 2:
        raise LlamaFailure("this llama.cpp's ggml names no MUL_MAT / MUL_MAT_ID op: cannot read its graph")
    g = Ggml(ops[b"MUL_MAT"], ops[b"MUL_MAT_ID"], fns["ggml_nbytes"], fns["ggml_backend_buffer_is_host"],
             fns["ggml_backend_tensor_get"])
    _check_layout(fns, g)
    return g


def _check_layout(fns: dict, g: Ggml) -> None:
    """A node built by ggml, read through Tensor: every field the collector uses must be where it is declared."""
    if fns["ggml_tensor_overhead"]() != _OBJECT_BYTES + ctypes.sizeof(Tensor):
        raise LlamaFailure("this llama.cpp's struct ggml_tensor is not the one ggufkit knows: cannot read its graph")
    ctx = fns["ggml_init"](_InitParams(1 << 16, None, True))
    try:
        a = fns["ggml_new_tensor_2d"](ctx, GGML_TYPE_F32, 24, 5)
        b = fns["ggml_new_tensor_2d"](ctx, GGML_TYPE_F32, 24, 17)
        fns["ggml_set_name"](a, b"blk.0.check.weight")
        t = Tensor.from_address(fns["ggml_mul_mat"](ctx, a, b))
        src0, src1 = Tensor.from_address(t.src[0]), Tensor.from_address(t.src[1])
        ok = (t.op == g.mul_mat and t.src[0] == a and t.src[1] == b and list(t.ne) == [5, 17, 1, 1]
              and src0.name == b"blk.0.check.weight" and src1.type == GGML_TYPE_F32
              and list(src1.nb) == [4, 96, 96 * 17, 96 * 17] and g.nbytes(t.src[1]) == 96 * 17)
    finally:
        fns["ggml_free"](ctx)
    if not ok:
        raise LlamaFailure("this llama.cpp's struct ggml_tensor is not the one ggufkit knows: cannot read its graph")


def weight_name(raw: bytes) -> str:
    """The weight's own name: the scheduler names its copies on other devices BACKEND#NAME#N
    ("CUDA0#blk.0.attn_k.weight#0"), as llama-imatrix's filter_tensor_name undoes."""
    name = raw.decode("utf-8", "replace")
    if "#" in name:
        name = name.split("#", 2)[1]
    return name


class Reader:
    """Activations as numpy arrays: a view of host memory, or a copy (into one reused buffer) from a device."""

    def __init__(self) -> None:
        self.g = ggml()
        self._buf = np.empty(0, np.uint8)

    def floats(self, ptr: int, t: Tensor) -> np.ndarray:
        """The F32 tensor `t` (at address `ptr`) as an array of shape (ne3, ne2, ne1, ne0) with its strides."""
        return self._array(ptr, t, np.float32)

    def ints(self, ptr: int, t: Tensor) -> np.ndarray:
        """An I32 tensor (MUL_MAT_ID's expert ids), always copied: it is small and may live on a device."""
        return self._array(ptr, t, np.int32, copy=True)

    def _array(self, ptr: int, t: Tensor, dtype: type, copy: bool = False) -> np.ndarray:
        n = self.g.nbytes(ptr)
        if not copy and t.data and (not t.buffer or self.g.is_host(t.buffer)):  # no buffer: ggml's own memory
            raw = (ctypes.c_char * n).from_address(t.data)
        else:
            if copy or self._buf.size < n:
                buf = np.empty(n, np.uint8)
                if not copy:
                    self._buf = buf
            else:
                buf = self._buf
            self.g.tensor_get(ptr, buf.ctypes.data, 0, n)
            raw = buf
        ne, nb = list(t.ne)[::-1], list(t.nb)[::-1]
        return np.ndarray(tuple(ne), dtype=dtype, buffer=raw, strides=tuple(nb))
