"""`ggufkit rpc-server`: lend this machine's devices to `run --rpc` / `bench --rpc` on another machine."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from ggufkit.cli.output import notice
from ggufkit.runtime.rpc import DEFAULT_PORT
from ggufkit.units import plural


def rpc_server(
    host: Annotated[str, typer.Option("--host", "-H", help="IPv4 address to listen on. Anything but 127.0.0.1 exposes the server (no authentication!).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port to listen on.")] = DEFAULT_PORT,
    device: Annotated[list[str] | None, typer.Option("--device", "-d", help="Serve this device (e.g. CUDA0, CPU; repeatable or comma-separated). Default: every GPU, else the CPU.", show_default=False)] = None,
    threads: Annotated[int | None, typer.Option("--threads", "-t", help="CPU threads for a served CPU. Default: half the cores.", show_default=False)] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="Keep the large tensors (over 10 MiB) that clients send in DIR, so the next load of that model skips sending them again.", show_default=False)] = None,
) -> None:
    """Serve this machine's devices to llama.cpp clients over TCP (llama.cpp's RPC server).

    SECURITY: the server has no authentication and no encryption. Whoever reaches the port can use the
    devices and read or write their memory. Keep the default --host 127.0.0.1 and reach it from another
    machine through an SSH tunnel (on the client: ssh -N -L 50052:127.0.0.1:50052 user@server, then
    run --rpc 127.0.0.1:50052). Bind another address only on a network you fully trust. Never expose it
    on an open network. Stop the server with Ctrl-C.
    """
    from ggufkit.runtime.rpc_server import EXPOSED_WARNING, plan, serve

    names = [n for d in device or () for n in d.replace("/", ",").split(",") if n.strip()]
    p = plan(host, port, names, threads, cache)
    if p.exposed:
        banner = "!" * 72
        notice(f"{banner}\n{EXPOSED_WARNING.format(host=p.endpoint.host, port=p.endpoint.port)}\n{banner}")
    notice(f"rpc-server: listening on {p.endpoint}, serving {plural(len(p.devices), 'device')}, "
           f"{plural(p.threads, 'thread')}"
           f"{f', cache {p.cache_dir}' if p.cache_dir else ''}:")
    for d in p.devices:
        notice(f"  {d.describe()}")
    notice(f"clients: ggufkit run MODEL --rpc {p.endpoint} ... (Ctrl-C stops the server)")
    sys.stdout.flush()
    # llama.cpp serves inside one C call: let Ctrl-C and SIGTERM end the process at once, as they end
    # llama.cpp's own rpc-server (a client then sees the connection close and fails in one line).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    serve(p)
