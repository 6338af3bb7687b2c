"""`ggufkit run --interactive`: the chat loop (line editing, slash commands, Ctrl-C stops a reply).

On a terminal: a `>>> ` prompt with readline editing and history. With stdin not a terminal: one user
turn per line, no prompt, each reply followed by a newline (for scripts and tests). Replies stream to
stdout; notices and errors go to stderr.
"""

from __future__ import annotations

import json
import signal
import sys
import textwrap
import threading
from pathlib import Path

from ggufkit.cli.output import notice, stats_line
from ggufkit.errors import GgufkitError
from ggufkit.runtime.chat import ChatSession, TurnsDropped
from ggufkit.runtime.generate import DoneEvent, StopReason, TokenEvent
from ggufkit.runtime.params import SAMPLING_KEYS

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


class _Interrupts:
    """Ctrl-C while a reply streams only stops that reply; at the prompt it behaves as usual."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.generating = False
        self._old = signal.getsignal(signal.SIGINT)

    def __enter__(self) -> _Interrupts:
        signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._old)

    def _handle(self, signum, frame) -> None:  # noqa: ANN001
        if self.generating:
            self.cancel.set()
        else:
            raise KeyboardInterrupt


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
        with _Interrupts() as irq:
            if first:
                _reply(session, first, irq, stats)
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
                    _reply(session, line, irq, stats)
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


def _reply(session: ChatSession, text: str, irq: _Interrupts, stats: bool) -> None:
    out = sys.stdout
    irq.cancel.clear()
    irq.generating = True
    done: DoneEvent | None = None
    try:
        for ev in session.send(text, irq.cancel):
            if type(ev) is TokenEvent:
                if ev.text:
                    out.write(ev.text)
                    out.flush()
            elif isinstance(ev, TurnsDropped):
                notice(f"context full: dropped the {ev.count} oldest exchange{'s' if ev.count > 1 else ''}")
            elif isinstance(ev, DoneEvent):
                done = ev
    finally:
        irq.generating = False
    out.write("\n")
    out.flush()
    if done is None:
        return
    if done.stop_reason is StopReason.INTERRUPTED:
        notice("(reply stopped)")
    elif done.stop_reason is StopReason.CONTEXT:
        notice("context full: reply cut short; the oldest turns go next time")
    if stats:
        notice(stats_line(done))


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
            notice(f"saved {len(session.messages)} messages to {arg}")
    elif name == "/load":
        if not arg:
            notice("usage: /load FILE")
        else:
            session.load(Path(arg).expanduser())
            notice(f"loaded {len(session.messages)} messages from {arg}")
    else:
        notice(f"unknown command {name} (/help lists them)")
    out.flush()
    return True


def _show(session: ChatSession) -> str:
    s = session.sampling.to_dict()
    s.pop("grammar", None)
    lines = [
        f"model:     {session.model.params.path}",
        f"template:  {session.template.name}",
        f"system:    {json.dumps(session.system) if session.system else '-'}",
        f"context:   {len(session.kv)} of {session.model.n_ctx} tokens in use, {len(session.messages)} messages",
        f"max_tokens: {session.stop.max_tokens}",
        "sampling:  " + " ".join(f"{k}={v}" for k, v in s.items()),
    ]
    if session.sampling.grammar is not None:
        lines.append("grammar:   set")
    return "\n".join(lines)
