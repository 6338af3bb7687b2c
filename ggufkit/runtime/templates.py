"""Chat templates: the model's own Jinja template (untrusted), named built-ins, LLMFarm-style files.

A template inside a downloaded model is untrusted input. It is parsed and checked before it ever runs:
any reach for an underscore attribute or item (`__class__`, `__globals__`, `_module`...) is refused;
what remains runs in Jinja's ImmutableSandboxedEnvironment, where an unsafe access raises at once
instead of quietly rendering as an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ggufkit.choices import Choice
from ggufkit.errors import BadInputError, did_you_mean
from ggufkit.fsutil import read_text
from ggufkit.runtime.builtin_templates import BUILTIN_TEMPLATES, FALLBACK_TEMPLATE

MAX_TEMPLATE_BYTES = 1 << 20
MAX_OUTPUT_CHARS = 1 << 24  # a template that expands a small chat into more than this is refused

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": text}


class TemplateKind(Choice):
    JINJA = "jinja"  # a Jinja chat template (built-in, or the model's own, sandboxed)
    FILE = "file"  # an LLMFarm-style format file: {{prompt}} and {{system}} placeholders, no code at all


@dataclass
class ChatTemplate:
    name: str  # "llama3", "model", "file:PATH"
    source: str
    kind: TemplateKind = TemplateKind.JINJA
    bos: str = ""
    eos: str = ""

    def __post_init__(self) -> None:
        self.kind = TemplateKind(self.kind)  # "file" from a caller becomes TemplateKind.FILE

    def render(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        if self.kind is TemplateKind.FILE:
            return _render_file(self.source, messages)
        return _render_jinja(self, messages, add_generation_prompt)


def builtin(name: str) -> ChatTemplate:
    if name not in BUILTIN_TEMPLATES:
        hint = did_you_mean(name, BUILTIN_TEMPLATES) or f" (one of: {', '.join(BUILTIN_TEMPLATES)})"
        raise BadInputError(f"unknown template {name!r}{hint}")
    return ChatTemplate(name, BUILTIN_TEMPLATES[name])


def from_model(source: str, bos: str = "", eos: str = "") -> ChatTemplate:
    """The model's tokenizer.chat_template; raises BadInputError if it is hostile or broken."""
    t = ChatTemplate("model", source, bos=bos, eos=eos)
    check(t)
    return t


def from_file(path: Path) -> ChatTemplate:
    """An LLMFarm-style prompt format: plain text with {{prompt}} and optionally {{system}}."""
    text = read_text(path, "template", MAX_TEMPLATE_BYTES)
    if not _PROMPT.search(text):
        raise BadInputError("template file has no {{prompt}} placeholder", path)
    return ChatTemplate(f"file:{path}", text, kind=TemplateKind.FILE)


def check(t: ChatTemplate) -> None:
    """Parse, refuse unsafe constructs, then render a sample chat: every error surfaces here, early."""
    if t.kind is TemplateKind.FILE:
        return
    if len(t.source.encode()) > MAX_TEMPLATE_BYTES:
        raise BadInputError(f"{t.name} chat template is larger than 1 MiB")
    _compile(t)
    t.render([{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
              {"role": "assistant", "content": "A"}, {"role": "user", "content": "V"}])


_PROMPT = re.compile(r"\{\{\s*prompt\s*\}\}")
_SYSTEM = re.compile(r"\{\{\s*system\s*\}\}")


def _render_file(source: str, messages: list[Message]) -> str:
    """Each user turn is the file with {{prompt}} filled in; {{system}} is the system text on the first turn."""
    has_system = bool(messages) and messages[0]["role"] == "system"
    system = messages[0]["content"] if has_system else ""
    turns = messages[1:] if has_system else messages
    out: list[str] = []
    if system and not _SYSTEM.search(source):
        out.append(system + "\n")
    first = True
    for m in turns:
        if m["role"] == "user":
            text = _SYSTEM.sub(lambda _: system if first else "", source)
            out.append(_PROMPT.sub(lambda _: m["content"], text))
            first = False
        else:
            out.append(m["content"])
    return "".join(out)


_compiled: dict[str, Any] = {}


def _environment():
    from jinja2 import Undefined
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class LoudUnsafeUndefined(Undefined):
        """The sandbox answers an unsafe access with an Undefined that renders as ''; make it raise."""

        def __init__(self, hint=None, obj=None, name=None, exc=None):  # noqa: ANN001
            if exc is SecurityError:
                raise SecurityError(hint or f"access to {name!r} is unsafe")
            super().__init__(hint, obj, name, exc)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols], undefined=LoudUnsafeUndefined)

    def raise_exception(message: str) -> None:
        raise _TemplateRaised(str(message))

    def strftime_now(fmt: str) -> str:
        import datetime

        return datetime.datetime.now().strftime(str(fmt))

    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now)
    env.filters["tojson"] = _tojson
    return env


