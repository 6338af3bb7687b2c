"""`make_sample`: a sample model of any size, file type and format (GGUF or legacy GGJT v3)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ggufkit.errors import BadInputError
from ggufkit.fsutil import atomic_output, check_output
from ggufkit.quantize.quant_types import quant_type
from ggufkit.quantize.quantizer import quantize_file
from ggufkit.samples.legacy import export_legacy, quantize_legacy
from ggufkit.samples.model import SIZES, SampleSpec, write_gguf

# sample format -> (container, version) of the legacy files; GGJT v3 holds today's blocks
LEGACY_FORMATS = {"ggml": ("GGML", None), "ggmf": ("GGMF", 1), "ggjt1": ("GGJT", 1), "ggjt2": ("GGJT", 2),
                  "ggjt3": ("GGJT", 3)}
FORMATS = ("gguf", *LEGACY_FORMATS)


def make_sample(out: Path, type_name: str = "f16", fmt: str = "gguf", size: str | SampleSpec = "tiny",
                seed: int = 0, force: bool = False) -> Path:
    """Write a random-weight LLaMA model; quantized types go through llama.cpp's quantizer, or for the
    formats before GGJT v3 through that era's own quantizer (q4_2 and q4_3 exist only in ggjt1)."""
    spec = size if isinstance(size, SampleSpec) else SIZES.get(size)
    if spec is None:
        raise BadInputError(f"unknown sample size {size!r} (choose from {', '.join(SIZES)})")
    if fmt not in FORMATS:
        raise BadInputError(f"unknown sample format {fmt!r} (choose from {', '.join(FORMATS)})")
    check_output(out, [], force)
    if fmt in LEGACY_FORMATS and fmt != "ggjt3":
        with tempfile.TemporaryDirectory(prefix="ggufkit-sample-", dir=out.parent) as work:
            base = Path(work) / "base.gguf"
            write_gguf(base, spec, f16=False, seed=seed)
            with atomic_output(out) as tmp:
                quantize_legacy(base, tmp, *LEGACY_FORMATS[fmt], type_name)
        return out
    qtype = quant_type(type_name)
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
