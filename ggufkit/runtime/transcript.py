"""The conversation of several models (`run A B ... -i`): who said what, and what each model is shown.

One list of entries holds the user's turns (with the model a `/to` addressed) and every reply with its
speaker. Each model is shown its own view of it, which its own template renders:

- side by side (the default): the user's turns meant for it and its own replies, the very messages its
  own chat would hold. A turn it did not answer (stopped before its reply, failed, or `/to` another) is
  left out, as a one-model chat forgets a turn whose reply failed.
- group (`--group`): everything. Its own replies are the assistant's; the user's turns and the other
  models' replies are user messages, and a run of them is joined into one (chat templates want the
  roles to alternate), each part then labelled with its speaker: `User: ...`, `F16-Q2_K: ...`.

A reply without a speaker (a one-model chat /load-ed) counts as every model's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ggufkit.errors import BadInputError
from ggufkit.runtime.chat import load_document, write_document
from ggufkit.runtime.templates import Message

USER = "User"  # the user's label where a group view joins several speakers into one message


@dataclass
class Entry:
    role: str  # "user" or "assistant"
    content: str
    speaker: str | None = None  # a reply's model (its name); None: every model's own
    to: str | None = None  # a user turn's one addressee (/to NAME); None: every model

    def mine(self, name: str) -> bool:
        return self.role == "assistant" and self.speaker in (None, name)

    def for_(self, name: str) -> bool:
        return self.role == "user" and self.to in (None, name)


def side_view(entries: list[Entry], name: str) -> list[Message]:
    """What `name` would hold chatting alone: the turns it answered, then the current turn if it is meant for it."""
    turns: list[tuple[Entry | None, list[Entry]]] = []
    for e in entries:
        if e.role == "user" or not turns:
            turns.append((e, []) if e.role == "user" else (None, [e]))
        else:
            turns[-1][1].append(e)
    out: list[Message] = []
    for i, (turn, replies) in enumerate(turns):
        own = next((r for r in replies if r.mine(name)), None)
        if turn is not None and (own is not None or (i == len(turns) - 1 and turn.for_(name))):
            out.append({"role": "user", "content": turn.content})
        if own is not None:
            out.append({"role": "assistant", "content": own.content})
    return out


def group_view(entries: list[Entry], name: str) -> list[Message]:
    """Everything said, from `name`'s seat: its replies as the assistant's, the rest as labelled user messages."""
    out: list[Message] = []
    run: list[tuple[str, str, bool]] = []  # (label, text, plain: a user turn meant for `name`, shown unlabelled alone)

    def flush() -> None:
        if len(run) == 1 and run[0][2]:
            out.append({"role": "user", "content": run[0][1]})
        elif run:
            out.append({"role": "user", "content": "\n\n".join(f"{label}: {text}" for label, text, _ in run)})
        run.clear()

    for e in entries:
        if e.mine(name):
            flush()
            out.append({"role": "assistant", "content": e.content})
        elif e.role == "user":
            run.append((USER if e.for_(name) else f"{USER} (to {e.to})", e.content, e.for_(name)))
        else:
            run.append((e.speaker or "", e.content, False))
    flush()
    return out


def save(path: Path, entries: list[Entry], system: str | None, names: list[str], mode: str) -> None:
    """A ggufkit-chat file: one-model chats /load it too (each reply then counts as theirs)."""
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    for e in entries:
        m = {"role": e.role}
        if e.speaker is not None:
            m["speaker"] = e.speaker
        if e.to is not None:
            m["to"] = e.to
        messages.append({**m, "content": e.content})
    write_document(path, {"models": names, "mode": mode, "messages": messages})


def load(path: Path) -> tuple[list[Entry], str | None]:
    """The entries of a saved chat (of one model or several) and its system prompt, if it has one."""
    messages = load_document(path)["messages"]
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
    entries = []
    for i, m in enumerate(messages):
        if m["role"] == "system":
            continue
        speaker, to = m.get("speaker"), m.get("to")
        if not isinstance(speaker, str | None) or not isinstance(to, str | None):
            raise BadInputError(f"message {i} has a speaker or addressee that is not a name", path)
        entries.append(Entry(m["role"], m["content"], speaker if m["role"] == "assistant" else None,
                             to if m["role"] == "user" else None))
    return entries, system
