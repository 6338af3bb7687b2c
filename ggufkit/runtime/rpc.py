"""llama.cpp's RPC backend, client side: servers named HOST:PORT, checked, then offered to llama.cpp as devices.

An rpc-server (`ggufkit rpc-server`, or llama.cpp's own program) exposes its devices over TCP; the client
adds each server through the RPC backend's registration function (`ggml_backend_rpc_add_server`, found
through ggml's backend registry as llama.cpp's common/arg.cpp does) and puts the servers' devices in the
model's device list (`llama_model_params.devices`, NULL-terminated), followed by this machine's GPUs.
llama.cpp then spreads the offloaded layers over that list in proportion to free memory, or to
`tensor_split` (one proportion per device, in list order); layers not offloaded stay on this CPU.

llama.cpp's client has no timeouts and answers every failure with GGML_ABORT, so each server is first
probed here in Python, with a deadline: connect, the protocol's HELLO (version), its device count and
memory. An unreachable server, a wrong port, a busy or silent one and another llama.cpp's protocol version
are then one GgufkitError naming the server, before llama.cpp opens a socket. A server that dies later
(mid-load, mid-generation) makes llama.cpp abort; `explain_abort` turns that into a line naming it.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ggufkit.errors import BadInputError, LlamaFailure
from ggufkit.units import plural

DEFAULT_PORT = 50052  # llama.cpp's rpc-server default
# ggml-rpc.h of the vendored llama.cpp (llama-cpp-python 0.3.36): the client accepts a server of the same
# major version and a minor version no newer than its own.
PROTO_VERSION = (7, 0, 0)
CMD_HELLO, CMD_DEVICE_COUNT, CMD_GET_DEVICE_MEMORY = 14, 15, 11
CONN_CAPS_SIZE = 24  # rpc_msg_hello_req.conn_caps
PROBE_TIMEOUT_S = 5.0
GGML_BACKEND_DEVICE_TYPE_GPU, GGML_BACKEND_DEVICE_TYPE_IGPU = 1, 2
_ABORT_MARKERS = ("Remote RPC server", "RPC handshake failed", "Failed to connect to", "RPC server version")


class RpcError(LlamaFailure):
    """A server that cannot be used: unreachable, silent, of another protocol version, or lost mid-run."""

    def __init__(self, endpoint: Endpoint | str, message: str):
        super().__init__(f"rpc server {endpoint}: {message}")
        self.endpoint = str(endpoint)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve anywhere


def parse_endpoint(text: str, default_port: int | None = None) -> Endpoint:
    """'HOST:PORT' (or 'HOST' when a default port is given); llama.cpp splits at the first ':' so no IPv6."""
    text = text.strip()
    host, sep, port_text = text.partition(":")
    if ":" in port_text:
        raise BadInputError(f"rpc server {text!r} is not HOST:PORT (IPv6 addresses are not supported)")
    if not host:
        raise BadInputError(f"rpc server {text!r} has no host: give HOST:PORT")
    if not sep and default_port is None:
        raise BadInputError(f"rpc server {text!r} has no port: give HOST:PORT "
                            f"(`ggufkit rpc-server` listens on {DEFAULT_PORT} unless told otherwise)")
    try:
        port = int(port_text) if sep else int(default_port)  # type: ignore[arg-type]
    except ValueError:
        raise BadInputError(f"rpc server {text!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise BadInputError(f"rpc server {text!r}: port must be 1 to 65535")
    return Endpoint(host, port)


def parse_servers(text: str | Sequence[str]) -> list[Endpoint]:
    """'h1:p1,h2:p2' (or several such strings) -> endpoints, in order, duplicates refused."""
    parts = [p for t in ([text] if isinstance(text, str) else text) for p in t.split(",") if p.strip()]
    if not parts:
        raise BadInputError("--rpc needs at least one HOST:PORT")
    endpoints = [parse_endpoint(p) for p in parts]
    if len(set(endpoints)) != len(endpoints):
        raise BadInputError("--rpc names the same server twice")
    return endpoints


def parse_tensor_split(text: str | None) -> tuple[float, ...]:
    """'3,1,1' -> (3.0, 1.0, 1.0); every value >= 0, at least one > 0."""
    if not text:
        return ()
    try:
        values = tuple(float(p) for p in text.replace("/", ",").split(","))
    except ValueError:
        raise BadInputError(f"--tensor-split {text!r} is not a comma-separated list of numbers") from None
    if any(v < 0 or v != v for v in values) or not any(values):
        raise BadInputError(f"--tensor-split {text!r}: proportions must be >= 0, one at least > 0")
    return values


# ---- probing a server in Python, with a deadline -------------------------------------------------------

@dataclass
class ServerInfo:
    endpoint: Endpoint
    version: tuple[int, int, int]
    memory: list[tuple[int, int]] = field(default_factory=list)  # (free, total) bytes per device
    error: str | None = None  # set by probe_all for a server that failed

    @property
    def compatible(self) -> bool:
        return self.version[0] == PROTO_VERSION[0] and self.version[1] <= PROTO_VERSION[1]


def probe(endpoint: Endpoint, timeout: float = PROBE_TIMEOUT_S) -> ServerInfo:
    """Connect, say HELLO, ask for the devices and their memory; raise RpcError naming the server.

    A server serves one client at a time: one busy with another client accepts the connection but
    does not answer until that client leaves, which shows here as a timeout.
    """
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except socket.timeout:
        raise RpcError(endpoint, f"no answer to a connection within {timeout:g} s (host down or port filtered?)") from None
    except socket.gaierror as e:
        raise RpcError(endpoint, f"unknown host ({e.strerror})") from None
    except ConnectionRefusedError:
        raise RpcError(endpoint, "connection refused: nothing listens on that port "
                                 "(is `ggufkit rpc-server` running there, on that port?)") from None
    except OSError as e:
        raise RpcError(endpoint, f"cannot connect: {e.strerror or e}") from None
    try:
        with sock:
            sock.settimeout(timeout)
            reply = _call(sock, endpoint, CMD_HELLO, bytes(CONN_CAPS_SIZE))
            if len(reply) < 3:
                raise RpcError(endpoint, f"not an RPC server of a known kind (a {len(reply)}-byte HELLO reply)")
            info = ServerInfo(endpoint, (reply[0], reply[1], reply[2]))
            if not info.compatible or len(reply) != 4 + CONN_CAPS_SIZE:
                ours = ".".join(map(str, PROTO_VERSION))
                raise RpcError(endpoint, f"speaks RPC protocol {'.'.join(map(str, info.version))}, this llama.cpp "
                                         f"{ours}: run the same ggufkit / llama.cpp version on both machines")
            (count,) = struct.unpack("<I", _call(sock, endpoint, CMD_DEVICE_COUNT, b"", 4))
            for dev in range(min(count, 64)):
                free, total = struct.unpack("<QQ", _call(sock, endpoint, CMD_GET_DEVICE_MEMORY,
                                                         struct.pack("<I", dev), 16))
                info.memory.append((free, total))
            if not info.memory:
                raise RpcError(endpoint, "serves no device")
            return info
    except socket.timeout:
        raise RpcError(endpoint, f"connected, but no RPC answer within {timeout:g} s (not an RPC server, or "
                                 "busy serving another client: a server takes one client at a time)") from None
    except OSError as e:
        raise RpcError(endpoint, f"connection lost during the handshake ({e.strerror or e})") from None


def _call(sock: socket.socket, endpoint: Endpoint, cmd: int, payload: bytes, expect: int | None = None) -> bytes:
    """One request: cmd (1 byte), size (u64), payload; the reply: size (u64), data."""
    sock.sendall(struct.pack("<BQ", cmd, len(payload)) + payload)
    (size,) = struct.unpack("<Q", _recv(sock, endpoint, 8))
    if size > 4096 or (expect is not None and size != expect):
        raise RpcError(endpoint, f"malformed reply to RPC command {cmd} ({size} bytes): not a compatible RPC server")
    return _recv(sock, endpoint, size)


def _recv(sock: socket.socket, endpoint: Endpoint, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RpcError(endpoint, "closed the connection during the handshake (another llama.cpp version?)")
        data += chunk
    return data


def probe_all(endpoints: Sequence[Endpoint], timeout: float = PROBE_TIMEOUT_S) -> list[ServerInfo]:
    """Every server's info; a failing one has `error` set instead of raising (for doctor)."""
    infos = []
    for ep in endpoints:
        try:
            infos.append(probe(ep, timeout))
        except RpcError as e:
            infos.append(ServerInfo(ep, (0, 0, 0), error=e.message.split(": ", 1)[1]))
    return infos


