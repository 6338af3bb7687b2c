"""Every setting of `ggufkit run`, written once: its name, type and default.

A setting's name is its flag's long name with underscores (`--top-k` is `top_k`) and its key in a preset.
`RunSettings` is the only place a default is written: the runtime's values (runtime/params.py), the keys
and types a preset accepts (runtime/presets.py) and the CLI's "Default: ..." help texts all read it.
The layers, lowest first: these defaults, a preset, the flags given on the command line.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ggufkit.errors import BadInputError
# One thread per CPU that is free when the run starts (cpuload.py says why not one per core); re-exported.
from ggufkit.runtime.cpuload import default_threads  # noqa: F401

DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a random seed per run
ALL_LAYERS = -1  # n_gpu_layers: every layer


@dataclass
class RunSettings:
    # sampling: llama.cpp's sampler chain; a neutral value leaves its sampler out of the chain
    temp: float = 0.8  # 0 = greedy
    top_k: int = 40  # 0 = off
    top_p: float = 0.95  # 1 = off
    min_p: float = 0.05  # 0 = off
    typical: float = 1.0  # 1 = off
    mirostat: int = 0  # 0 off, 1 or 2
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    repeat_penalty: float = 1.0  # 1 = off
    repeat_last_n: int = 64  # -1 = the whole context
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = DEFAULT_SEED
    grammar_file: Path | None = None  # GBNF, root rule "root"
    # when to stop
    max_tokens: int = -1  # -1 = until end of text or a full context
    stop: tuple[str, ...] = ()
    # loading
    ctx: int = 4096  # 0 = the model's training context
    threads: int | None = None  # None = one per free CPU (default_threads)
    batch: int = 512
    gpu_layers: int | str = 0  # N, or "all"
    mmap: bool = True
    mlock: bool = False
    lora: Path | None = None
    lora_scale: float = 1.0
    warmup: bool = True  # decode a few tokens at load, as llama.cpp's own CLI does (see model.load)
    backend_sampling: bool | None = None  # None = where it pays off (sampler.in_graph decides)
    # more than one machine (runtime/rpc.py): llama.cpp rpc-servers HOST:PORT; --gpu-layers then defaults to all
    rpc: tuple[str, ...] = ()
    tensor_split: str | None = None  # "3,1": one proportion per offload device (servers', then local GPUs)
    # templates and chat
    chat: bool = False  # one-shot: wrap the prompt in the chat template
    template: str | None = None  # a built-in template's name
    template_file: Path | None = None
    system: str | None = None

    @classmethod
    def layered(cls, preset: Mapping[str, Any], flags: Mapping[str, Any]) -> RunSettings:
        """Defaults < `preset` (values checked by presets.check_preset) < the `flags` that were given
        (not None, not an empty tuple)."""
        given = {k: v for k, v in flags.items() if v is not None and v != ()}
        settings = replace(cls(), **{**preset, **given})
        if settings.rpc and "gpu_layers" not in preset and "gpu_layers" not in given:
            settings.gpu_layers = "all"  # the servers are what --rpc is for
        return settings

    @property
    def wants_template(self) -> bool:
        """Whether a one-shot prompt goes through the chat template."""
        return bool(self.chat or self.template or self.template_file or self.system)

    @property
    def n_threads(self) -> int:
        return self.threads or default_threads()

    @property
    def n_gpu_layers(self) -> int:
        return parse_gpu_layers(self.gpu_layers)

    def check(self) -> RunSettings:
        """The loading and stopping limits (SamplingParams.check checks the sampling ones)."""
        for key, low in (("ctx", 0), ("threads", 1), ("batch", 1), ("max_tokens", -1)):
            value = getattr(self, key)
            if value is not None and value < low:
                raise BadInputError(f"--{key.replace('_', '-')} must be >= {low}, not {value}")
        parse_gpu_layers(self.gpu_layers)  # raises for a value that is neither a count nor "all"
        if self.rpc or self.tensor_split:
            from ggufkit.runtime import rpc

            if self.rpc:
                rpc.parse_servers(self.rpc)
            rpc.parse_tensor_split(self.tensor_split)
        return self


NAMES = tuple(f.name for f in fields(RunSettings))


def setting_types() -> dict[str, Any]:
    """Each setting's type, evaluated (`int | None`, `tuple[str, ...]`, `Path | None` ...)."""
    return typing.get_type_hints(RunSettings)


def parse_gpu_layers(value: int | str | None) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        n = value
    elif value.strip().lower() in ("all", "max", "-1"):
        return ALL_LAYERS
    else:
        try:
            n = int(value)
        except ValueError:
            raise BadInputError(f"--gpu-layers takes a number or 'all', not {value!r}") from None
    if n < ALL_LAYERS:
        raise BadInputError(f"--gpu-layers must be >= 0 or 'all', not {n}")
    return n
