"""`ggufkit run`: one-shot generation (prompt from -p, -f or stdin) and `--interactive` chat."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ggufkit.cli.common import JsonOpt, complete_presets, complete_templates
from ggufkit.cli.output import TextStream, end_stdout_line, notice, print_json, result_json, stats_line
from ggufkit.errors import BadInputError, Interrupted
from ggufkit.runtime.builtin_templates import BUILTIN_TEMPLATES
from ggufkit.runtime.settings import RunSettings
from ggufkit.units import plural

if TYPE_CHECKING:
    from ggufkit.runtime.generate import DoneEvent
    from ggufkit.runtime.session import Run

_S = "Sampling"
_L = "Loading"
_T = "Templates and chat"
_O = "Output"


def _default(name: str) -> str:
    return f" Default: {getattr(RunSettings, name)}."


def run(
    model: Annotated[list[Path] | None, typer.Argument(help="Model file (GGUF, or a legacy GGML/GGMF/GGJT file: converted once into a cache). Several: each answers in turn (MODEL@PRESET or MODEL@TEMPLATE: its own settings).", show_default=False)] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="The prompt ('-' reads stdin).", show_default=False)] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the prompt from a file.", show_default=False)] = None,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="Chat: the conversation stays in the KV cache; /help lists commands.", rich_help_panel=_T)] = False,
    group: Annotated[bool, typer.Option("--group", help="Several models, -i: one conversation, each hears the others (default: each its own).", rich_help_panel=_T)] = False,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", "-n", help="Most tokens to generate (-1: until end of text or full context).", show_default=False)] = None,
    stop: Annotated[list[str] | None, typer.Option("--stop", help="Stop before this text (repeatable).", show_default=False)] = None,
    # templates
    chat: Annotated[bool, typer.Option("--chat", help="One-shot: wrap the prompt in the chat template.", rich_help_panel=_T)] = False,
    template: Annotated[str | None, typer.Option("--template", help="Built-in prompt format: " + " ".join(BUILTIN_TEMPLATES) + ".", rich_help_panel=_T, show_default=False, autocompletion=complete_templates)] = None,
    template_file: Annotated[Path | None, typer.Option("--template-file", help="LLMFarm-style format file with {{prompt}} and optional {{system}}.", rich_help_panel=_T, show_default=False)] = None,
    system: Annotated[str | None, typer.Option("--system", help="System prompt (implies --chat).", rich_help_panel=_T, show_default=False)] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="Settings from a TOML file or a built-in preset (flags override it).", rich_help_panel=_T, show_default=False, autocompletion=complete_presets)] = None,
    list_presets: Annotated[bool, typer.Option("--list-presets", help="List the built-in presets and exit.", rich_help_panel=_T)] = False,
    # sampling
    temp: Annotated[float | None, typer.Option("--temp", help="Temperature (0 = greedy)." + _default("temp"), rich_help_panel=_S, show_default=False)] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Top-k (0 = off)." + _default("top_k"), rich_help_panel=_S, show_default=False)] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", help="Top-p (1 = off)." + _default("top_p"), rich_help_panel=_S, show_default=False)] = None,
    min_p: Annotated[float | None, typer.Option("--min-p", help="Min-p (0 = off)." + _default("min_p"), rich_help_panel=_S, show_default=False)] = None,
    typical: Annotated[float | None, typer.Option("--typical", help="Locally typical sampling p (1 = off).", rich_help_panel=_S, show_default=False)] = None,
    mirostat: Annotated[int | None, typer.Option("--mirostat", help="Mirostat 1 or 2 (0 = off); replaces top-k/p, min-p, typical.", rich_help_panel=_S, show_default=False)] = None,
    mirostat_tau: Annotated[float | None, typer.Option("--mirostat-tau", help="Mirostat target entropy." + _default("mirostat_tau"), rich_help_panel=_S, show_default=False)] = None,
    mirostat_eta: Annotated[float | None, typer.Option("--mirostat-eta", help="Mirostat learning rate." + _default("mirostat_eta"), rich_help_panel=_S, show_default=False)] = None,
    repeat_penalty: Annotated[float | None, typer.Option("--repeat-penalty", help="Repetition penalty (1 = off).", rich_help_panel=_S, show_default=False)] = None,
    repeat_last_n: Annotated[int | None, typer.Option("--repeat-last-n", help="Tokens the penalties look back on (-1 = context)." + _default("repeat_last_n"), rich_help_panel=_S, show_default=False)] = None,
    presence_penalty: Annotated[float | None, typer.Option("--presence-penalty", help="Presence penalty (0 = off).", rich_help_panel=_S, show_default=False)] = None,
    frequency_penalty: Annotated[float | None, typer.Option("--frequency-penalty", help="Frequency penalty (0 = off).", rich_help_panel=_S, show_default=False)] = None,
    seed: Annotated[int | None, typer.Option("--seed", "-s", help="Sampling seed (default: random).", rich_help_panel=_S, show_default=False)] = None,
    grammar_file: Annotated[Path | None, typer.Option("--grammar-file", help="Constrain output with a GBNF grammar (root rule 'root').", rich_help_panel=_S, show_default=False)] = None,
    # loading
    ctx: Annotated[int | None, typer.Option("--ctx", "-c", help="Context length in tokens (0 = the model's)." + _default("ctx"), rich_help_panel=_L, show_default=False)] = None,
    threads: Annotated[int | None, typer.Option("--threads", "-t", help="CPU threads. Default: one per CPU that others leave free (all on an idle machine).", rich_help_panel=_L, show_default=False)] = None,
    batch: Annotated[int | None, typer.Option("--batch", "-b", help="Prompt batch size." + _default("batch"), rich_help_panel=_L, show_default=False)] = None,
    gpu_layers: Annotated[str | None, typer.Option("--gpu-layers", "-ngl", help="Layers to offload to the GPU: N or 'all'.", rich_help_panel=_L, show_default=False)] = None,
    no_mmap: Annotated[bool, typer.Option("--no-mmap", help="Read the model into memory instead of mapping it.", rich_help_panel=_L)] = False,
    mlock: Annotated[bool, typer.Option("--mlock", help="Lock the model in RAM.", rich_help_panel=_L)] = False,
    lora: Annotated[Path | None, typer.Option("--lora", help="Apply a LoRA adapter (GGUF).", rich_help_panel=_L, show_default=False)] = None,
    lora_scale: Annotated[float | None, typer.Option("--lora-scale", help="LoRA scale." + _default("lora_scale"), rich_help_panel=_L, show_default=False)] = None,
    rpc: Annotated[str | None, typer.Option("--rpc", help="Offload to llama.cpp RPC servers HOST:PORT[,HOST:PORT...] (`ggufkit rpc-server`); --gpu-layers then defaults to all. Layers are spread over the servers' devices, then this machine's GPUs, by free memory.", rich_help_panel=_L, show_default=False)] = None,
    tensor_split: Annotated[str | None, typer.Option("--tensor-split", "-ts", help="Offloaded layers per device, as proportions (e.g. 3,1,1): the servers' devices in --rpc order, then local GPUs; layers --gpu-layers keeps back stay on this CPU.", rich_help_panel=_L, show_default=False)] = None,
    no_warmup: Annotated[bool, typer.Option("--no-warmup", help="Skip the warm-up decode at load; the first tokens then pay one-time costs (GPU kernels, page-in).", rich_help_panel=_L)] = False,
    backend_sampling: Annotated[bool, typer.Option("--backend-sampling", help="Sample inside llama.cpp's graph (experimental) instead of on the CPU. Default: only greedy (--temp 0, no penalties) with every layer on a GPU. Not with a grammar.", rich_help_panel=_S)] = False,
    no_backend_sampling: Annotated[bool, typer.Option("--no-backend-sampling", help="Always sample on the CPU.", rich_help_panel=_S)] = False,
    # output
    json_: JsonOpt = False,
    stats: Annotated[bool, typer.Option("--stats", help="Timings on stderr.", rich_help_panel=_O)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Timings, sampler chain and template on stderr.", rich_help_panel=_O)] = False,
    verbose_llama: Annotated[bool, typer.Option("--verbose-llama", help="Show llama.cpp's own log on stderr.", rich_help_panel=_O)] = False,
) -> int:
    """Generate text: stream the reply to a prompt, or chat with --interactive.

    Only generated text goes to stdout. One-shot mode sends the prompt as is, unless --chat, --template,
    --template-file or --system asks for the chat format. Presets: --list-presets.

    Several models answer in turn, each under a header naming it (in a chat: side by side, or --group).
    """
    if list_presets:
        _print_presets(json_)
        return 0
    if not model:
        raise BadInputError("missing MODEL (see ggufkit run --help)")
    if group and (len(model) < 2 or not interactive):
        raise BadInputError("--group is a chat of several models: give two models or more and -i")
    if backend_sampling and no_backend_sampling:
        raise BadInputError("give --backend-sampling or --no-backend-sampling, not both")
    from ggufkit.runtime import cpuload, openmp
    from ggufkit.runtime.presets import load_preset

    flags: dict[str, Any] = {
        "max_tokens": max_tokens, "stop": tuple(stop or ()), "template": template, "template_file": template_file,
        "system": system, "temp": temp, "top_k": top_k, "top_p": top_p, "min_p": min_p, "typical": typical,
        "mirostat": mirostat, "mirostat_tau": mirostat_tau, "mirostat_eta": mirostat_eta,
        "repeat_penalty": repeat_penalty, "repeat_last_n": repeat_last_n, "presence_penalty": presence_penalty,
        "frequency_penalty": frequency_penalty, "seed": seed, "grammar_file": grammar_file, "ctx": ctx,
        "threads": threads, "batch": batch, "gpu_layers": gpu_layers, "mmap": False if no_mmap else None,
        "mlock": mlock or None, "lora": lora, "lora_scale": lora_scale, "chat": chat or None,
        "warmup": False if no_warmup else None,
        "backend_sampling": True if backend_sampling else False if no_backend_sampling else None,
        "rpc": tuple(p for p in (rpc or "").split(",") if p.strip()), "tensor_split": tensor_split,
    }
    settings = RunSettings.layered(load_preset(preset) if preset else {}, flags)
    openmp.configure(settings.n_threads, cpuload.measured_free())  # before llama.cpp loads (openmp.py says why)

    from ggufkit.cli.run_chat import chat_loop
    from ggufkit.runtime import abort, llama_log
    from ggufkit.runtime.prepare import prepare_model
    from ggufkit.runtime.session import open_run

    text = None if interactive and prompt is None and file is None else _read_prompt(prompt, file, interactive)
    if len(model) > 1:
        from ggufkit.cli.run_several import run_several

        return run_several(model, settings, text, interactive=interactive, group=group, json_out=json_,
                           stats=stats or verbose, verbose=verbose, verbose_llama=verbose_llama)
    model = model[0]  # one model: `run` as it always was
    prepared = prepare_model(model, notice)
    abort.install(model)
    abort.add_last_words(end_stdout_line)  # first: the error line must not glue onto generated text
    if verbose_llama:
        llama_log.echo_to(lambda line: sys.stderr.write(line + "\n"))
    stats = stats or verbose
    with open_run(prepared, settings, interactive=interactive, on_notice=notice) as session:
        m = session.model
        for w in m.warnings:
            notice(f"warning: {w}")
        if verbose:
            notice(f"model: {prepared.path} (n_ctx {m.n_ctx}, threads {m.params.n_threads}, "
                   f"load {m.load_ms:.1f} ms, warm-up {m.warmup_ms:.1f} ms of it)")
            if m.devices:
                notice("devices: " + "; ".join(d.describe() for d in m.devices))
            if session.template is not None:
                notice(f"template: {session.template.name}")
        if interactive:
            chat = session.chat()
            if settings.rpc:  # a lost server ends the process (llama.cpp aborts): the conversation is kept
                abort.add_last_words(lambda: _rescue(chat))
            chat_loop(chat, text, stats=stats)
        else:
            _one_shot(session, text or "", json_, stats, verbose)
    return 0


def _one_shot(session: Run, text: str, json_out: bool, stats: bool, verbose: bool) -> None:
    from ggufkit.cli.interrupts import CtrlC
    from ggufkit.runtime.generate import StopReason, TokenEvent

    out = TextStream()
    done: DoneEvent | None = None
    on_sampler = (lambda d: notice("sampler: " + d)) if verbose else None
    with CtrlC() as ctrl_c:
        for ev in session.one_shot(text, on_sampler, ctrl_c.cancel):
            if type(ev) is TokenEvent:
                if not json_out:
                    out.write(ev.text)
            else:
                done = ev
    assert done is not None
    out.end()
    m = session.model
    if json_out:
        print_json(result_json(done, m.load_ms, m.warmup_ms))
    if stats:
        notice(stats_line(done, m.load_ms))
    if done.stop_reason is StopReason.CONTEXT:
        notice("warning: generation stopped: the context is full (use a larger --ctx)")
    elif done.stop_reason is StopReason.INTERRUPTED:
        raise Interrupted(f"interrupted after {plural(done.n_generated, 'generated token')}")


def _rescue(chat: Any) -> str | None:
    """Save the conversation of a chat whose process is about to end; the note for the error line."""
    import os
    import tempfile

    if not chat.messages:
        return None
    path = Path(tempfile.gettempdir()) / f"ggufkit-chat-{os.getpid()}.json"
    chat.save(path)
    return f"the conversation was saved to {path} (/load it in a new chat)"


def _read_prompt(prompt: str | None, file: Path | None, interactive: bool) -> str:
    if prompt is not None and file is not None:
        raise BadInputError("give the prompt with -p or -f, not both")
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except OSError as e:
            raise BadInputError(f"cannot read prompt: {e.strerror}", file) from None
        except UnicodeDecodeError:
            raise BadInputError("prompt file is not UTF-8 text", file) from None
    if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
        if interactive:
            raise BadInputError("with --interactive, stdin carries the chat turns: give the first with -p TEXT")
        return sys.stdin.read()
    if prompt is None:
        raise BadInputError("no prompt: give -p TEXT, -f FILE, pipe it on stdin, or chat with -i")
    return prompt


def _print_presets(json_out: bool) -> None:
    from ggufkit.runtime.presets import BUILTIN_PRESETS, DESCRIPTIONS

    if json_out:
        print_json(BUILTIN_PRESETS)
        return
    for name, values in BUILTIN_PRESETS.items():
        settings = " ".join(f"{k}={v}" for k, v in values.items())
        sys.stdout.write(f"{name:<10} {DESCRIPTIONS.get(name, ''):<40} {settings}\n")
