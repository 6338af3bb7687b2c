"""A chat with several models (`run A B ... -i`): every user turn goes to each of them in turn.

Side by side (the default) each model keeps its own conversation; with `--group` they share one and
hear each other (transcript.py: what each is shown). Either way the conversation is one transcript of
who said what; before each reply the member's ChatSession is given its view of it, and the session's
KV cache keeps whatever prefix it already holds, as in a one-model chat.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from ggufkit.errors import BadInputError, GgufkitError
from ggufkit.runtime import transcript
from ggufkit.runtime.chat import ChatSession, TurnsDropped
from ggufkit.runtime.generate import DoneEvent, Event
from ggufkit.runtime.group import Ensemble, Failed, Member, Speaking
from ggufkit.runtime.transcript import Entry

GroupEvent = Speaking | Failed | TurnsDropped | Event


class GroupChat:
    def __init__(self, ensemble: Ensemble, shared: bool):
        self.ensemble = ensemble
        self.shared = shared
        self.entries: list[Entry] = []
        ensemble.start_chats()

    @property
    def members(self) -> list[Member]:
        return self.ensemble.members

    @property
    def messages(self) -> list[Entry]:
        """The transcript (as a one-model chat's messages: what a rescue on an abort saves)."""
        return self.entries

    @property
    def mode(self) -> str:
        return "group" if self.shared else "side-by-side"

    def find(self, name: str) -> Member:
        """A member by its number, its name, or the start of one name (case ignored)."""
        if name.isdigit() and 1 <= int(name) <= len(self.members):
            return self.members[int(name) - 1]
        exact = [m for m in self.members if m.name == name]
        starts = exact or [m for m in self.members if m.name.lower().startswith(name.lower())]
        if len(starts) == 1:
            return starts[0]
        names = ", ".join(m.name for m in self.members)
        raise BadInputError(f"{'several models' if starts else 'no model'} called {name!r} (models: {names})")

    # turns ------------------------------------------------------------------------------------------
    def send(self, text: str, to: Member | None = None, cancel: threading.Event | None = None
             ) -> Iterator[GroupEvent]:
        """A user turn, to every member (or only `to`): each member's Speaking, then its reply's events;
        a member that fails yields Failed and the next one answers. A cancelled reply ends the turn."""
        self.entries.append(Entry("user", text, to=to.name if to else None))
        for m in [to] if to else self.members:
            if cancel is not None and cancel.is_set():
                break
            try:
                with self.ensemble.loaded(m):
                    yield Speaking(m)
                    yield from self._reply(m, cancel)
            except GgufkitError as e:
                yield Failed(m, e)

    def _reply(self, m: Member, cancel: threading.Event | None) -> Iterator[Event | TurnsDropped]:
        chat = _chat(m)
        view = (transcript.group_view if self.shared else transcript.side_view)(self.entries, m.name)
        chat.messages = chat.messages[:1] if chat.system is not None else []
        chat.messages += view[:-1]
        for ev in chat.send(view[-1]["content"], cancel):
            if isinstance(ev, TurnsDropped):  # counted from the whole transcript each turn: tell only new ones
                new, m.dropped = ev.count - m.dropped, max(m.dropped, ev.count)
                if new > 0:
                    yield TurnsDropped(new)
                continue
            if isinstance(ev, DoneEvent):
                self.entries.append(Entry("assistant", ev.text, speaker=m.name))
            yield ev

    # slash commands: they act on every member -------------------------------------------------------
    def reset(self) -> None:
        """Forget the conversation (system prompts stay); the caches keep what the next turns share."""
        self.entries = []
        for m in self.members:
            m.dropped = 0

    def set_system(self, text: str | None) -> None:
        for m in self.members:
            _chat(m).set_system(text)

    def set_param(self, name: str, value: str) -> None:
        for m in self.members:
            _chat(m).set_param(name, value)

    def save(self, path: Path) -> None:
        systems = {_chat(m).system for m in self.members}
        system = systems.pop() if len(systems) == 1 else None  # each its own (from MODEL@PRESET): not saved
        transcript.save(path, self.entries, system, [m.name for m in self.members], self.mode)

    def load(self, path: Path) -> None:
        """Replace the conversation with a saved one (of these models, others, or one model)."""
        self.entries, system = transcript.load(path)
        if system is not None:
            self.set_system(system)
        for m in self.members:
            m.dropped = 0

    def close(self) -> None:
        self.ensemble.close()


def _chat(m: Member) -> ChatSession:
    assert m.chat is not None, "Ensemble.start_chats() gave every member a session"
    return m.chat
