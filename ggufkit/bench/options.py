"""What a bench run measures: the user's choices, checked, and expanded into one Config per matrix cell."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from ggufkit.choices import Choice
from ggufkit.errors import BadInputError
from ggufkit.runtime.settings import ALL_LAYERS, RunSettings, default_threads
from ggufkit.system import GPU_INSTALL_ADVICE, GPU_LAYERS_IGNORED


class Switch(Choice):
    """--mmap: which rows a matrix axis gets."""

    ON = "on"
    OFF = "off"
    BOTH = "both"


class GpuRows(Choice):
    """--gpu: as Switch, plus auto (on when the build has a GPU backend)."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"
    BOTH = "both"


class BenchFormat(Choice):
    """--format: how render.py writes a run."""

    TABLE = "table"  # Rich, on a terminal (cli/bench.py); Markdown in a file
    MD = "md"
    CSV = "csv"
    JSON = "json"
    JSONL = "jsonl"


@dataclass
class BenchOptions:
    models: list[Path]
    n_prompt: int = 512
    n_gen: int = 128
    repetitions: int = 5
    mmap: Switch = Switch.ON
    gpu: GpuRows = GpuRows.AUTO
    gpu_layers: int = ALL_LAYERS  # used by the GPU rows; 0 < N offloads the first N layers
    gpu_layers_given: bool = False  # -ngl on the command line: a build without a GPU then says it is ignored
    threads: list[int] = field(default_factory=lambda: [default_threads()])
    batch: list[int] = field(default_factory=lambda: [RunSettings.batch])
    ctx: int = 0  # 0 = a context per test sized to it (pp: n_prompt, tg: n_gen), as llama-bench does
    rpc: list[str] = field(default_factory=list)  # llama.cpp rpc-servers HOST:PORT: the offloaded rows use them
    tensor_split: str | None = None  # the offloaded rows' split over the servers' devices, then local GPUs

    def check(self) -> BenchOptions:
        if not self.models:
            raise BadInputError("no model file given")
        for name, v, low in (("-p/--n-prompt", self.n_prompt, 0), ("-n/--n-gen", self.n_gen, 0),
                             ("-r/--repetitions", self.repetitions, 1), ("--ctx", self.ctx, 0)):
            if v < low:
                raise BadInputError(f"{name} must be >= {low}, not {v}")
        if self.n_prompt == 0 and self.n_gen == 0:
            raise BadInputError("-p 0 and -n 0 leave nothing to measure")
        self.mmap = Switch.parse(self.mmap, "--mmap")
        self.gpu = GpuRows.parse(self.gpu, "--gpu")
        if self.gpu_layers == 0 or self.gpu_layers < ALL_LAYERS:
            raise BadInputError(f"--gpu-layers must be >= 1 or 'all' (--gpu off for none), not {self.gpu_layers}")
        if self.rpc or self.tensor_split:
            from ggufkit.runtime.rpc import parse_servers, parse_tensor_split

            self.rpc = [str(e) for e in parse_servers(self.rpc)] if self.rpc else []
            parse_tensor_split(self.tensor_split)
        if self.ctx and self.ctx < self.n_prompt + self.n_gen:
            raise BadInputError(f"--ctx {self.ctx} cannot hold -p {self.n_prompt} + -n {self.n_gen} tokens")
        return self


def parse_int_list(text: str, name: str, minimum: int = 1) -> list[int]:
    """'1,2,4' -> [1, 2, 4]; duplicates dropped, order kept; every value >= minimum."""
    values: list[int] = []
    for part in text.split(","):
        try:
            v = int(part.strip())
        except ValueError:
            raise BadInputError(f"{name}: {text!r} is not a comma-separated list of integers") from None
        if v < minimum:
            raise BadInputError(f"{name}: every value must be >= {minimum}, not {v}")
        if v not in values:
            values.append(v)
    return values


@dataclass(frozen=True)
class Config:
    """One matrix cell: one model opened one way."""

    model_index: int
    gpu_layers: int  # 0 = CPU only, -1 = all
    mmap: bool
    threads: int
    batch: int


def expand(opts: BenchOptions, gpu_available: bool) -> tuple[list[Config], str | None]:
    """Every combination, models outermost; plus a notice when GPU rows were asked for but cannot run.
    With --rpc the offloaded rows go to the servers (and local GPUs), so they can always run.

    Raises BadInputError when only GPU rows were asked for on a build without GPU support.
    """
    notice = None
    gpu_available = gpu_available or bool(opts.rpc)
    if opts.gpu == GpuRows.AUTO:
        gpus = [gpu_available]
    else:
        gpus = {GpuRows.ON: [True], GpuRows.OFF: [False], GpuRows.BOTH: [False, True]}[opts.gpu]
    if True in gpus and not gpu_available:
        if gpus == [True]:
            raise BadInputError(f"--gpu on: {GPU_INSTALL_ADVICE}")
        gpus = [False]
        notice = f"GPU rows skipped: {GPU_INSTALL_ADVICE}"
    elif opts.gpu == GpuRows.AUTO and not gpu_available and opts.gpu_layers_given:
        notice = f"warning: {GPU_LAYERS_IGNORED}"  # as `run -ngl` says it
    mmaps = {Switch.ON: [True], Switch.OFF: [False], Switch.BOTH: [True, False]}[opts.mmap]
    configs = [
        Config(m, opts.gpu_layers if gpu else 0, mmap, t, b)
        for m, gpu, mmap, t, b in itertools.product(range(len(opts.models)), gpus, mmaps, opts.threads, opts.batch)
    ]
    return configs, notice
