"""A conversation that lives in the KV cache: each turn decodes only what the cache does not hold yet.

Every turn renders the whole conversation through the template and tokenizes it; the longest prefix
shared with the tokens already in the cache is kept, and only the rest is evaluated. That stays correct
whatever the template does at turn boundaries. When the context fills, the oldest turns go (the system
prompt stays) and the cache is rebuilt once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ggufkit.errors import BadInputError, GgufkitError
from ggufkit.fsutil import atomic_output, read_text
from ggufkit.runtime.generate import DoneEvent, Event, StopReason, stream
from ggufkit.runtime.model import Model
from ggufkit.runtime.params import SAMPLING_KEYS, SamplingParams, StopParams
from ggufkit.runtime.sampler import Sampler, build_sampler
from ggufkit.runtime.templates import ChatTemplate, Message

CHAT_FORMAT = "ggufkit-chat"
MAX_CHAT_FILE = 64 << 20


@dataclass(slots=True)
class TurnsDropped:
    count: int  # user/assistant exchanges removed from the front of the conversation to make room


class ChatSession:
    def __init__(self, model: Model, template: ChatTemplate, sampling: SamplingParams,
                 stop: StopParams | None = None, system: str | None = None):
        self.model = model
        self.template = template
        self.sampling = sampling
        self.stop = stop or StopParams()
        self.messages: list[Message] = _system_turn(system)
        self.kv: list[int] = []  # exactly what the KV cache holds, in order
        self._sampler: Sampler | None = None

    # settings ---------------------------------------------------------------------------------------
    def set_sampling(self, sampling: SamplingParams) -> None:
        sampling.check()
        self.sampling = sampling
        self._drop_sampler()

    def set_param(self, name: str, value: str) -> None:
        if name.replace("-", "_") in ("max_tokens", "n_predict"):
            try:
                self.stop = replace(self.stop, max_tokens=int(value))
            except ValueError:
                raise BadInputError(f"max_tokens: {value!r} is not an int") from None
            return
        try:
            self.set_sampling(self.sampling.with_value(name, value))
        except BadInputError as e:
            if e.message.startswith("unknown sampling parameter"):  # /set also takes max_tokens: list it as /help does
                raise BadInputError(f"unknown parameter {name!r} (one of: {', '.join([*SAMPLING_KEYS, 'max_tokens'])})") from None
            raise

    def set_system(self, text: str | None) -> None:
        rest = [m for m in self.messages if m["role"] != "system"]
        self.messages = _system_turn(text) + rest

    @property
    def system(self) -> str | None:
        return self.messages[0]["content"] if self.messages and self.messages[0]["role"] == "system" else None

    def rebind(self, model: Model) -> None:
        """Go on with another open copy of the same model (several models loaded one at a time: reloaded);
        its cache starts empty, so the next turn re-reads the conversation."""
        self._drop_sampler()
        self.model = model
        self.kv = []

    def reset(self) -> None:
        """Forget the conversation (the system prompt stays) and empty the cache."""
        self.messages = self.messages[:1] if self.system is not None else []
        self.kv = []
        self.model.clear_memory()

    # turns ------------------------------------------------------------------------------------------
    def send(self, text: str, cancel: threading.Event | None = None) -> Iterator[Event | TurnsDropped]:
        """Add a user turn and stream the reply; the reply joins the conversation when it ends."""
        self.messages.append({"role": "user", "content": text})
        try:
            tokens, dropped = self._fit()
        except GgufkitError:
            self.messages.pop()
            raise
        if dropped:
            yield TurnsDropped(dropped)
        n_reuse = _common_prefix(self.kv, tokens)
        finished = False
        try:
            for ev in stream(self.model, self._get_sampler(), tokens, self.stop, n_reuse, cancel):
                if isinstance(ev, DoneEvent):
                    self.kv = ev.kv_tokens
                    if ev.n_generated == 0 and ev.stop_reason is StopReason.INTERRUPTED:
                        self.messages.pop()  # stopped before a word: the turn is withdrawn
                    else:
                        self.messages.append({"role": "assistant", "content": ev.text})
                    finished = True
                yield ev
        finally:
            if not finished:  # an error or an abandoned stream: the cache's content is unknown
                self.kv = []
                self.messages.pop()

    def _fit(self) -> tuple[list[int], int]:
        n_ctx = self.model.n_ctx
        reserve = min(self.stop.max_tokens if self.stop.max_tokens > 0 else n_ctx // 4, n_ctx // 2)
        dropped = 0
        while True:
            tokens = self.tokenize(self.template.render(self.messages, add_generation_prompt=True))
            if len(tokens) + reserve <= n_ctx:
                return tokens, dropped
            first = 1 if self.system is not None else 0
            if len(self.messages) - first <= 1:  # only the new turn is left
                if len(tokens) < n_ctx:
                    return tokens, dropped
                raise BadInputError(
                    f"this message needs {len(tokens)} tokens but the context holds {n_ctx} (use a larger --ctx)")
            # drop the oldest exchange: a user turn and the reply that followed it
            del self.messages[first]
            if len(self.messages) > first + 1 and self.messages[first]["role"] == "assistant":
                del self.messages[first]
            dropped += 1

    def tokenize(self, text: str) -> list[int]:
        return tokenize_rendered(self.model, text)

    def _get_sampler(self) -> Sampler:
        if self._sampler is None:
            self._sampler = build_sampler(self.model, self.sampling)
        return self._sampler

    def _drop_sampler(self) -> None:
        if self._sampler is not None:
            self._sampler.close()
            self._sampler = None

    def close(self) -> None:
        self._drop_sampler()

    # files ------------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        write_document(path, {"template": self.template.name, "messages": self.messages})

    def load(self, path: Path) -> None:
        """Replace the conversation with a saved one (the cache keeps whatever prefix still matches)."""
        self.messages = load_messages(path)


def prompt_tokens(model: Model, template: ChatTemplate, system: str | None, text: str) -> list[int]:
    """A one-shot prompt as the first user turn of a conversation, tokenized."""
    return tokenize_rendered(model, template.render([*_system_turn(system), {"role": "user", "content": text}]))


def tokenize_rendered(model: Model, text: str) -> list[int]:
    """Text a template rendered: its special tokens parsed."""
    tokens = model.tokenize(text, add_special=True, parse_special=True)
    # a template that writes the BOS itself, on a vocabulary that adds one too: keep one
    if len(tokens) > 1 and tokens[0] == tokens[1] == model.lib.llama_vocab_bos(model.vocab):
        tokens = tokens[1:]
    return tokens


def _system_turn(system: str | None) -> list[Message]:
    return [{"role": "system", "content": system}] if system else []


def write_document(path: Path, fields: dict[str, Any]) -> None:
    """A ggufkit-chat file (`fields` beside its format and version), whole or not at all."""
    if not path.parent.is_dir():
        raise BadInputError("directory does not exist", path.parent)
    doc = {"format": CHAT_FORMAT, "version": 1, **fields}
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_messages(path: Path) -> list[Message]:
    return [{"role": m["role"], "content": m["content"]} for m in load_document(path)["messages"]]


def load_document(path: Path) -> dict[str, Any]:
    """A file /save wrote, checked: every message a valid chat message (it may carry more keys, such as
    the speaker a conversation of several models names)."""
    data = read_text(path, "conversation", MAX_CHAT_FILE)
    try:
        doc: Any = json.loads(data)
    except ValueError as e:
        raise BadInputError(f"not a JSON conversation: {e}", path) from None
    if not isinstance(doc, dict) or doc.get("format") != CHAT_FORMAT or not isinstance(doc.get("messages"), list):
        raise BadInputError(f"not a {CHAT_FORMAT} file (saved by /save)", path)
    for i, m in enumerate(doc["messages"]):
        if (not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant")
                or not isinstance(m.get("content"), str) or (m["role"] == "system" and i != 0)):
            raise BadInputError(f"message {i} is not a valid chat message", path)
    return doc


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
