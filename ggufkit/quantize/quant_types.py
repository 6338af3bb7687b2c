"""The file types llama-quantize accepts, by their usual names (llama.cpp tools/quantize/quantize.cpp)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T, LlamaFileType as F

from ggufkit.errors import BadInputError


@dataclass(frozen=True)
class QuantType:
    name: str
    ftype: int  # llama_ftype
    main_type: T  # the ggml type most tensors get
    description: str
    needs_imatrix: bool = False
    only_copy: bool = False

    @property
    def bits_per_weight(self) -> float:
        block, size = GGML_QUANT_SIZES[self.main_type]
        return size * 8 / block


QUANT_TYPES: tuple[QuantType, ...] = (
    QuantType("Q4_0", F.MOSTLY_Q4_0, T.Q4_0, "legacy 4-bit, one scale per 32 weights"),
    QuantType("Q4_1", F.MOSTLY_Q4_1, T.Q4_1, "legacy 4-bit with scale and minimum"),
    QuantType("Q5_0", F.MOSTLY_Q5_0, T.Q5_0, "legacy 5-bit"),
    QuantType("Q5_1", F.MOSTLY_Q5_1, T.Q5_1, "legacy 5-bit with minimum"),
    QuantType("Q8_0", F.MOSTLY_Q8_0, T.Q8_0, "8-bit, nearly lossless"),
    QuantType("Q2_K", F.MOSTLY_Q2_K, T.Q2_K, "k-quant 2-bit mix, smallest k-quant"),
    QuantType("Q2_K_S", F.MOSTLY_Q2_K_S, T.Q2_K, "k-quant 2-bit, small (needs an imatrix)", needs_imatrix=True),
    QuantType("Q3_K_S", F.MOSTLY_Q3_K_S, T.Q3_K, "k-quant 3-bit, small"),
    QuantType("Q3_K_M", F.MOSTLY_Q3_K_M, T.Q3_K, "k-quant 3-bit, medium"),
    QuantType("Q3_K_L", F.MOSTLY_Q3_K_L, T.Q3_K, "k-quant 3-bit, large"),
    QuantType("Q4_K_S", F.MOSTLY_Q4_K_S, T.Q4_K, "k-quant 4-bit, small"),
    QuantType("Q4_K_M", F.MOSTLY_Q4_K_M, T.Q4_K, "k-quant 4-bit, medium: the usual choice"),
    QuantType("Q5_K_S", F.MOSTLY_Q5_K_S, T.Q5_K, "k-quant 5-bit, small"),
    QuantType("Q5_K_M", F.MOSTLY_Q5_K_M, T.Q5_K, "k-quant 5-bit, medium"),
    QuantType("Q6_K", F.MOSTLY_Q6_K, T.Q6_K, "k-quant 6-bit"),
    QuantType("IQ1_S", F.MOSTLY_IQ1_S, T.IQ1_S, "i-quant 1.56 bpw (needs an imatrix)", needs_imatrix=True),
    QuantType("IQ1_M", F.MOSTLY_IQ1_M, T.IQ1_M, "i-quant 1.75 bpw (needs an imatrix)", needs_imatrix=True),
    QuantType("IQ2_XXS", F.MOSTLY_IQ2_XXS, T.IQ2_XXS, "i-quant 2.06 bpw (needs an imatrix)", needs_imatrix=True),
    QuantType("IQ2_XS", F.MOSTLY_IQ2_XS, T.IQ2_XS, "i-quant 2.31 bpw (needs an imatrix)", needs_imatrix=True),
    QuantType("IQ2_S", F.MOSTLY_IQ2_S, T.IQ2_XS, "i-quant mix of IQ2_XS and wider tensors, ~2.5 bpw overall (needs an imatrix)", needs_imatrix=True),
    QuantType("IQ2_M", F.MOSTLY_IQ2_M, T.IQ2_S, "i-quant mix of IQ2_S and wider tensors, ~2.7 bpw overall (needs an imatrix)", needs_imatrix=True),
    QuantType("IQ3_XXS", F.MOSTLY_IQ3_XXS, T.IQ3_XXS, "i-quant 3.06 bpw (needs an imatrix)", needs_imatrix=True),
    QuantType("IQ3_XS", F.MOSTLY_IQ3_XS, T.IQ3_S, "i-quant mix of IQ3_S and IQ3_XXS tensors, ~3.3 bpw overall (needs an imatrix)", needs_imatrix=True),
    QuantType("IQ3_S", F.MOSTLY_IQ3_S, T.IQ3_S, "i-quant 3.44 bpw"),
    QuantType("IQ3_M", F.MOSTLY_IQ3_M, T.IQ3_S, "i-quant mix of IQ3_S and wider tensors, ~3.66 bpw overall"),
    QuantType("IQ4_NL", F.MOSTLY_IQ4_NL, T.IQ4_NL, "i-quant 4.5 bpw, non-linear"),
    QuantType("IQ4_XS", F.MOSTLY_IQ4_XS, T.IQ4_XS, "i-quant 4.25 bpw, non-linear"),
    QuantType("TQ1_0", F.MOSTLY_TQ1_0, T.TQ1_0, "ternary 1.69 bpw (for ternary-trained models)"),
    QuantType("TQ2_0", F.MOSTLY_TQ2_0, T.TQ2_0, "ternary 2.06 bpw (for ternary-trained models)"),
    QuantType("Q1_0", F.MOSTLY_Q1_0, T.Q1_0, "1-bit, one scale per 128 weights (for 1-bit-trained models)"),
    QuantType("MXFP4_MOE", F.MOSTLY_MXFP4_MOE, T.MXFP4, "MXFP4 for MoE expert tensors (others Q8_0)"),
    QuantType("F16", F.MOSTLY_F16, T.F16, "16-bit float"),
    QuantType("BF16", F.MOSTLY_BF16, T.BF16, "16-bit bfloat"),
    QuantType("F32", F.ALL_F32, T.F32, "32-bit float"),
    QuantType("COPY", F.ALL_F32, T.F32, "copy tensors unchanged (only rewrites metadata)", only_copy=True),
)
ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}
_BY_NAME = {q.name: q for q in QUANT_TYPES}


def quant_type(name: str) -> QuantType:
    key = name.strip().upper()
    key = ALIASES.get(key, key)
    if key in _BY_NAME:
        return _BY_NAME[key]
    close = difflib.get_close_matches(key, [*_BY_NAME, *ALIASES], n=4, cutoff=0.5)
    hint = f" (did you mean {', '.join(c.lower() for c in close)}?)" if close else ""
    raise BadInputError(f"unknown quantization type {name!r}{hint}; see `ggufkit quantize --list`")
