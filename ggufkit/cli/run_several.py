"""`ggufkit run A B ...`: several models answer the same prompt in turn, each under a header naming it;
with --interactive, a chat with all of them (run_group.py). The core is runtime/group.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ggufkit.cli.output import notice, print_json, result_json, stats_line
from ggufkit.runtime.settings import RunSettings

if TYPE_CHECKING:
    from ggufkit.runtime.generate import DoneEvent
    from ggufkit.runtime.group import Ensemble, Member


def run_several(specs: list[Path], settings: RunSettings, text: str | None, *, interactive: bool, group: bool,
                json_out: bool, stats: bool, verbose: bool, verbose_llama: bool) -> int:
    from ggufkit.cli.output import end_stdout_line
    from ggufkit.runtime import abort, llama_log, memory_plan
    from ggufkit.runtime.group import Ensemble, prepare_members

    members = prepare_members([str(s) for s in specs], settings, interactive=interactive, on_notice=notice)
    plan = memory_plan.plan([(m.prepared.gguf, m.settings) for m in members])
    if plan.reason:
        notice(plan.reason)
    if verbose:
        notice(f"memory: about {_size(plan.ram_need)} of RAM needed, {_size(plan.ram_free)} free"
               + (f"; {_size(plan.gpu_need)} of GPU memory, {_size(plan.gpu_free)} free" if plan.gpu_free else ""))
    abort.install(members[0].prepared.source)  # then each member's path while it loads and speaks
    abort.add_last_words(end_stdout_line)  # first: the error line must not glue onto generated text
    if verbose_llama:
        llama_log.echo_to(lambda line: sys.stderr.write(line + "\n"))
    with Ensemble(members, plan.together, on_load=lambda m: _loaded(m, verbose)) as ensemble:
        if interactive:
            from ggufkit.cli.run_group import group_chat_loop
            from ggufkit.runtime.group_chat import GroupChat

            chat = GroupChat(ensemble, shared=group)
            if settings.rpc:  # a lost server ends the process (llama.cpp aborts): the conversation is kept
                from ggufkit.cli.run import _rescue

                abort.add_last_words(lambda: _rescue(chat))
            group_chat_loop(chat, text, stats=stats)
        else:
            _one_shot(ensemble, text or "", json_out, stats, verbose)
    return 0


def _loaded(m: Member, verbose: bool) -> None:
    """Warnings once per member (one at a time, it loads again every turn); with -v, each load."""
    model = m.model
    assert model is not None
    if m.loads == 1:
        for w in model.warnings:
            notice(f"{m.name}: warning: {w}")
    if verbose:
        notice(f"{m.name}: model: {m.prepared.path} (n_ctx {model.n_ctx}, threads {model.params.n_threads}, "
               f"load {model.load_ms:.1f} ms, warm-up {model.warmup_ms:.1f} ms of it)")
        if m.template is not None and m.loads == 1:
            notice(f"{m.name}: template: {m.template.name}")


def header(m: Member) -> str:
    """What `head` writes above each file's lines: the model as given, and its type."""
    return f"==> {m.spec}{f' ({m.file_type})' if m.file_type else ''} <=="


def _one_shot(ensemble: Ensemble, text: str, json_out: bool, stats: bool, verbose: bool) -> None:
    from ggufkit.runtime.generate import TokenEvent
    from ggufkit.runtime.group import Speaking

    out = sys.stdout
    results: list[dict[str, Any]] = []
    member: Member | None = None
    pending = ""  # the current reply's text since its last newline: ended before anything else is written
    on_sampler = (lambda m, d: notice(f"{m.name}: sampler: {d}")) if verbose else None
    try:
        for ev in ensemble.one_shot(text, on_sampler):
            if isinstance(ev, Speaking):
                member = ev.member
                if not json_out:
                    out.write(("\n" if results else "") + header(member) + "\n")
                    out.flush()
            elif type(ev) is TokenEvent:
                if ev.text and not json_out:
                    out.write(ev.text)
                    out.flush()
                    pending = (pending + ev.text).rpartition("\n")[2]
            else:
                assert member is not None and member.model is not None
                if not json_out and not ev.text.endswith("\n"):
                    out.write("\n")
                pending = ""
                out.flush()
                results.append(_done(member, ev, stats))
    finally:
        if pending:  # an error cut a reply short: the error line starts its own line
            out.write("\n")
            out.flush()
    if json_out:
        print_json(results)


def _done(m: Member, done: DoneEvent, stats: bool) -> dict[str, Any]:
    from ggufkit.runtime.generate import StopReason

    model = m.model
    assert model is not None
    if stats:
        notice(f"{m.name}: {stats_line(done, model.load_ms)}")
    if done.stop_reason is StopReason.CONTEXT:
        notice(f"{m.name}: warning: generation stopped: the context is full (use a larger --ctx)")
    return {"model": m.spec, "name": m.name, "file_type": m.file_type,
            **result_json(done, model.load_ms, model.warmup_ms)}


def _size(n: int | None) -> str:
    from ggufkit.units import human_bytes

    return "unknown" if n is None else human_bytes(n)
