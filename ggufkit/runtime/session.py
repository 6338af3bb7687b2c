"""The run use case: from a prepared model and its settings to an open model, then a one-shot reply or a chat.

`one_shot` yields the same typed events as a chat turn (ChatSession.send): TokenEvents, then one
DoneEvent. cli/run.py renders them; nothing here prints.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.runtime import templates
from ggufkit.runtime.builtin_templates import default_template
from ggufkit.runtime.chat import ChatSession, prompt_tokens
from ggufkit.runtime.generate import Event, stream
from ggufkit.runtime.model import Model, load
from ggufkit.runtime.params import RunParams
from ggufkit.runtime.prepare import PreparedModel
from ggufkit.runtime.sampler import build_sampler
from ggufkit.runtime.settings import RunSettings
from ggufkit.runtime.templates import ChatTemplate

NoticeFn = Callable[[str], None]


@dataclass
class Run:
    """An open model and what a run needs around it."""

    model: Model
    params: RunParams
    template: ChatTemplate | None  # None: a one-shot prompt goes to the model as it is
    system: str | None
    grammar_file: Path | None

    def one_shot(self, text: str, on_sampler: NoticeFn | None = None,
                 cancel: threading.Event | None = None) -> Iterator[Event]:
        """Generate after `text` (through the template, if any). `on_sampler` gets the chain's description;
        `cancel` set stops the generation (generate.stream)."""
        if self.template is not None:
            tokens = prompt_tokens(self.model, self.template, self.system, text)
        else:
            tokens = self.model.tokenize(text, add_special=True, parse_special=False)
        if not text.strip() and len(tokens) <= 1:
            raise BadInputError("the prompt is empty")
        with build_sampler(self.model, self.params.sampling, self.grammar_file) as sampler:
            if on_sampler is not None:
                on_sampler(sampler.description)
            yield from stream(self.model, sampler, tokens, self.params.stop, cancel=cancel)

    def chat(self) -> ChatSession:
        """A conversation kept in the KV cache; the sampling settings (grammar included) are checked first."""
        assert self.template is not None, "open_run(..., interactive=True) always selects a template"
        build_sampler(self.model, self.params.sampling).close()
        return ChatSession(self.model, self.template, self.params.sampling, self.params.stop, self.system)


@contextmanager
def open_run(prepared: PreparedModel, settings: RunSettings, *, interactive: bool,
             on_notice: NoticeFn | None = None) -> Iterator[Run]:
    """Check the settings, select the template, then load the model (a bad template costs no load)."""
    params = RunParams.from_settings(settings, prepared.path)
    template = select_template(prepared, settings, interactive, on_notice)
    with load(params.load) as model:
        yield Run(model, params, template, settings.system, settings.grammar_file)


def select_template(prepared: PreparedModel, settings: RunSettings, interactive: bool,
                    on_notice: NoticeFn | None = None) -> ChatTemplate | None:
    """A chat always has a template; a one-shot prompt only with --chat, --template(-file) or --system.

    A broken model template is an error for a one-shot prompt, a notice and the fallback in a chat."""
    if not interactive and not settings.wants_template:
        return None
    kv = prepared.gguf.kv
    default = default_template(prepared.gguf.architecture, kv.get(Keys.Tokenizer.MODEL), kv.get(Keys.Tokenizer.LIST))
    return templates.select(
        settings.template, settings.template_file, prepared.chat_template,
        prepared.token_text(Keys.Tokenizer.BOS_ID), prepared.token_text(Keys.Tokenizer.EOS_ID),
        strict=not interactive, on_notice=on_notice, model_path=prepared.source, default=default)
