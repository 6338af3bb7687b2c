"""Several models at once (`run A B ...`): the members, which of them are loaded, a prompt put to each.

A member is one model with its own settings (the run's, then what its `MODEL@NAME` names), template and
stop tokens. A prompt goes to each in turn exactly as `run` of that model alone takes it (session.Run;
chats: group_chat.py), so greedy stays each model's greedy. All that can be known without llama.cpp is
checked for every member before the first is loaded: the files exist, their headers, the settings,
the templates.

The members are loaded together when they fit (memory_plan.py). Otherwise one at a time: a member is
loaded when it speaks and closed after it, and a chat keeps its conversation as the transcript, which
the member re-reads when it is loaded again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gguf.constants import Keys

from ggufkit.errors import GgufkitError
from ggufkit.formats.detect import sniff
from ggufkit.formats.ggml_types import ftype_name
from ggufkit.names import short_names
from ggufkit.runtime import abort
from ggufkit.runtime.builtin_templates import BUILTIN_TEMPLATES
from ggufkit.runtime.chat import ChatSession
from ggufkit.runtime.generate import Event
from ggufkit.runtime.model import Model, load
from ggufkit.runtime.params import RunParams
from ggufkit.runtime.prepare import PreparedModel, prepare_model
from ggufkit.runtime.presets import load_preset
from ggufkit.runtime.session import Run, select_template
from ggufkit.runtime.settings import RunSettings
from ggufkit.runtime.templates import ChatTemplate

NoticeFn = Callable[[str], None]


@dataclass
class Member:
    number: int  # 1, 2, ... in the order given
    name: str  # short and unique: the header of its replies, its label for the others, `/to NAME`
    spec: str  # as the user wrote it (MODEL or MODEL@NAME)
    prepared: PreparedModel
    settings: RunSettings
    params: RunParams
    template: ChatTemplate | None
    model: Model | None = None  # while loaded
    chat: ChatSession | None = None  # in a chat (kept while the model is not loaded)
    loads: int = 0
    dropped: int = 0  # exchanges its view of a chat lost to a full context (a notice tells new ones)

    @property
    def file_type(self) -> str | None:
        t = self.prepared.gguf.kv.get(Keys.General.FILE_TYPE)
        return ftype_name(t) if isinstance(t, int) else None

    def run(self) -> Run:
        assert self.model is not None, "Ensemble.loaded() first"
        return Run(self.model, self.params, self.template, self.settings.system, self.settings.grammar_file)


@dataclass
class Speaking:
    """The member's reply (its TokenEvents, then a DoneEvent) follows; its model is loaded."""

    member: Member


@dataclass
class Failed:
    """A chat turn the member could not answer (the others still do)."""

    member: Member
    error: GgufkitError


def split_spec(spec: str) -> tuple[Path, str | None]:
    """`MODEL@NAME` -> (MODEL, NAME); a file whose own name holds an '@' stays whole."""
    path, at, name = spec.rpartition("@")
    if not at or not path or not name or Path(spec).exists():
        return Path(spec), None
    return Path(path), name


def overrides(name: str) -> dict[str, Any]:
    """The settings `MODEL@NAME` sets: a built-in template's name, else a preset (built-in or TOML file)."""
    if name in BUILTIN_TEMPLATES and not Path(name).exists():
        return {"template": name}
    return load_preset(name)


def prepare_members(specs: Sequence[str], settings: RunSettings, *, interactive: bool,
                    on_notice: NoticeFn | None = None) -> list[Member]:
    """Every check that needs no llama.cpp, for all models, before any is loaded (a missing file first)."""
    split = [split_spec(s) for s in specs]
    for path, _ in split:
        sniff(path)
    # one thread count for all, measured once: the same arithmetic as each alone with --threads N
    settings = replace(settings, threads=settings.n_threads)
    member_settings = [replace(settings, **overrides(name)) if name else settings for _, name in split]
    names = _unique_names([p for p, _ in split], [n for _, n in split])
    members = []
    for i, (spec, (path, _), s, name) in enumerate(zip(specs, split, member_settings, names)):
        notice = (lambda text, name=name: on_notice(f"{name}: {text}")) if on_notice else None
        prepared = prepare_model(path, notice)
        params = RunParams.from_settings(s, prepared.path)
        template = select_template(prepared, s, interactive, notice)
        members.append(Member(i + 1, name, spec, prepared, s, params, template))
    return members


def _unique_names(paths: list[Path], suffixes: list[str | None]) -> list[str]:
    names = [n + (f"@{Path(s).stem}" if s else "") for n, s in zip(short_names(paths), suffixes)]
    return [f"{n}#{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


class Ensemble:
    """The members and their models: all loaded on entering when `together`, else each when it speaks."""

    def __init__(self, members: list[Member], together: bool, on_load: Callable[[Member], None] | None = None):
        self.members = members
        self.together = together
        self.on_load = on_load

    def __enter__(self) -> Ensemble:
        try:
            for m in self.members if self.together else ():
                self._load(m)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for m in self.members:
            if m.chat is not None:
                m.chat.close()
            if m.model is not None:
                m.model.close()
                m.model = None

    def _load(self, m: Member) -> Model:
        abort.set_path(m.prepared.source)
        m.model = load(m.params.load)
        m.loads += 1
        if m.chat is not None:
            m.chat.rebind(m.model)
        if self.on_load is not None:
            self.on_load(m)
        return m.model

    @contextmanager
    def loaded(self, m: Member) -> Iterator[Model]:
        """`m`'s model, loaded if it is not; one at a time, closed again afterwards."""
        model = m.model or self._load(m)
        abort.set_path(m.prepared.source)
        try:
            yield model
        finally:
            if not self.together:
                if m.chat is not None:
                    m.chat.close()  # its sampler holds the model's vocabulary: rebuilt on the next load
                model.close()
                m.model = None

    def one_shot(self, text: str, on_sampler: Callable[[Member, str], None] | None = None
                 ) -> Iterator[Speaking | Event]:
        """Each member's reply to `text` in turn, as `Run.one_shot` of that model alone streams it."""
        for m in self.members:
            with self.loaded(m):
                yield Speaking(m)
                yield from m.run().one_shot(text, (lambda d, m=m: on_sampler(m, d)) if on_sampler else None)

    def start_chats(self) -> None:
        """A chat session per member, its sampling settings checked on its model (one at a time: each
        loaded once now, so a model that cannot load is found before the first turn)."""
        for m in self.members:
            with self.loaded(m):
                m.chat = m.run().chat()
