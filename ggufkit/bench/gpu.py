"""GPU memory a bench child took, two ways, because they answer different questions (docs/fit.md):

- `gpu_memory_bytes`, what the devices report: each local GPU's free memory (ggml_backend_dev_memory,
  cudaMemGetInfo on CUDA) before the load minus after the tests with the model still loaded, summed.
  It counts all this process put there: weights, KV cache, compute buffers and the memory pool ggml's
  CUDA backend grows while computing; not the runtime's own context, which the first query creates
  before the load (nvidia-smi's per-process figure includes it). Another process allocating on the
  same GPU meanwhile would be counted too.
- `gpu_buffers_bytes`, what llama.cpp says it allocated: the sum of its "<device> model|KV|compute
  buffer size = N MiB" log lines for those GPUs (no pool).
"""

from __future__ import annotations

import re

from ggufkit.units import MIB

# llama-model.cpp, llama-kv-cache.cpp, llama-context.cpp: "%s: %10s model buffer size = %8.2f MiB" and the like
_BUFFER = re.compile(r"\s(\S+)\s+(?:model|KV|RS|compute|output) buffer size =\s*([\d.]+) MiB")


class DeviceMemory:
    """Made before the load: the GPUs' free memory then, and llama.cpp's buffer lines from then on."""

    def __init__(self) -> None:
        from ggufkit.runtime import llama_log
        from ggufkit.runtime.rpc import local_gpus

        self.before = {d.name: d.free for d in local_gpus()}
        self.buffers: dict[str, float] = {}  # "CUDA0 model" -> MiB (a later line of the same kind replaces it)
        if self.before:
            llama_log.echo_to(self._line)

    def _line(self, line: str) -> None:
        m = _BUFFER.search(line)
        if m and m[1].split("_")[0] in self.before and "Host" not in m[1]:
            kind = line[m.end(1):].split("buffer")[0].strip()
            self.buffers[f"{m[1]} {kind}"] = float(m[2])

    def used(self) -> dict[str, int]:
        """{} without a local GPU; else both figures, in bytes."""
        from ggufkit.runtime.rpc import local_gpus

        if not self.before:
            return {}
        after = {d.name: d.free for d in local_gpus()}
        taken = sum(max(0, free - after.get(name, free)) for name, free in self.before.items())
        return {"gpu_memory_bytes": taken, "gpu_buffers_bytes": round(sum(self.buffers.values()) * MIB)}
