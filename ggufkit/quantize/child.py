"""Child-process side of quantization: calls llama_model_quantize and reports progress as JSON lines."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

from ggufkit.errors import LlamaFailure
from ggufkit.runtime import logbridge
from ggufkit.runtime.child import child_main

# llama-quant.cpp logs "[  12/ 201]  blk.0.attn_q.weight - [...], type = f32, ..." per tensor.
_TENSOR_LINE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")


def work(req: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    import llama_cpp

    errors: list[str] = []

    def on_line(level: int, line: str) -> None:
        sys.stderr.write(line + "\n")
        m = _TENSOR_LINE.match(line)
        if m:
            emit({"event": "tensor", "index": int(m[1]), "total": int(m[2]), "name": m[3]})
        elif "error" in line.lower() or "failed" in line.lower():
            errors.append(line.strip())

    logbridge.install(on_line)
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
    rc = llama_cpp.llama_model_quantize(req["input"].encode(), req["output"].encode(), params)
    if rc != 0:
        detail = next((e for e in reversed(errors) if "ERROR" in e or "error:" in e), errors[-1] if errors else "")
        raise LlamaFailure(f"llama.cpp quantization failed: {detail or f'status {rc}'}")
    return {}


if __name__ == "__main__":
    child_main(work)
