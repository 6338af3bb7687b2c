"""`ggufkit sample`: write a small random-weight LLaMA model (for tests, demos and benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ggufkit.cli.common import ForceOpt


def sample(
    out: Annotated[Path, typer.Argument(help="Output file.", show_default=False)],
    type_: Annotated[str, typer.Option("--type", "-t", help="File type: f32, f16 or any quantization (q4_0, q4_k_m, ...).")] = "f16",
    fmt: Annotated[str, typer.Option("--format", help="gguf; or a legacy (pre-GGUF) file: ggml, ggmf, ggjt1, ggjt2 (written by that era's own quantizer: q4_0, q4_1, q5_0, q5_1, q8_0; q4_2 and q4_3 in ggjt1), ggjt3.")] = "gguf",
    size: Annotated[str, typer.Option("--size", help="tiny (~4 MB at F16, 2 layers), small (~220 MB at F16, 8 layers) or medium (~1.9 GB at F16, 16 layers, 32k vocabulary; needs ~4 GB of RAM to make).")] = "tiny",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random weights and vocabulary.")] = 0,
    family: Annotated[str, typer.Option("--family", help="Another GGML-era family instead of LLaMA, as its own program wrote it (--type f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0): gpt2, cerebras, starcoder, gptneox, dolly-v2, mpt, falcon7, falcon40 (GGCC), gptj, replit, rwkv.")] = "",
    force: ForceOpt = False,
) -> None:
    """Make a small LLaMA-architecture model with random weights and a SentencePiece-style vocabulary."""
    from ggufkit.samples.make import make_sample

    if family:
        from ggufkit.samples.families import write_family_sample

        write_family_sample(out, family, type_.lower(), seed, force)
        typer.echo(f"wrote {out} ({family}, {type_.upper()}, tiny)")
        return

    make_sample(out, type_, fmt, size, seed, force)
    typer.echo(f"wrote {out} ({fmt}, {type_.upper()}, {size})")
