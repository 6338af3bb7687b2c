"""`ggufkit rpc-server`'s core: llama.cpp's RPC server, run in this process through the RPC backend.

llama.cpp's rpc-server program (tools/rpc/rpc-server.cpp) parses its flags, picks devices and calls
`ggml_backend_rpc_start_server(endpoint, cache_dir, n_threads, n_devices, devices)`, found through the
backend registry. This module does the same through ctypes: the server is the very library code the
client in this ggufkit links (so both always speak the same protocol version), with nothing more to build.
The call serves clients one after the other and only returns if it could not start.

The server has no authentication: whoever reaches the port can read and write the served devices'
memory and make it compute. It must only listen on loopback, or on a network that is trusted.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ggufkit.errors import BadInputError, LlamaFailure
from ggufkit.runtime.rpc import DEFAULT_PORT, Device, Endpoint, ggml

GGML_BACKEND_DEVICE_TYPE_CPU, GGML_BACKEND_DEVICE_TYPE_ACCEL = 0, 3

EXPOSED_WARNING = (
    "WARNING: this RPC server listens on {host}, not on loopback (127.0.0.1). It has NO authentication: "
    "anyone who reaches {host}:{port} can use its devices and read or write their memory. Never expose it "
    "on an open network; from another machine, prefer an SSH tunnel to a server on 127.0.0.1 "
    "(ssh -N -L {port}:127.0.0.1:{port} user@this-host).")


def default_threads() -> int:
    """rpc-server's default: half the cores (the other half is the client's, or the machine's)."""
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass
class ServerPlan:
    endpoint: Endpoint
    devices: list[Device]
    threads: int
    cache_dir: Path | None

    @property
    def exposed(self) -> bool:
        return not self.endpoint.loopback


def plan(host: str = "127.0.0.1", port: int = DEFAULT_PORT, device_names: Sequence[str] = (),
         threads: int | None = None, cache_dir: Path | None = None) -> ServerPlan:
    """Check the address (free to bind: a busy port is an error before anything is announced) and pick the
    devices (rpc-server's rule: the named ones; else every GPU; else the CPU); raise BadInputError, or
    LlamaFailure for a port that cannot be bound. Nothing stays bound."""
    import llama_cpp

    if host.lower() == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise BadInputError(f"--host takes an IPv4 address (127.0.0.1, or 0.0.0.0 for every interface), "
                            f"not {host!r}") from None
    if not 0 < port < 65536:
        raise BadInputError(f"--port must be 1 to 65535, not {port}")
    if threads is not None and threads < 1:
        raise BadInputError(f"--threads must be >= 1, not {threads}")
    llama_cpp.llama_backend_init()
    g = ggml()
    g.rpc_reg()  # raises if this build has no RPC backend
    all_devices = [g.dev_get(i) for i in range(g.dev_count())]
    if device_names:
        chosen = []
        for name in device_names:
            dev = g.dev_by_name(name.encode())
            if not dev:
                known = ", ".join((g.dev_name(d) or b"").decode() for d in all_devices)
                raise BadInputError(f"--device {name!r}: no such device (this machine has: {known})")
            chosen.append(dev)
    else:
        chosen = [d for d in all_devices
                  if g.dev_type(d) not in (GGML_BACKEND_DEVICE_TYPE_CPU, GGML_BACKEND_DEVICE_TYPE_ACCEL)]
        chosen = chosen or [g.dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)]
    if cache_dir is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadInputError(f"cannot create the cache directory: {e.strerror}", cache_dir) from None
    devices = [g.device(d, "local") for d in dict.fromkeys(chosen)]
    endpoint = Endpoint(host, port)
    check_port(endpoint)
    return ServerPlan(endpoint, devices, threads or default_threads(), cache_dir)


def check_port(endpoint: Endpoint) -> None:
    """Bind the address once, as llama.cpp will (SO_REUSEADDR), to say clearly why it cannot."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((endpoint.host, endpoint.port))
    except OSError as e:
        why = {errno.EADDRINUSE: "the port is in use (another rpc-server?)",
               errno.EADDRNOTAVAIL: "that address is not one of this machine's",
               errno.EACCES: "permission denied (a port below 1024?)"}.get(e.errno, e.strerror or str(e))
        raise LlamaFailure(f"cannot listen on {endpoint}: {why}") from None
    finally:
        s.close()


def serve(p: ServerPlan) -> None:
    """Serve until the process is stopped; raise LlamaFailure if llama.cpp could not start serving."""
    start = ggml().proc("ggml_backend_rpc_start_server", None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                        ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p))
    devices = (ctypes.c_void_p * len(p.devices))(*[d.handle for d in p.devices])
    cache = str(p.cache_dir).encode() if p.cache_dir is not None else None
    start(str(p.endpoint).encode(), cache, p.threads, len(p.devices), devices)
    raise LlamaFailure(f"llama.cpp's RPC server on {p.endpoint} stopped: it could not create a backend for "
                       "a device, bind the port, or accept a connection (see its output above)")