class _TemplateRaised(Exception):
    pass


def _tojson(value: Any, indent: int | None = None) -> str:
    import json

    return json.dumps(value, indent=indent, ensure_ascii=False)


def _compile(t: ChatTemplate):
    if t.source in _compiled:
        return _compiled[t.source]
    from jinja2 import TemplateSyntaxError, nodes

    env = _environment()
    try:
        ast = env.parse(t.source)
    except TemplateSyntaxError as e:
        raise BadInputError(f"{t.name} chat template does not parse: {e.message} (line {e.lineno})") from None
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(key, str) and key.startswith("_"):
            raise BadInputError(
                f"{t.name} chat template refused: it reaches for {key!r} (line {node.lineno}), "
                "which could escape the sandbox")
    compiled = env.from_string(ast)
    _compiled[t.source] = compiled
    return compiled


def _render_jinja(t: ChatTemplate, messages: list[Message], add_generation_prompt: bool) -> str:
    from jinja2 import TemplateError
    from jinja2.sandbox import SecurityError

    compiled = _compile(t)
    try:
        out = compiled.render(messages=messages, add_generation_prompt=add_generation_prompt,
                              bos_token=t.bos, eos_token=t.eos)
    except SecurityError as e:
        raise BadInputError(f"{t.name} chat template refused by the sandbox: {e}") from None
    except _TemplateRaised as e:
        raise BadInputError(f"{t.name} chat template rejected the conversation: {e}") from None
    except (TemplateError, TypeError, ValueError, AttributeError, IndexError, KeyError, OverflowError) as e:
        raise BadInputError(f"{t.name} chat template failed: {type(e).__name__}: {e}") from None
    if len(out) > MAX_OUTPUT_CHARS:
        raise BadInputError(f"{t.name} chat template produced more than {MAX_OUTPUT_CHARS} characters")
    return out


def select(name: str | None, file: Path | None, model_source: str | None, bos: str = "", eos: str = "",
           strict: bool = True, on_notice: Callable[[str], None] | None = None,
           model_path: Path | None = None, default: tuple[str, str] = (FALLBACK_TEMPLATE, "")) -> ChatTemplate:
    """--template-file, else --template NAME, else the model's own, else `default` (a built-in's name and
    why it fits this model: builtin_templates.default_template), named in a notice.

    A broken or hostile model template is an error when `strict`; otherwise a notice and the default
    (an interactive session should still start).
    """
    if file is not None:
        return from_file(file)
    if name is not None:
        return builtin(name)
    fallback, why = default
    using = f"using {fallback}" + (f" ({why})" if why else "")
    if model_source is None:
        if on_notice:
            on_notice(f"the model has no chat template; {using}")
        return builtin(fallback)
    try:
        return from_model(model_source, bos, eos)
    except BadInputError as e:
        if strict:
            raise BadInputError(f"{e.message} (use --template NAME or --template-file instead)", model_path) from None
        if on_notice:
            on_notice(f"warning: {e.message}; {using}")
        return builtin(fallback)


def checked_source(given: str) -> str:
    """`edit --chat-template`: the text of a Jinja file or of a built-in template named `given`, parsed,
    screened for unsafe constructs and rendered in the sandbox before anyone writes it into a model."""
    path: Path | None = Path(given)
    if path is not None and path.is_file():
        source = read_text(path, "template", MAX_TEMPLATE_BYTES)
    elif given in BUILTIN_TEMPLATES:
        source, path = BUILTIN_TEMPLATES[given], None
    else:
        raise BadInputError(f"--chat-template {given!r} is neither a file nor a template name "
                            f"(one of: {', '.join(BUILTIN_TEMPLATES)})")
    try:
        check(ChatTemplate("the", source))
    except BadInputError as e:
        raise BadInputError(e.message, path) from None
    return source