def reachable(endpoint: Endpoint, timeout: float = 1.0) -> str | None:
    """None if something accepts connections there (a server busy with this process does), else why not."""
    try:
        socket.create_connection((endpoint.host, endpoint.port), timeout=timeout).close()
        return None
    except ConnectionRefusedError:
        return "connection refused"
    except socket.timeout:
        return f"no answer within {timeout:g} s"
    except OSError as e:
        return e.strerror or str(e)


# ---- llama.cpp's side: the RPC backend's registration, the devices -------------------------------------

@dataclass
class Device:
    name: str  # ggml's device name: "RPC0", "CUDA0"
    where: str  # the server's HOST:PORT, or "local"
    free: int
    total: int
    handle: int = 0  # ggml_backend_dev_t

    def describe(self) -> str:
        from ggufkit.units import MIB

        where = "" if self.where == "local" else f"{self.where}, "
        return f"{self.name} ({where}{self.free // MIB} MiB free of {self.total // MIB} MiB)"


class _Ggml:
    """The few ggml-backend functions used here, resolved through libllama's handle (runtime/native.py)."""

    def __init__(self) -> None:
        from ggufkit.runtime import native

        P, S = ctypes.c_void_p, ctypes.c_size_t
        need = {
            "ggml_backend_reg_by_name": (P, ctypes.c_char_p),
            "ggml_backend_reg_get_proc_address": (P, P, ctypes.c_char_p),
            "ggml_backend_reg_dev_count": (S, P),
            "ggml_backend_reg_dev_get": (P, P, S),
            "ggml_backend_dev_count": (S,),
            "ggml_backend_dev_get": (P, S),
            "ggml_backend_dev_name": (ctypes.c_char_p, P),
            "ggml_backend_dev_type": (ctypes.c_int, P),
            "ggml_backend_dev_backend_reg": (P, P),
            "ggml_backend_reg_name": (ctypes.c_char_p, P),
            "ggml_backend_dev_memory": (None, P, ctypes.POINTER(S), ctypes.POINTER(S)),
            "ggml_backend_dev_by_name": (P, ctypes.c_char_p),
            "ggml_backend_dev_by_type": (P, ctypes.c_int),
        }
        for name, (res, *args) in need.items():
            fn = native.symbol(name, res, *args)
            if fn is None:
                raise LlamaFailure(f"this llama.cpp build lacks {name}")
            setattr(self, name.removeprefix("ggml_backend_"), fn)

    def rpc_reg(self) -> int:
        reg = self.reg_by_name(b"RPC")
        if not reg:
            raise BadInputError("this llama.cpp build has no RPC backend: rebuild it with -DGGML_RPC=ON "
                                "(`make install` does)")
        return reg

    def proc(self, name: str, restype: object, *argtypes: object):
        addr = self.reg_get_proc_address(self.rpc_reg(), name.encode())
        if not addr:
            raise LlamaFailure(f"the RPC backend does not offer {name}")
        return ctypes.CFUNCTYPE(restype, *argtypes)(addr)

    def memory(self, dev: int) -> tuple[int, int]:
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        self.dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        return free.value, total.value

    def device(self, dev: int, where: str) -> Device:
        free, total = self.memory(dev)
        return Device((self.dev_name(dev) or b"").decode(), where, free, total, dev)


