"""Shared fixtures: sample models made once per session by ggufkit's own sample maker, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ggufkit.samples.legacy import export_legacy, quantize_legacy
from ggufkit.samples.make import make_sample

# The GGJT era's file types (pre-GGUF llama.cpp's llama_ftype), as sample type names.
GGJT_FTYPES = (
    "f32", "f16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k_s", "q3_k_m", "q3_k_l",
    "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k",
)


@dataclass
class Result:
    code: int
    out: str
    err: str


class Samples:
    """Sample models by (type, format), made on first use and kept for the session."""

    def __init__(self, root: Path):
        self.root = root

    def gguf(self, type_name: str = "f16", size: str = "tiny") -> Path:
        path = self.root / f"{size}-{type_name}.gguf"
        if not path.exists():
            make_sample(path, type_name, "gguf", size)
        return path

    def ggjt3(self, type_name: str = "f16", size: str = "tiny") -> Path:
        """A GGJT v3 file holding exactly the tensors and vocab of `self.gguf(type_name)`."""
        path = self.root / f"{size}-{type_name}.ggjt3.bin"
        if not path.exists():
            export_legacy(self.gguf(type_name, size), path)
        return path

    def legacy(self, container: str, version: int | None) -> Path:
        """An F16 model in an older container (same tensors; F16 layouts never changed)."""
        path = self.root / f"tiny-f16.{container.lower()}{version or ''}.bin"
        if not path.exists():
            export_legacy(self.gguf("f16"), path, container, version)
        return path

    def era(self, container: str, version: int | None, type_name: str, parts: int = 1) -> Path:
        """The F32 sample quantized as that container version's own `quantize` wrote it (byte for byte)."""
        path = self.root / f"tiny-{type_name}.{container.lower()}{version or ''}{f'.{parts}parts' if parts > 1 else ''}.bin"
        if not path.exists():
            quantize_legacy(self.gguf("f32"), path, container, version, type_name, parts)
        return path


# Every container version x file type of the GGML era that a sample can hold (F32 for every container too).
ERA_TYPES = {
    ("GGML", None): ("f32", "f16", "q4_0", "q4_1"),
    ("GGMF", 1): ("f32", "f16", "q4_0", "q4_1"),
    ("GGJT", 1): ("f32", "f16", "q4_0", "q4_1", "q4_2", "q4_3", "q5_0", "q5_1", "q8_0"),
    ("GGJT", 2): ("f32", "f16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0"),
}
ERA_CASES = [(c, v, t) for (c, v), types in ERA_TYPES.items() for t in types]


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    return Samples(tmp_path_factory.mktemp("samples"))


def run_cli(*args: str | os.PathLike[str], stdin: str | None = None, timeout: float = 120) -> Result:
    """Run the real `ggufkit` entry point in a child process."""
    proc = subprocess.run(
        [sys.executable, "-m", "ggufkit", *map(str, args)], input=stdin, capture_output=True, text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def children(tmp_path_factory):
    """SmolLM2-135M-Instruct's F16 base quantized by llama.cpp to three types in one call: type -> its report."""
    import json

    from ggufkit import models

    out = tmp_path_factory.mktemp("children")
    r = subprocess.run([sys.executable, "-m", "ggufkit", "quantize", str(models.model_path("smollm2", f16=True)),
                        "-t", "q8_0", "-t", "q4_k_m", "-t", "q2_k", "--out-dir", str(out), "--json", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return {rep["type"]: rep for rep in json.loads(r.stdout)}


def gpu_build() -> bool:
    """Whether the installed llama.cpp can offload to a local GPU (a CUDA, Metal, Vulkan or HIP build, and a
    GPU): llama_supports_gpu_offload() alone is also true for a CPU build with the RPC backend."""
    from ggufkit.system import llama_build

    return llama_build().gpu_offload


# CI has no GPU: tests of the CPU-only advice run there, tests of real offload on a GPU build
CPU_ONLY_BUILD = pytest.mark.skipif(gpu_build(), reason="this llama-cpp-python build has a GPU backend: "
                                    "the CPU-only advice does not apply")
NEEDS_GPU = pytest.mark.skipif(not gpu_build(), reason="needs a GPU build of llama-cpp-python "
                               "(GGUFKIT_GPU=cuda|metal|vulkan|hip make install) and a GPU")


def json_of(r: Result):
    """The JSON document a successful command printed."""
    import json

    assert r.code == 0, r.err
    return json.loads(r.out)


def assert_clean_error(r: Result, code: int = 2, *fragments: str) -> None:
    """A failure the user can read: the given exit code, one line on stderr, no traceback."""
    assert r.code == code, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("ggufkit: error: "), r.err
    assert "Traceback" not in r.err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def writing_in(pid: int, folder: Path, below: int = 1 << 62) -> bool:
    """Whether process `pid` has a file open in `folder` (an output being written) that holds fewer than
    `below` bytes so far: bytes stored (its blocks), not its size, which a writer may set to the final
    size before the data (convert does: the padding between tensors is left as holes)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(f"{folder}/"):
                return os.stat(f"/proc/{pid}/fd/{fd}").st_blocks * 512 < below
        except OSError:
            continue
    return False
