"""`make_sample`: a sample model of any size, file type and format (GGUF or legacy GGJT v3)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ggufkit.errors import BadInputError
from ggufkit.fsutil import atomic_output, check_output
from ggufkit.quantize.quant_types import quant_type
from ggufkit.quantize.quantizer import quantize_file
from ggufkit.samples.legacy import export_legacy
from ggufkit.samples.model import SIZES, SampleSpec, write_gguf

FORMATS = ("gguf", "ggjt3")


def make_sample(out: Path, type_name: str = "f16", fmt: str = "gguf", size: str | SampleSpec = "tiny",
                seed: int = 0, force: bool = False) -> Path:
    """Write a random-weight LLaMA model; quantized types go through llama.cpp's quantizer."""
    spec = size if isinstance(size, SampleSpec) else SIZES.get(size)
    if spec is None:
        raise BadInputError(f"unknown sample size {size!r} (choose from {', '.join(SIZES)})")
    if fmt not in FORMATS:
        raise BadInputError(f"unknown sample format {fmt!r} (choose from {', '.join(FORMATS)})")
    qtype = quant_type(type_name)
    check_output(out, [], force)
    with tempfile.TemporaryDirectory(prefix="ggufkit-sample-", dir=out.parent) as work:
        gguf = Path(work) / "model.gguf"
        if qtype.name in ("F32", "F16"):
            write_gguf(gguf, spec, f16=qtype.name == "F16", seed=seed)
        else:
            base = Path(work) / "base.gguf"
            write_gguf(base, spec, f16=False, seed=seed)
            quantize_file(base, gguf, qtype)
        with atomic_output(out) as tmp:
            if fmt == "gguf":
                shutil.copyfile(gguf, tmp)
            else:
                export_legacy(gguf, tmp)
    return out
