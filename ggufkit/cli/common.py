"""Option types shared by every command, so each flag is spelled and explained once."""

from __future__ import annotations

from typing import Annotated, Any

import click
import typer

from ggufkit.choices import Choice

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output file.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
# the model-running commands beside `run` (eval, quantize --eval, ...): a number of layers or 'all', as run
GpuLayersOpt = Annotated[str, typer.Option("--gpu-layers", "-ngl", help="Layers to offload to a GPU (a number or 'all'), as `run`.")]


class ChoiceType(click.Choice):
    """The click type of a flag whose values are a Choice enum: --help lists them, and a value that is
    none of them is one `ggufkit: error:` line with exit code 2, like every other bad input."""

    def __init__(self, enum: type[Choice]):
        super().__init__([m.value for m in enum])
        self.enum = enum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Choice:
        return self.enum.parse(value, max(param.opts, key=len) if param is not None else "value")


# Shell completion of values (`ggufkit --install-completion`): each returns the names starting with what was typed.
def complete_quant_types(incomplete: str) -> list[str]:
    from ggufkit.quantize.quant_types import ALIASES, QUANT_TYPES

    names = [q.name.lower() for q in QUANT_TYPES] + [a.lower() for a in ALIASES]
    return [n for n in names if n.startswith(incomplete.lower())]


def complete_templates(incomplete: str) -> list[str]:
    from ggufkit.runtime.builtin_templates import BUILTIN_TEMPLATES

    return [n for n in BUILTIN_TEMPLATES if n.startswith(incomplete)]


def complete_presets(incomplete: str) -> list[str]:
    """The built-in presets, and TOML files where a path is being typed."""
    from pathlib import Path

    from ggufkit.runtime.presets import BUILTIN_PRESETS

    names = [n for n in BUILTIN_PRESETS if n.startswith(incomplete)]
    folder, _, stem = incomplete.rpartition("/")
    base = Path(folder or ".")
    try:
        names += [f"{folder + '/' if folder else ''}{p.name}" for p in sorted(base.iterdir())
                  if p.name.startswith(stem) and not p.name.startswith(".")
                  and (p.suffix == ".toml" or (incomplete and p.is_dir()))]  # folders once a path is typed
    except OSError:
        pass
    return names


def complete_families(incomplete: str) -> list[str]:
    """`convert --arch`: the families the legacy readers know."""
    from ggufkit.families import FAMILIES

    return [n for n in FAMILIES if n.startswith(incomplete)]


def complete_sample_families(incomplete: str) -> list[str]:
    """`sample --family`: the family samples (a family may have several: gpt2 and cerebras, falcon7 and falcon40)."""
    from ggufkit.samples.families import SAMPLES

    return [n for n in SAMPLES if n.startswith(incomplete)]


def complete_models(incomplete: str) -> list[str]:
    """`models pull NAME`: the real models ggufkit can pull."""
    from ggufkit.models import MODELS

    return [n for n in MODELS if n.startswith(incomplete)]
