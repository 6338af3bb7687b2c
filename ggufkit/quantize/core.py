"""Quantize a GGUF file with llama.cpp's own quantizer, isolated in a child process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ggufkit.formats.gguf_file import read_gguf
from ggufkit.fsutil import atomic_output, check_output
from ggufkit.quantize.types import QuantType
from ggufkit.runtime.child import run_child


@dataclass
class QuantizeOptions:
    threads: int = 0
    allow_requantize: bool = False
    leave_output_tensor: bool = False
    pure: bool = False
    output_tensor_type: int | None = None
    token_embedding_type: int | None = None


def quantize_file(src: Path, out: Path, qtype: QuantType, options: QuantizeOptions | None = None,
                  force: bool = False, on_tensor: Callable[[int, int, str], None] | None = None) -> None:
    options = options or QuantizeOptions()
    read_gguf(src)  # validated before llama.cpp sees it
    check_output(out, [src], force)

    def on_event(event: dict[str, Any]) -> None:
        if on_tensor is not None and event.get("event") == "tensor":
            on_tensor(event["index"], event["total"], event["name"])

    with atomic_output(out) as tmp:
        request = {
            "input": str(src), "output": str(tmp), "ftype": qtype.ftype, "only_copy": qtype.only_copy,
            **options.__dict__,
        }
        run_child("ggufkit.quantize.child", request, on_event, path=str(src))
