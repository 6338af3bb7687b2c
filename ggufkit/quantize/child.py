"""Child-process side of quantization: calls llama_model_quantize and reports progress as JSON lines.

The request carries llama-quantize's options as plain JSON; this module turns them into the
llama_model_quantize_params structure exactly as tools/quantize/quantize.cpp fills it.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from ggufkit.errors import LlamaFailure
from ggufkit.runtime import llama_log
from ggufkit.runtime.child import child_main

# llama-quant.cpp logs one line per tensor once it is done:
#   "[  12/ 201]  blk.0.attn_q.weight - [  256,   256,     1,     1], type =    f32, converting to q4_K .. size = ..."
#   with --dry-run: "... type =    f32, size =     0.25 MiB ->     0.04 MiB (q4_K)"; unchanged tensors: "size = ... MiB"
_TENSOR_LINE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]\s+(\S+)\s.*?type =\s*(\w+),")
_NEW_TYPE = re.compile(r"converting to (\w+) \.\.|MiB \((\w+)\)\s*$")
_FAILED = "failed to quantize:"

# quantize.cpp's keys recording the imatrix used
_KV_IMATRIX_FILE = "quantize.imatrix.file"
_KV_IMATRIX_DATASET = "quantize.imatrix.dataset"
_KV_IMATRIX_N_ENTRIES = "quantize.imatrix.entries_count"
_KV_IMATRIX_N_CHUNKS = "quantize.imatrix.chunks_count"


def work(req: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    import llama_cpp

    errors: list[str] = []

    def on_line(level: int, line: str) -> None:
        sys.stderr.write(line + "\n")
        m = _TENSOR_LINE.match(line)
        if _FAILED in line or "error" in line.lower():  # a failure ends the tensor's line: no event then
            errors.append(line.strip())
        elif m:
            new = _NEW_TYPE.search(line)
            emit({"event": "tensor", "index": int(m[1]), "total": int(m[2]), "name": m[3],
                  "type": (new[1] or new[2]) if new else m[4]})

    llama_log.route(on_line)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = req["ftype"]
    params.nthread = req.get("threads", 0)
    params.allow_requantize = req.get("allow_requantize", False)
    params.quantize_output_tensor = not req.get("leave_output_tensor", False)
    params.only_copy = req.get("only_copy", False)
    params.pure = req.get("pure", False)
    params.keep_split = req.get("keep_split", False)
    params.dry_run = req.get("dry_run", False)
    for field in ("output_tensor_type", "token_embedding_type"):
        if req.get(field) is not None:
            setattr(params, field, req[field])

    keep: list[Any] = []  # every buffer params points into must outlive the call
    overrides = [tuple(o) for o in req.get("kv_overrides", [])]
    if req.get("imatrix"):
        overrides += _set_imatrix(llama_cpp, params, req["imatrix"], req.get("imatrix_name") or req["imatrix"], keep)
    if overrides:
        params.kv_overrides = _kv_array(llama_cpp, overrides, keep)
    if req.get("tensor_types"):
        params.tt_overrides = _tensor_type_array(llama_cpp, req["tensor_types"], keep)

    rc = llama_cpp.llama_model_quantize(req["input"].encode(), req["output"].encode(), params)
    if rc != 0:
        detail = next((e.split(_FAILED, 1)[1].strip() for e in reversed(errors) if _FAILED in e), "")
        detail = detail or next((e for e in reversed(errors) if e.strip("=")), "") or f"status {rc}"
        if "iostream error" in detail or "basic_ios" in detail:  # std::ofstream gave up writing
            detail = "could not write the output (is the disk full, or a file-size limit reached?)"
        raise LlamaFailure(f"llama.cpp quantization failed: {detail}")
    return {}


def _set_imatrix(llama_cpp, params, path: str, name: str, keep: list[Any]) -> list[tuple[str, str, Any]]:
    """Point params.imatrix at the file's vectors, normalised as llama-quantize does; return the kv entries
    quantize.cpp records with them."""
    import numpy as np

    from ggufkit.imatrix.files import read_matrix
    from ggufkit.imatrix.matrix import normalised

    m = read_matrix(path)
    vectors = normalised(m)
    entries = (llama_cpp.llama_model_imatrix_data * (len(vectors) + 1))()
    for i, (tensor, values) in enumerate(vectors.items()):
        values = np.ascontiguousarray(values, dtype=np.float32)
        keep.append(values)
        entries[i].name = tensor.encode()
        entries[i].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entries[i].size = values.size
    keep.append(entries)  # the zeroed last element terminates the array
    params.imatrix = entries
    kv: list[tuple[str, str, Any]] = [(_KV_IMATRIX_FILE, "str", name.encode()[:127].decode("utf-8", "ignore"))]
    if m.datasets:
        kv.append((_KV_IMATRIX_DATASET, "str", m.datasets[0].encode()[:127].decode("utf-8", "ignore")))
    kv.append((_KV_IMATRIX_N_ENTRIES, "int", len(vectors)))
    if (m.recorded_chunks or 0) > 0:
        kv.append((_KV_IMATRIX_N_CHUNKS, "int", m.recorded_chunks))
    return kv


def _kv_array(llama_cpp, overrides: list[tuple[str, str, Any]], keep: list[Any]):
    arr = (llama_cpp.llama_model_kv_override * (len(overrides) + 1))()  # empty key terminates
    tags = {"int": llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT, "float": llama_cpp.LLAMA_KV_OVERRIDE_TYPE_FLOAT,
            "bool": llama_cpp.LLAMA_KV_OVERRIDE_TYPE_BOOL, "str": llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR}
    for o, (key, kind, value) in zip(arr, overrides):
        o.key = key.encode()
        o.tag = tags[kind]
        if kind == "int":
            o.value.val_i64 = value
        elif kind == "float":
            o.value.val_f64 = value
        elif kind == "bool":
            o.value.val_bool = value
        else:
            o.value.val_str = value.encode()
    keep.append(arr)
    return arr


def _tensor_type_array(llama_cpp, tensor_types: list[list[Any]], keep: list[Any]):
    arr = (llama_cpp.llama_model_tensor_override * (len(tensor_types) + 1))()
    patterns = [p.encode() for p, _ in tensor_types]
    keep.append(patterns)
    for o, pattern, (_, type_) in zip(arr, patterns, tensor_types):
        o.pattern = pattern
        o.type = type_
    arr[len(tensor_types)].pattern = None  # terminator
    keep.append(arr)
    return arr


def load_bindings() -> None:
    """Make `import llama_cpp` give only llama-cpp-python's ctypes bindings (llama_cpp.llama_cpp).

    The package's __init__ also imports its high-level half (numpy, jinja2, chat formats): ~0.1 s of
    CPU per quantization that this child never uses. Falls back to the whole package on any surprise.
    """
    import importlib.util
    import types

    try:
        spec = importlib.util.find_spec("llama_cpp")
        stub = types.ModuleType("llama_cpp")
        stub.__spec__, stub.__path__ = spec, list(spec.submodule_search_locations)
        sys.modules["llama_cpp"] = stub
        bindings = importlib.import_module("llama_cpp.llama_cpp")
        stub.__dict__.update({k: v for k, v in vars(bindings).items() if not k.startswith("__")})
        stub.llama_model_quantize  # noqa: B018  the one entry point this child needs
    except Exception:
        for name in [m for m in sys.modules if m == "llama_cpp" or m.startswith("llama_cpp.")]:
            del sys.modules[name]
        import llama_cpp  # noqa: F401


if __name__ == "__main__":
    load_bindings()  # before the request arrives: a started child loads while the parent checks
    status = child_main(work)
    # The result is out and the file closed: skip tearing down the interpreter (and llama_cpp) for a
    # parent that is waiting on this exit.
    sys.stdout.flush()
    os._exit(status)
