"""What a bench run found: one Row per configuration, and the run around them (the documented JSON schema)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ggufkit.system import Machine, Software

SCHEMA_VERSION = 1


@dataclass
class Row:
    model: str
    path: str
    architecture: str | None
    file_type: str | None
    size_bytes: int
    parameters: int
    backend: str  # "CPU", or the build's GPU backend ("CUDA", "Metal", "Vulkan"...) for offloaded rows; "RPC"
    # (or "CUDA,RPC": local GPUs too) for rows offloaded to rpc_servers
    gpu_layers: int  # 0 = none, -1 = all
    mmap: bool
    threads: int
    batch: int
    ctx: int
    n_prompt: int
    n_gen: int
    repetitions: int
    load_ms: float | None = None
    peak_rss_mib: float | None = None
    pp_tps: float | None = None
    pp_sd: float | None = None
    tg_tps: float | None = None
    tg_sd: float | None = None
    pp_samples_ns: list[int] = field(default_factory=list)
    tg_samples_ns: list[int] = field(default_factory=list)
    error: str | None = None
    rpc_servers: list[str] = field(default_factory=list)  # HOST:PORT of the llama.cpp rpc-servers used

    def label(self) -> str:
        gpu = "cpu" if self.gpu_layers == 0 else f"gpu {'all' if self.gpu_layers < 0 else self.gpu_layers}"
        if self.rpc_servers:
            gpu = f"rpc {','.join(self.rpc_servers)} " + gpu.replace("gpu ", "ngl ")
        return f"{self.model} {gpu} mmap {'on' if self.mmap else 'off'} t{self.threads} b{self.batch}"


@dataclass
class BenchRun:
    machine: Machine
    software: Software
    settings: dict[str, Any]
    rows: list[Row]
    started: str = ""
    seconds: float = 0.0
    comparison: dict[str, Any] | None = None  # baseline.Comparison.to_dict() when --baseline was given

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.error]

    def to_dict(self) -> dict[str, Any]:
        d = {
            "schema_version": SCHEMA_VERSION, "started": self.started, "seconds": round(self.seconds, 3),
            "machine": asdict(self.machine), "software": asdict(self.software), "settings": self.settings,
            "rows": [asdict(r) for r in self.rows],
        }
        if self.comparison is not None:
            d["comparison"] = self.comparison
        return d
