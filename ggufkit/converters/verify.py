"""`convert --verify`: re-read the written GGUF and compare it with the input, tensor by tensor.

Tensors whose blocks were copied must be byte-identical, row for row in the order the output holds them
(a fused tensor whose rows the family permutes, as GPT-NeoX's QKV, is read from the input in that order). Repacked and requantized tensors are compared
as values: the input dequantized with its own era's layout, the output with today's (gguf-py), and
the largest difference is reported, so a user sees what was checked and what the conversion cost.
A difference is a failed check (exit 1, not bad input), about the input: the output is not written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ggufkit.converters.datapath import source_rows
from ggufkit.errors import GgufkitError
from ggufkit.formats.gguf_file import read_gguf
from ggufkit.formats.legacy import LegacyModel, blocks
from ggufkit.formats.legacy.parts import RowReader

if TYPE_CHECKING:
    from ggufkit.converters.engine import TensorPlan

CHUNK_ROWS_BYTES = 8 << 20


def verify(m: LegacyModel, plans: list[TensorPlan], out: Path, between: Callable[[], None] | None = None
           ) -> dict[str, Any]:
    """Compare the GGUF written at `out` (a temporary file) with the legacy model `m`; `between` is called
    between chunks (where an interrupted batch stops)."""
    def failed(what: str) -> GgufkitError:
        return GgufkitError(f"verification failed: {what}; the output was not written", m.path)

    g = read_gguf(out)
    if len(g.tensors) != len(plans):
        raise failed(f"{len(g.tensors)} tensors written, {len(plans)} read")
    by_name = {t.name: t for t in g.tensors}
    identical = values = permuted = 0
    worst = 0.0
    fd = os.open(out, os.O_RDONLY)
    try:
        with RowReader(m) as reader:
            for i, p in enumerate(plans):
                o = by_name.get(p.name)
                if o is None or (o.ggml_type, o.shape, o.nbytes) != (p.out_type, p.src.shape, p.out_nbytes):
                    raise failed(f"tensor {p.name!r} differs in type or shape")
                n_rows, row = reader.geometry(p.src)
                out_row = p.out_nbytes // n_rows
                today = blocks.layout(2, p.out_type)
                assert today is not None
                step = max(1, CHUNK_ROWS_BYTES // max(row, out_row))
                for start in range(0, n_rows, step):
                    if between is not None:
                        between()
                    k = min(step, n_rows - start)
                    a = source_rows(reader, i, p, start, k)
                    b = os.pread(fd, k * out_row, o.offset + start * out_row)
                    if p.action == "copy":
                        if a.tobytes() != b:
                            raise failed(f"tensor {p.name!r} bytes differ from the input's")
                        continue
                    x = p.layout.dequantize(a.reshape(-1, p.layout.nbytes)).ravel()
                    y = today.dequantize(np.frombuffer(b, np.uint8).reshape(-1, today.nbytes)).ravel()
                    if not np.isfinite(y).all() and np.isfinite(x).all():
                        raise failed(f"tensor {p.name!r} has non-finite values")
                    worst = max(worst, float(np.max(np.abs(x - y), initial=0.0)))
                    values += x.size
                identical += p.action == "copy"
                permuted += p.rows is not None
    finally:
        os.close(fd)
    return {"tensors": len(plans), "byte_identical": identical, "compared_as_values": len(plans) - identical,
            "values_compared": values, "max_abs_diff": worst, "rows_permuted": permuted}
