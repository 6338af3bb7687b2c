"""`ggufkit run` after argument parsing: open the model, then one-shot generation or the chat loop."""

from __future__ import annotations

import sys
from typing import Any

from ggufkit.cli.output import notice, print_json
from ggufkit.errors import BadInputError
from ggufkit.runtime.generate import DoneEvent, TokenEvent
from ggufkit.runtime.prepare import PreparedModel
from ggufkit.runtime.settings import RunSettings


def run(prepared: PreparedModel, settings: RunSettings, merged: dict[str, Any], text: str | None, *,
        interactive: bool, json_out: bool, stats: bool, verbose: bool) -> int:
    from gguf.constants import Keys

    from ggufkit.runtime import templates
    from ggufkit.runtime.model import load

    chat = interactive or bool(merged.get("chat") or merged.get("template") or merged.get("template_file")
                               or merged.get("system"))
    template = None
    if chat:  # before loading: a bad template should not cost a model load
        template = templates.select(
            merged.get("template"), _path(merged.get("template_file")), prepared.chat_template,
            prepared.token_text(Keys.Tokenizer.BOS_ID), prepared.token_text(Keys.Tokenizer.EOS_ID),
            strict=not interactive, on_notice=notice, model_path=prepared.source)
    with load(settings.load) as model:
        for w in model.warnings:
            notice(f"warning: {w}")
        if verbose:
            notice(f"model: {prepared.path} (n_ctx {model.n_ctx}, threads {settings.load.n_threads}, "
                   f"load {model.load_ms:.1f} ms, warm-up {model.warmup_ms:.1f} ms of it)")
            if template is not None:
                notice(f"template: {template.name}")
        if interactive:
            from ggufkit.cli.run_chat import chat_loop

            return chat_loop(model, template, settings, merged.get("system"), text, stats=stats, verbose=verbose)
        return _one_shot(model, template, settings, merged.get("system"), text or "", merged.get("grammar_file"),
                         json_out, stats, verbose)


def _path(value: str | None):
    from pathlib import Path

    return None if value is None else Path(value)


def _one_shot(model, template, settings: RunSettings, system: str | None, text: str, grammar_file: str | None,
              json_out: bool, stats: bool, verbose: bool) -> int:
    from ggufkit.runtime.chat import ChatSession
    from ggufkit.runtime.generate import stream

    if template is not None:
        session = ChatSession(model, template, settings.sampling, settings.stop, system)
        tokens = session.tokenize(template.render([*session.messages, {"role": "user", "content": text}]))
    else:
        tokens = model.tokenize(text, add_special=True, parse_special=False)
    if not text.strip() and len(tokens) <= 1:
        raise BadInputError("the prompt is empty")
    with make_sampler(model, settings, grammar_file) as sampler:
        if verbose:
            notice("sampler: " + sampler.description)
        out = sys.stdout
        done: DoneEvent | None = None
        for ev in stream(model, sampler, tokens, settings.stop):
            if type(ev) is TokenEvent:
                if ev.text and not json_out:
                    out.write(ev.text)
                    out.flush()
            else:
                done = ev
    assert done is not None
    if json_out:
        print_json(_result_json(done, model.load_ms, model.warmup_ms))
    elif done.text and not done.text.endswith("\n") and out.isatty():
        out.write("\n")
    if stats:
        notice(stats_line(done, model.load_ms))
    if done.stop_reason == "context":
        notice("warning: generation stopped: the context is full (use a larger --ctx)")
    return 0


def make_sampler(model, settings: RunSettings, grammar_file: str | None):
    """The native chain; a grammar that llama.cpp cannot parse is reported against its file."""
    from ggufkit.runtime.sampler import build_sampler

    try:
        return build_sampler(model, settings.sampling)
    except BadInputError as e:
        if grammar_file and e.path is None:
            raise BadInputError(e.message, grammar_file) from None
        raise


def _result_json(done: DoneEvent, load_ms: float, warmup_ms: float) -> dict[str, Any]:
    return {
        "text": done.text,
        "stop_reason": done.stop_reason,
        "prompt_tokens": done.n_prompt,
        "prompt_tokens_evaluated": done.n_prompt_eval,
        "generated_tokens": done.n_generated,
        "generated_ids": done.tokens,
        "timings": {
            "load_ms": round(load_ms, 3),
            "warmup_ms": round(warmup_ms, 3),  # part of load_ms
            "prompt_ms": round(done.prompt_ms, 3),
            "prompt_tokens_per_s": round(done.prompt_tps, 2),
            "generation_ms": round(done.gen_ms, 3),
            "generation_tokens_per_s": round(done.gen_tps, 2),
        },
    }


def stats_line(done: DoneEvent, load_ms: float | None = None) -> str:
    reused = done.n_prompt - done.n_prompt_eval
    parts = [] if load_ms is None else [f"load {load_ms:.1f} ms"]
    parts.append(f"prompt {done.n_prompt_eval} tokens" + (f" (+{reused} cached)" if reused else "")
                 + f" in {done.prompt_ms:.1f} ms, {done.prompt_tps:.1f} t/s")
    parts.append(f"generated {done.n_generated} tokens in {done.gen_ms:.1f} ms, {done.gen_tps:.1f} t/s")
    parts.append(f"stop: {done.stop_reason}")
    return " | ".join(parts)
