"""`ggufkit sample`: write a small random-weight LLaMA model (for tests, demos and benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ggufkit.choices import Choice
from ggufkit.cli.common import ChoiceType, ForceOpt, complete_quant_types, complete_sample_families


class SampleFormat(Choice):  # samples.make.FORMATS (a unit test keeps them equal); here, so --help imports no numpy
    GGUF = "gguf"
    GGML = "ggml"
    GGMF = "ggmf"
    GGJT1 = "ggjt1"
    GGJT2 = "ggjt2"
    GGJT3 = "ggjt3"


class SampleSize(Choice):  # samples.model.SIZES (a unit test keeps them equal)
    TINY = "tiny"
    SMALL = "small"
    MEDIUM = "medium"


def sample(
    out: Annotated[Path, typer.Argument(help="Output file.", show_default=False)],
    type_: Annotated[str, typer.Option("--type", "-t", help="File type: f32, f16 or any quantization (q4_0, q4_k_m, ...).", autocompletion=complete_quant_types)] = "f16",
    fmt: Annotated[SampleFormat, typer.Option("--format", click_type=ChoiceType(SampleFormat), help="gguf; or a legacy (pre-GGUF) file: ggml, ggmf, ggjt1, ggjt2 (written by that era's own quantizer: q4_0, q4_1, q5_0, q5_1, q8_0; q4_2 and q4_3 in ggjt1), ggjt3.")] = SampleFormat.GGUF,
    size: Annotated[SampleSize, typer.Option("--size", click_type=ChoiceType(SampleSize), help="tiny (~4 MB at F16, 2 layers), small (~220 MB at F16, 8 layers) or medium (~1.9 GB at F16, 16 layers, 32k vocabulary; needs ~4 GB of RAM to make).")] = SampleSize.TINY,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random weights and vocabulary.")] = 0,
    family: Annotated[str, typer.Option("--family", help="Another GGML-era family instead of LLaMA, as its own program wrote it (--type f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0): gpt2, cerebras, starcoder, gptneox, dolly-v2, mpt, falcon7, falcon40 (GGCC), gptj, replit, rwkv.", autocompletion=complete_sample_families)] = "",
    force: ForceOpt = False,
) -> None:
    """Make a small LLaMA-architecture model with random weights and a SentencePiece-style vocabulary."""
    from ggufkit.samples.make import make_sample

    if family:
        from ggufkit.samples.families import write_family_sample

        write_family_sample(out, family, type_.lower(), seed, force)
        typer.echo(f"wrote {out} ({family}, {type_.upper()}, tiny)")
        return

    make_sample(out, type_, fmt.value, size.value, seed, force)
    typer.echo(f"wrote {out} ({fmt}, {type_.upper()}, {size})")