_ggml: list[_Ggml] = []


def ggml() -> _Ggml:
    if not _ggml:
        _ggml.append(_Ggml())
    return _ggml[0]


def supported() -> bool:
    """Whether this llama.cpp build has the RPC backend."""
    try:
        return bool(ggml().reg_by_name(b"RPC"))
    except LlamaFailure:
        return False


def local_gpus() -> list[Device]:
    """This machine's GPUs as llama.cpp's default device list takes them (discrete ones, else integrated)."""
    g = ggml()
    gpus, igpus = [], []
    for i in range(g.dev_count()):
        dev = g.dev_get(i)
        kind = g.dev_type(dev)
        reg_name = (g.reg_name(g.dev_backend_reg(dev)) or b"").decode()
        if reg_name.startswith("RPC"):
            continue
        if kind == GGML_BACKEND_DEVICE_TYPE_GPU:
            gpus.append(g.device(dev, "local"))
        elif kind == GGML_BACKEND_DEVICE_TYPE_IGPU:
            igpus.append(g.device(dev, "local"))
    return gpus or igpus[:1]


def attach(endpoints: Sequence[Endpoint], timeout: float = PROBE_TIMEOUT_S) -> list[Device]:
    """Probe every server (raising RpcError for the first that fails), then add it to llama.cpp's RPC backend;
    return the servers' devices in order. llama.cpp keeps one connection per server for the process's life."""
    import llama_cpp

    llama_cpp.llama_backend_init()
    g = ggml()
    add_server = g.proc("ggml_backend_rpc_add_server", ctypes.c_void_p, ctypes.c_char_p)
    for ep in endpoints:
        probe(ep, timeout)
    devices = []
    for ep in endpoints:
        reg = add_server(str(ep).encode())
        if not reg:
            raise RpcError(ep, "serves no device")
        devices += [g.device(g.reg_dev_get(reg, i), str(ep)) for i in range(g.reg_dev_count(reg))]
    return devices


