"""`ggufkit run --interactive`: the chat loop (line editing, slash commands, Ctrl-C stops a reply).

On a terminal: a `>>> ` prompt with readline editing and history. With stdin not a terminal: one user
turn per line, no prompt, each reply followed by a newline (for scripts and tests). Replies stream to
stdout; notices and errors go to stderr.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from ggufkit.cli.interrupts import CtrlC
from ggufkit.cli.output import TextStream, notice, stats_line
from ggufkit.errors import GgufkitError, Interrupted
from ggufkit.runtime.chat import ChatSession, TurnsDropped
from ggufkit.runtime.generate import DoneEvent, StopReason, TokenEvent
from ggufkit.runtime.params import SAMPLING_KEYS
from ggufkit.runtime.settings import DEFAULT_SEED
from ggufkit.units import plural

PROMPT = ">>> "
HELP = """\
/help               this list
/exit, /bye         end the chat (Ctrl-D too)
/reset              forget the conversation (the system prompt stays)
/system [TEXT]      set the system prompt (no TEXT: remove it)
/set PARAM VALUE    change a setting: {params}
/show               current settings, template and context use
/save FILE          write the conversation as JSON
/load FILE          replace the conversation with a saved one
Ctrl-C stops the reply being written; the chat goes on.""".format(
    params=textwrap.fill(" ".join([*SAMPLING_KEYS, "max_tokens"]), width=98, initial_indent=" " * 38,
                         subsequent_indent=" " * 20).lstrip())


def chat_loop(session: ChatSession, first: str | None, *, stats: bool) -> None:
    """Turns from stdin until /exit or end of input; `first` (from -p) is answered first. Closes `session`."""
    tty = sys.stdin.isatty()
    if tty:
        try:
            import readline  # noqa: F401  (input() gains line editing and history)
        except ImportError:
            pass
        notice(f"chatting with {session.model.params.path.name} (template {session.template.name}); "
               "/help for commands, Ctrl-D or /exit to end")
    try:
        with CtrlC(armed=False) as irq:
            if first:
                _reply(session, first, irq, stats, tty)
            while True:
                line = _read_line(tty)
                if line is None:
                    break
                if not line.strip():
                    continue
                if line.startswith("/"):
                    try:
                        if not _command(session, line.strip(), tty):
                            break
                    except GgufkitError as e:
                        notice(f"error: {e}")
                    continue
                try:
                    _reply(session, line, irq, stats, tty)
                except Interrupted:
                    raise
                except GgufkitError as e:
                    notice(f"error: {e}")
    finally:
        session.close()


def _read_line(tty: bool) -> str | None:
    while True:
        try:
            if tty:
                return input(PROMPT)
            line = sys.stdin.readline()
            return line.rstrip("\n") if line else None
        except EOFError:
            if tty:
                sys.stdout.write("\n")
            return None
        except KeyboardInterrupt:
            if not tty:
                raise
            sys.stdout.write("^C\n")
            notice("(Ctrl-D or /exit ends the chat)")


def _reply(session: ChatSession, text: str, irq: CtrlC, stats: bool, tty: bool) -> None:
    """Stream one reply. Ctrl-C stops it; on a terminal the chat goes on, with stdin not a terminal (a
    script feeding turns) it ends the chat: Interrupted, after the reply so far and its stats."""
    out = TextStream()
    irq.cancel.clear()
    irq.armed = True
    done: DoneEvent | None = None
    try:
        for ev in session.send(text, irq.cancel):
            if type(ev) is TokenEvent:
                out.write(ev.text)
            elif isinstance(ev, TurnsDropped):
                what = "the oldest exchange" if ev.count == 1 else f"the {ev.count} oldest exchanges"
                notice(f"context full: dropped {what}")
            elif isinstance(ev, DoneEvent):
                done = ev
    finally:
        irq.armed = False
    out.write("\n")
    out.end()
    if done is None:
        return
    if done.stop_reason is StopReason.INTERRUPTED and tty:
        notice("(reply stopped)")
    elif done.stop_reason is StopReason.CONTEXT:
        notice("context full: reply cut short; the oldest turns go next time")
    if stats:
        notice(stats_line(done))
    if done.stop_reason is StopReason.INTERRUPTED and not tty:
        raise Interrupted(f"interrupted after {plural(done.n_generated, 'generated token')} of a reply")


def _command(session: ChatSession, line: str, tty: bool) -> bool:
    """Run one slash command; False ends the chat."""
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    out = sys.stdout
    if name in ("/exit", "/bye", "/quit"):
        return False
    if name in ("/help", "/?"):
        out.write(HELP + "\n")
    elif name == "/reset":
        session.reset()
        notice("conversation cleared")
    elif name == "/system":
        session.set_system(arg or None)
        notice("system prompt set" if arg else "system prompt removed")
    elif name == "/set":
        param, _, value = arg.partition(" ")
        if not param or not value.strip():
            notice("usage: /set PARAM VALUE (see /help)")
        else:
            session.set_param(param, value.strip())
            notice(f"{param} = {value.strip()}")
    elif name == "/show":
        out.write(_show(session) + "\n")
    elif name == "/save":
        if not arg:
            notice("usage: /save FILE")
        else:
            session.save(Path(arg).expanduser())
            notice(f"saved {plural(len(session.messages), 'message')} to {arg}")
    elif name == "/load":
        if not arg:
            notice("usage: /load FILE")
        else:
            session.load(Path(arg).expanduser())
            notice(f"loaded {plural(len(session.messages), 'message')} from {arg}")
    else:
        notice(f"unknown command {name} (/help lists them)")
    out.flush()
    return True


def _show(session: ChatSession) -> str:
    s = session.sampling.to_dict()
    s.pop("grammar", None)
    if s.get("seed") == DEFAULT_SEED:
        s["seed"] = "random"  # llama.cpp's LLAMA_DEFAULT_SEED: a new seed each run
    rows = [
        ("model", str(session.model.params.path)),
        ("template", session.template.name),
        ("system", json.dumps(session.system) if session.system else "-"),
        ("context", f"{len(session.kv)} of {session.model.n_ctx} tokens in use, "
                    f"{plural(len(session.messages), 'message')}"),
        ("max_tokens", "-1 (until the end of the text or a full context)" if session.stop.max_tokens < 0
         else str(session.stop.max_tokens)),
        ("sampling", " ".join(f"{k}={v}" for k, v in s.items())),
    ]
    if session.sampling.grammar is not None:
        rows.append(("grammar", "set"))
    width = max(len(k) for k, _ in rows) + 2
    return "\n".join(f"{k + ':':<{width}}{v}" for k, v in rows)
