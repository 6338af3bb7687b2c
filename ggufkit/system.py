"""This machine, the software, and what the llama.cpp build can do: for bench's results and `doctor`.

GPU support and device names come from llama.cpp itself (ggml's backend registry), so a CUDA, Metal, Vulkan
or HIP build reports its own devices; nvidia-smi only adds names. llama_supports_gpu_offload() alone is
not the test: it is also true for a CPU-only build with the RPC backend (remote devices), so GPU offload
here means a local GPU device.
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

GGML_BACKEND_DEVICE_TYPE_CPU = 0  # ggml-backend.h's enum ggml_backend_dev_type
_LOCAL_GPU_TYPES = (1, 2)  # GGML_BACKEND_DEVICE_TYPE_GPU, _IGPU (3 is ACCEL: BLAS, AMX, beside the CPU)
GPU_INSTALL_ADVICE = (
    "this llama-cpp-python build has no GPU backend, or sees no GPU; "
    "install a GPU build with `GGUFKIT_GPU=cuda make install` (or metal, vulkan, hip)")
# `run -ngl N` and `bench -ngl N` on such a build: they run anyway, on the CPU, and say so once
GPU_LAYERS_IGNORED = "this llama.cpp build has no GPU support (or sees no GPU): --gpu-layers ignored, running on the CPU"


@dataclass
class Build:
    gpu_offload: bool  # a local GPU device to offload to
    backends: list[str]  # ggml backend registry names, e.g. ["CPU"], ["CUDA", "CPU"]
    devices: list[dict[str, str]]  # {"name", "description", "type"}

    @property
    def gpu_backend(self) -> str:
        """What a GPU row runs on, llama-bench style: the non-CPU backends joined ("CUDA", "Metal")."""
        return ",".join(b for b in self.backends if b not in ("CPU", "RPC")) or "GPU"

    @property
    def rpc(self) -> bool:
        """Whether llama.cpp was built with its RPC backend (`run --rpc`, `ggufkit rpc-server`)."""
        return "RPC" in self.backends


@dataclass
class Machine:
    cpu: str
    cores: int
    ram_bytes: int
    gpus: list[str] = field(default_factory=list)


@dataclass
class Software:
    os: str
    python: str
    ggufkit: str
    llama_cpp_python: str
    llama_cpp_system_info: str
    backends: list[str]


def llama_build() -> Build:
    import llama_cpp
    from llama_cpp._ggml import libggml as g

    def fn(name: str, res, *args):
        f = getattr(g, name)
        f.restype, f.argtypes = res, list(args)
        return f

    P = ctypes.c_void_p
    reg_count, reg_get, reg_name = (fn("ggml_backend_reg_count", ctypes.c_size_t),
                                    fn("ggml_backend_reg_get", P, ctypes.c_size_t), fn("ggml_backend_reg_name", ctypes.c_char_p, P))
    dev_count, dev_get = fn("ggml_backend_dev_count", ctypes.c_size_t), fn("ggml_backend_dev_get", P, ctypes.c_size_t)
    dev_name, dev_desc = fn("ggml_backend_dev_name", ctypes.c_char_p, P), fn("ggml_backend_dev_description", ctypes.c_char_p, P)
    dev_type = fn("ggml_backend_dev_type", ctypes.c_int, P)
    llama_cpp.llama_backend_init()
    backends = [reg_name(reg_get(i)).decode() for i in range(reg_count())]
    devices, gpu = [], False
    for i in range(dev_count()):
        d = dev_get(i)
        kind = dev_type(d)
        gpu = gpu or kind in _LOCAL_GPU_TYPES
        devices.append({"name": (dev_name(d) or b"").decode(), "description": (dev_desc(d) or b"").decode(),
                        "type": "CPU" if kind == GGML_BACKEND_DEVICE_TYPE_CPU else "GPU"})
    return Build(bool(llama_cpp.llama_supports_gpu_offload()) and gpu, backends, devices)


def llama_cpp_python_version() -> str:
    """The installed llama-cpp-python's version: its package metadata (no import), else the package's own
    `__version__` (a source tree on PYTHONPATH, as on the GPU machine, has no metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama_cpp_python")
    except PackageNotFoundError:
        import llama_cpp

        return llama_cpp.__version__


def machine(build: Build) -> Machine:
    gpus = [d["description"] or d["name"] for d in build.devices if d["type"] != "CPU"]
    return Machine(cpu=_cpu_name(), cores=os.cpu_count() or 1, ram_bytes=_ram_bytes(), gpus=gpus or _nvidia_smi())


def software(build: Build) -> Software:
    import llama_cpp

    from ggufkit import __version__

    return Software(
        os=platform.platform(), python=platform.python_version() + f" ({sys.implementation.name})",
        ggufkit=__version__, llama_cpp_python=llama_cpp.__version__,
        llama_cpp_system_info=llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(" |"),
        backends=build.backends,
    )


def report() -> dict[str, Any]:
    """What a bug report needs (`ggufkit doctor --json`): software, machine, and the build's features."""
    import llama_cpp

    build = llama_build()
    return {
        "software": asdict(software(build)),
        "machine": asdict(machine(build)),
        "build": {**asdict(build), "gpu_backend": build.gpu_backend if build.gpu_offload else None, "rpc": build.rpc,
                  "mmap": bool(llama_cpp.llama_supports_mmap()), "mlock": bool(llama_cpp.llama_supports_mlock())},
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        out = _quiet(["sysctl", "-n", "machdep.cpu.brand_string"])
        if out:
            return out
    return platform.processor() or platform.machine()


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        out = _quiet(["sysctl", "-n", "hw.memsize"])
        return int(out) if out.isdigit() else 0


def _nvidia_smi() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    return [ln.strip() for ln in _quiet(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]).splitlines() if ln.strip()]


def _quiet(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