def device_array(devices: Sequence[Device]) -> ctypes.Array:
    """`llama_model_params.devices`: the handles, NULL-terminated."""
    return (ctypes.c_void_p * (len(devices) + 1))(*[d.handle for d in devices], None)


def split_array(split: Sequence[float], devices: Sequence[Device]) -> ctypes.Array:
    """`llama_model_params.tensor_split`: one proportion per device, llama_max_devices() entries."""
    import llama_cpp

    if not devices:
        raise BadInputError("--tensor-split splits the offloaded layers over devices, and there are none: give "
                            "--rpc servers, or use a GPU build on a machine with GPUs")
    if len(split) != len(devices):
        names = ", ".join(f"{d.name} ({d.where})" for d in devices)
        raise BadInputError(f"--tensor-split has {plural(len(split), 'proportion')} for {plural(len(devices), 'device')}: "
                            f"one per device, in this order: {names}")
    n = max(int(llama_cpp.llama_max_devices()), len(split))
    return (ctypes.c_float * n)(*split)


# ---- a server lost mid-run ---------------------------------------------------------------------------

_watched: list[Endpoint] = []


def watch(endpoints: Sequence[Endpoint]) -> None:
    """Name these servers if llama.cpp aborts on a lost connection (runtime/abort.py calls explain_abort)."""
    from ggufkit.runtime import abort

    if not _watched and endpoints:
        abort.add_explainer(lambda text: explain_abort(text, _watched))
    _watched[:] = [*dict.fromkeys([*_watched, *endpoints])]


def explain_abort(text: str, endpoints: Sequence[Endpoint]) -> str | None:
    """The one line for a llama.cpp abort that the RPC client raised, naming the server; None for others.

    llama.cpp's message ("Remote RPC server crashed or returned malformed response") does not say which
    server: the first one that no longer accepts connections is named (a live server accepts one even
    while it serves this process)."""
    if not any(m in text for m in _ABORT_MARKERS):
        return None
    for ep in endpoints:
        if str(ep) in text:
            return f"rpc server {ep}: {text.rstrip('.')}"
    deadline = time.monotonic() + 3  # a server being killed may still accept for a moment
    while True:
        for ep in endpoints:
            why = reachable(ep, timeout=0.5)
            if why is not None:
                return f"rpc server {ep}: lost mid-run ({why}): the server stopped or crashed"
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    servers = ", ".join(map(str, endpoints))
    return (f"rpc server {servers}: the connection broke mid-run, the server still accepts connections "
            f"(it crashed and was restarted, or the network dropped the connection): {text}")
