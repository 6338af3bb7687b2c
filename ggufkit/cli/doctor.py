"""`ggufkit doctor`: the llama.cpp build, its backends and devices, and whether it can offload to a GPU."""

from __future__ import annotations

import typer

from ggufkit.cli.common import JsonOpt
from ggufkit.cli.output import human_bytes, print_json


def doctor(json_: JsonOpt = False) -> None:
    """Print what a bug report needs: versions, llama.cpp build features, backends, devices, GPU offload."""
    from ggufkit.system import GPU_INSTALL_ADVICE, report

    info = report()
    if json_:
        print_json(info)
        return
    s, m, b = info["software"], info["machine"], info["build"]
    lines = [
        ("ggufkit", s["ggufkit"]),
        ("llama-cpp-python", s["llama_cpp_python"]),
        ("python", s["python"]),
        ("os", s["os"]),
        ("cpu", f"{m['cpu']} ({m['cores']} cores, {human_bytes(m['ram_bytes'])} RAM)"),
        ("gpus", ", ".join(m["gpus"]) or "none visible"),
        ("backends", ", ".join(b["backends"])),
        ("devices", "; ".join(f"{d['name']} ({d['type']}: {d['description']})" for d in b["devices"])),
        ("gpu offload", f"yes ({b['gpu_backend']})" if b["gpu_offload"] else "no"),
        ("mmap / mlock", f"{'yes' if b['mmap'] else 'no'} / {'yes' if b['mlock'] else 'no'}"),
        ("llama.cpp", s["llama_cpp_system_info"]),
    ]
    width = max(len(k) for k, _ in lines) + 1
    for k, v in lines:
        typer.echo(f"{k + ':':<{width}} {v}")
    if not b["gpu_offload"]:
        typer.echo(f"\nnote: {GPU_INSTALL_ADVICE}")
