"""Option types shared by every command, so each flag is spelled and explained once."""

from __future__ import annotations

from typing import Annotated, Any

import click
import typer

from ggufkit.choices import Choice

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output file.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]


class ChoiceType(click.Choice):
    """The click type of a flag whose values are a Choice enum: --help lists them, and a value that is
    none of them is one `ggufkit: error:` line with exit code 2, like every other bad input."""

    def __init__(self, enum: type[Choice]):
        super().__init__([m.value for m in enum])
        self.enum = enum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Choice:
        return self.enum.parse(value, max(param.opts, key=len) if param is not None else "value")
