"""What a quantization produced: sizes, bits per weight and tensor types, read back from the output."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, Keys

from ggufkit.formats.gguf_file import GgufFile, read_gguf
from ggufkit.formats.ggml_types import ftype_name, type_name


@dataclass
class QuantizeReport:
    input: str
    type: str  # the requested file type, e.g. "Q4_K_M"
    outputs: list[str]  # one file; several with --keep-split on a split input; none on a dry run
    dry_run: bool
    input_bytes: int
    output_bytes: int  # on a dry run: estimated from the tensor types llama.cpp chose
    n_elements: int
    bits_per_weight: float  # tensor data bits per weight, as llama.cpp counts it
    ratio: float  # input_bytes / output_bytes
    seconds: float
    file_type: str | None = None
    tensor_types: dict[str, int] = field(default_factory=dict)
    quality: dict | None = None  # `--eval`: perplexity, and KL-divergence etc. against the input (evaluate/stats.py)

    def to_dict(self) -> dict:
        return asdict(self)


def report_from_outputs(src: Path, input_bytes: int, qtype: str, outputs: list[Path], seconds: float) -> QuantizeReport:
    whole = read_gguf(outputs[0])  # shards: the first gives the whole model
    tensors = whole.tensors
    data = sum(t.nbytes for t in tensors)
    n = sum(t.n_elements for t in tensors)
    total = whole.file_size
    return QuantizeReport(
        input=str(src), type=qtype, outputs=[str(p) for p in outputs], dry_run=False, input_bytes=input_bytes,
        output_bytes=total, n_elements=n, bits_per_weight=data * 8 / max(n, 1), ratio=input_bytes / max(total, 1),
        seconds=seconds, file_type=ftype_name(whole.kv.get(Keys.General.FILE_TYPE)),
        tensor_types=_count(t.type_name for t in tensors),
    )


def report_dry_run(src: Path, model: GgufFile, input_bytes: int, qtype: str, new_types: dict[str, str],
                   seconds: float) -> QuantizeReport:
    """Sizes from the per-tensor types llama.cpp logged: exact tensor data, estimated header."""
    data, total, n, kinds = 0, model.data_offset, 0, []
    for t in model.tensors:
        kind = GGMLQuantizationType[new_types.get(t.name, t.type_name).upper()]
        block, size = GGML_QUANT_SIZES[kind]
        nbytes = t.n_elements // block * size
        data += nbytes
        total += -(-nbytes // model.alignment) * model.alignment
        n += t.n_elements
        kinds.append(type_name(kind))
    return QuantizeReport(
        input=str(src), type=qtype, outputs=[], dry_run=True, input_bytes=input_bytes, output_bytes=total,
        n_elements=n, bits_per_weight=data * 8 / max(n, 1), ratio=input_bytes / max(total, 1), seconds=seconds,
        file_type=qtype, tensor_types=_count(kinds),
    )


def _count(names) -> dict[str, int]:
    return dict(Counter(names).most_common())
