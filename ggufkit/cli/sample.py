"""`ggufkit sample`: write a small random-weight LLaMA model (for tests, demos and benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ggufkit.choices import Choice
from ggufkit.cli.common import ChoiceType, ForceOpt, complete_quant_types, complete_sample_families
from ggufkit.errors import BadInputError


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
    B7 = "7b"


def sample(
    out: Annotated[Path, typer.Argument(help="Output file (a multi-part model: OUT, OUT.1, ...).", show_default=False)],
    type_: Annotated[str, typer.Option("--type", "-t", help="File type: f32, f16 or any quantization (q4_0, q4_k_m, ...).", autocompletion=complete_quant_types)] = "f16",
    fmt: Annotated[Optional[SampleFormat], typer.Option("--format", click_type=ChoiceType(SampleFormat), help="gguf (the default); or a legacy (pre-GGUF) file: ggml, ggmf, ggjt1, ggjt2 (written by that era's own quantizer: q4_0, q4_1, q5_0, q5_1, q8_0; q4_2 and q4_3 in ggjt1), ggjt3.", show_default=False)] = None,
    size: Annotated[Optional[SampleSize], typer.Option("--size", click_type=ChoiceType(SampleSize), help="tiny (the default: ~4 MB at F16, 2 layers), small (~220 MB at F16, 8 layers), medium (~1.9 GB at F16, 16 layers, 32k vocabulary) or 7b (LLaMA-7B's shapes: 13.5 GB at F16, 3.9 GB as GGJT v1 Q4_0). Written as a stream, in a few hundred MB of RAM at any size.", show_default=False)] = None,
    parts: Annotated[int, typer.Option("--parts", help="A legacy model in this many files, OUT, OUT.1, ..., cut as the first converters cut 13B and larger models (one per checkpoint shard).", min=1)] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random weights and vocabulary.")] = 0,
    family: Annotated[str, typer.Option("--family", help="Another GGML-era family instead of LLaMA, tiny, as its own program wrote it (--type f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0): gpt2, cerebras, starcoder, gptneox, dolly-v2, mpt, falcon7, falcon40 (GGCC), gptj, replit, rwkv.", autocompletion=complete_sample_families)] = "",
    force: ForceOpt = False,
) -> None:
    """Make a LLaMA-architecture model with random weights and a SentencePiece-style vocabulary."""
    if family:
        given = [flag for flag, value in (("--format", fmt), ("--size", size), ("--parts", parts > 1)) if value]
        if given:
            raise BadInputError(f"{' and '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --family "
                                "samples: each is written tiny, in the one container its program wrote")
        from ggufkit.samples.families import write_family_sample

        write_family_sample(out, family, type_.lower(), seed, force)
        typer.echo(f"wrote {out} ({family}, {type_.upper()}, tiny)")
        return
    from ggufkit.cli.progress import count_bar
    from ggufkit.samples.make import make_sample

    fmt, size = fmt or SampleFormat.GGUF, size or SampleSize.TINY
    with count_bar(0, out.name, "B", quiet=False) as bar:
        make_sample(out, type_, fmt.value, size.value, seed, force, parts, bar)
    also = f" and {parts - 1} more part{'s' if parts > 2 else ''} ({out.name}.1 ...)" if parts > 1 else ""
    typer.echo(f"wrote {out}{also} ({fmt}, {type_.upper()}, {size})")
