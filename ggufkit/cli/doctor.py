"""`ggufkit doctor`: the llama.cpp build, its backends and devices, and whether it can offload to a GPU."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ggufkit.cli.common import JsonOpt
from ggufkit.cli.output import human_bytes, print_json
from ggufkit.errors import EXIT_FAILURE


def doctor(
    json_: JsonOpt = False,
    rpc: Annotated[str | None, typer.Option("--rpc", help="Also check llama.cpp RPC servers HOST:PORT[,...]: each answers, speaks this build's protocol, and its devices (exit 1 if one does not).", show_default=False)] = None,
) -> int:
    """Print what a bug report needs: versions, llama.cpp build features, backends, devices, GPU offload."""
    from ggufkit.system import GPU_INSTALL_ADVICE, report

    info = report()
    servers = _check_servers(rpc) if rpc else None
    if servers is not None:
        info["rpc_servers"] = servers
    code = EXIT_FAILURE if servers and any(s["error"] for s in servers) else 0
    if json_:
        print_json(info)
        return code
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
    for srv in servers or ():
        typer.echo(f"rpc {srv['endpoint']}: " + (f"FAILED: {srv['error']}" if srv["error"] else
                   f"ok (protocol {srv['protocol']}), " + "; ".join(
                       f"device {i}: {human_bytes(d['free_bytes'])} free of {human_bytes(d['total_bytes'])}"
                       for i, d in enumerate(srv["devices"]))))
    if not b["gpu_offload"]:
        typer.echo(f"\nnote: {GPU_INSTALL_ADVICE}")
    return code


def _check_servers(text: str) -> list[dict[str, Any]]:
    from ggufkit.runtime import rpc

    if not rpc.supported():
        from ggufkit.errors import BadInputError

        raise BadInputError("this llama.cpp build has no RPC backend: rebuild it with -DGGML_RPC=ON (`make install` does)")
    return [{"endpoint": str(s.endpoint), "error": s.error, "protocol": ".".join(map(str, s.version)),
             "devices": [{"free_bytes": f, "total_bytes": t} for f, t in s.memory]}
            for s in rpc.probe_all(rpc.parse_servers(text))]
