"""`ggufkit run A B ... -i`: the chat loop with several models, side by side or (--group) in one conversation.

Input, Ctrl-C and /show work as in a one-model chat (run_chat.py). Each reply is one paragraph on stdout
that starts with its speaker's name, `NAME: `, which is also how the other models hear it in a group;
notices go to stderr. Slash commands act on every model; `/to NAME TEXT` asks one.
"""

from __future__ import annotations

import sys

from ggufkit.cli.output import notice, stats_line
from ggufkit.cli.interrupts import CtrlC
from ggufkit.cli.run_chat import HELP, _read_line, _show
from ggufkit.cli.run_chat import _command as _session_command
from ggufkit.errors import GgufkitError
from ggufkit.runtime.chat import TurnsDropped
from ggufkit.runtime.generate import DoneEvent, StopReason, TokenEvent
from ggufkit.runtime.group import Failed, Member, Speaking
from ggufkit.runtime.group_chat import GroupChat
from ggufkit.units import plural

GROUP_HELP = HELP + """
/to NAME TEXT       only NAME answers (its number, its name or the start of it)
Every command acts on all the models; /save keeps who said what."""


def group_chat_loop(chat: GroupChat, first: str | None, *, stats: bool) -> None:
    """Turns from stdin until /exit or end of input; `first` (from -p) is answered first. Closes `chat`."""
    tty = sys.stdin.isatty()
    if tty:
        try:
            import readline  # noqa: F401  (input() gains line editing and history)
        except ImportError:
            pass
        who = ", ".join(f"{m.number}: {m.name} ({m.template.name if m.template else '-'})" for m in chat.members)
        notice(f"chatting {chat.mode} with {who}; /help for commands, Ctrl-D or /exit to end")
    try:
        with CtrlC(armed=False) as irq:
            if first:
                _turn(chat, first, None, irq, stats)
            while (line := _read_line(tty)) is not None:
                if not line.strip():
                    continue
                try:
                    if not line.startswith("/"):
                        _turn(chat, line, None, irq, stats)
                    elif not _command(chat, line.strip(), irq, stats):
                        break
                except GgufkitError as e:
                    notice(f"error: {e}")
    finally:
        chat.close()


class _Reply:
    """One speaker's line on stdout: its name is written with its first text, so a notice before it
    (turns dropped) stays on its own line."""

    def __init__(self, member: Member):
        self.member = member
        self.started = False

    def write(self, text: str) -> None:
        if not self.started:
            sys.stdout.write(f"{self.member.name}: ")
            self.started = True
        sys.stdout.write(text)
        sys.stdout.flush()

    def end(self) -> None:
        if self.started:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.started = False


def _turn(chat: GroupChat, text: str, to: Member | None, irq: CtrlC, stats: bool) -> None:
    irq.cancel.clear()
    irq.armed = True
    reply: _Reply | None = None
    try:
        for ev in chat.send(text, to, irq.cancel):
            if isinstance(ev, Speaking):
                reply = _Reply(ev.member)
            elif type(ev) is TokenEvent:
                if ev.text and reply is not None:
                    reply.write(ev.text)
            elif isinstance(ev, TurnsDropped) and reply is not None:
                notice(f"{reply.member.name}: context full: dropped the {ev.count} oldest "
                       f"exchange{'s' if ev.count > 1 else ''}")
            elif isinstance(ev, DoneEvent) and reply is not None:
                reply.write("")
                reply.end()
                _after(reply.member, ev, stats)
            elif isinstance(ev, Failed):
                if reply is not None:
                    reply.end()
                notice(f"error: {ev.member.name}: {ev.error}")
    finally:
        irq.armed = False
        if reply is not None:
            reply.end()


def _after(m: Member, done: DoneEvent, stats: bool) -> None:
    if done.stop_reason is StopReason.INTERRUPTED:
        notice(f"{m.name}: (reply stopped; the turn ends here)")
    elif done.stop_reason is StopReason.CONTEXT:
        notice(f"{m.name}: context full: reply cut short; the oldest turns go next time")
    if stats:
        notice(f"{m.name}: {stats_line(done)}")


def _command(chat: GroupChat, line: str, irq: CtrlC, stats: bool) -> bool:
    """Run one slash command; False ends the chat. The commands of a one-model chat are run_chat's: a
    GroupChat does what they ask of a session (reset, set_system, set_param, save, load) for every model."""
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    out = sys.stdout
    if name in ("/help", "/?"):
        out.write(GROUP_HELP + "\n")
    elif name == "/to":
        who, _, text = arg.partition(" ")
        if not who or not text.strip():
            notice("usage: /to NAME TEXT")
        else:
            _turn(chat, text.strip(), chat.find(who), irq, stats)
    elif name == "/show":
        loading = "together" if chat.ensemble.together else "one at a time"
        out.write(f"mode:      {chat.mode}, {plural(len(chat.entries), 'message')}; models loaded {loading}\n")
        for m in chat.members:
            assert m.chat is not None
            out.write(f"[{m.number}: {m.name}]\n{_show(m.chat)}\n")
    else:
        return _session_command(chat, line, sys.stdin.isatty())
    out.flush()
    return True
