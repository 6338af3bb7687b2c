"""`ggufkit edit`: set or remove a GGUF file's metadata, tensor data untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ggufkit.cli.common import ForceOpt, JsonOpt, QuietOpt, complete_templates
from ggufkit.cli.output import human_bytes, print_json, short_value


def edit(
    model: Annotated[Path, typer.Argument(help="GGUF model (the first shard of a split model: only it holds metadata).", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the edited model here.", show_default=False)] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Replace the input: a new file is written beside it and renamed over it.")] = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="KEY=VALUE (repeatable). Typed as the key already is in the file, else as gguf-py's key table says, else as the value reads: true/false, integer, number, JSON array, \"string\" or text.", show_default=False)] = None,
    remove: Annotated[Optional[list[str]], typer.Option("--remove", help="KEY to remove (repeatable).", show_default=False)] = None,
    chat_template: Annotated[Optional[str], typer.Option("--chat-template", help="A Jinja chat template file, or one of run's template names (chatml, llama3, ...); checked in the sandbox first.", show_default=False, autocompletion=complete_templates)] = None,
    special_token: Annotated[Optional[list[str]], typer.Option("--special-token", help="ROLE=ID or ROLE=TEXT: bos, eos, eot, eom, unk, sep, pad, mask, fim_pre, fim_suf, fim_mid (repeatable).", show_default=False)] = None,
    force: ForceOpt = False,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Change a GGUF file's metadata: the header is written anew, the tensor data copied unchanged.

    Keys that decide how the tensors are read (general.alignment, the split keys, the architecture
    and its shapes: embedding_length, block_count, head counts, ...) are refused with the reason; the
    result passes the readers' checks (special token ids inside the vocabulary, ...) before anything is
    written. The input is never changed, except by --in-place, which renames the finished file over it.
    Example: `ggufkit edit old.gguf -o new.gguf --chat-template chatml --special-token eos='</s>'`.
    """
    from ggufkit.runtime.templates import checked_source
    from ggufkit.surgery.edit import Edits
    from ggufkit.surgery.edit import edit as edit_model

    template = None if chat_template is None else checked_source(chat_template)
    edits = Edits(set_ or [], remove or [], template, special_token or [])
    report = edit_model(model, edits, output, in_place, force)
    if json_:
        print_json(report.to_dict())
        return
    if quiet:
        return
    where = f"{report.output} (in place)" if report.in_place else f"{report.input} -> {report.output}"
    what = f"{len(report.changes)} change(s)" if report.changes else "no change (every value was already so)"
    typer.echo(f"edited {where}: {what}, {human_bytes(report.bytes)} in {report.seconds:.2f} s")
    for c in report.changes:
        if c["action"] == "remove":
            typer.echo(f"  - {c['key']} ({c['type']}): {short_value(c['old'], 70)}")
        elif c["old"] is None:
            typer.echo(f"  + {c['key']} ({c['type']}): {short_value(c['new'], 70)}")
        else:
            typer.echo(f"  ~ {c['key']} ({c['type']}): {short_value(c['old'], 35)} -> {short_value(c['new'], 35)}")
