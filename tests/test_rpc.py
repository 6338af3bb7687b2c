"""More than one machine: real llama.cpp RPC servers (`ggufkit rpc-server`) on 127.0.0.1, real clients.

Servers only ever listen on 127.0.0.1, each on a free port, and every server a test starts is stopped by
it (fixtures and `finally`), whatever happens. Every wait is bounded.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, json_of

pytestmark = pytest.mark.skipif(
    not __import__("ggufkit.runtime.rpc", fromlist=["supported"]).supported(),
    reason="this llama-cpp-python build has no RPC backend (make install builds it with -DGGML_RPC=ON)")

LOOPBACK = "127.0.0.1"
PROMPT = ("-p", "Once upon a time", "-n", "24", "--temp", "0", "--json", "-t", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class Server:
    """A `ggufkit rpc-server` child on 127.0.0.1."""

    def __init__(self, log_dir: Path):
        from ggufkit.runtime.rpc import Endpoint

        self.endpoint = Endpoint(LOOPBACK, free_port())
        self.log = log_dir / f"rpc-server-{self.endpoint.port}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ggufkit", "rpc-server", "--host", LOOPBACK, "--port", str(self.endpoint.port),
                 "-t", "1"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def __str__(self) -> str:
        return str(self.endpoint)

    def wait_ready(self, timeout: float = 60) -> None:
        from ggufkit.runtime.rpc import RpcError, probe

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"rpc-server exited ({self.proc.returncode}): {self.log.read_text()}")
            try:
                probe(self.endpoint, timeout=2)
                return
            except RpcError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"rpc-server not ready in {timeout} s: {self.log.read_text()}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@contextmanager
def servers(log_dir: Path, n: int) -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        for _ in range(n):
            started.append(Server(log_dir))
        for s in started:
            s.wait_ready()
        yield started
    finally:
        for s in started:
            s.stop()


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    with servers(tmp_path_factory.mktemp("rpc"), 2) as pair:
        yield pair


@pytest.fixture(scope="module")
def model(samples) -> Path:
    return samples.gguf("q4_k_m")


def _rpc(*servers: Server) -> str:
    return ",".join(map(str, servers))


def test_all_layers_on_two_servers_generate_the_local_tokens(cli, model, two_servers):
    local = json_of(cli("run", model, *PROMPT))
    r = cli("run", model, *PROMPT, "--rpc", _rpc(*two_servers), "-v", "--verbose-llama")
    remote = json_of(r)
    assert remote["generated_ids"] == local["generated_ids"] and local["generated_tokens"] == 24
    # both servers got weights: llama.cpp allocated a model buffer on each RPC device, none on the CPU
    # beyond the input embeddings (always on the CPU)
    for server in two_servers:  # llama.cpp names a server's buffers RPC<device on the server>[HOST:PORT]
        assert f"RPC0[{server}] model buffer size" in r.err, r.err
    assert f"devices: RPC0 ({two_servers[0]}" in r.err and f"RPC1 ({two_servers[1]}" in r.err
    assert "offloaded 3/3 layers" in r.err, r.err


def test_tensor_split_over_local_cpu_and_two_servers(cli, model, two_servers):
    local = json_of(cli("run", model, *PROMPT))
    # tiny model: 2 layers + output. --gpu-layers 2 keeps layer 0 on this CPU; 1,1 puts layer 1 on the
    # first server and the output layer on the second
    r = cli("run", model, *PROMPT, "--rpc", _rpc(*two_servers), "--gpu-layers", "2", "--tensor-split", "1,1",
            "--verbose-llama")
    assert json_of(r)["generated_ids"] == local["generated_ids"]
    placed = dict(re.findall(r"layer +(\d+) assigned to device (\S+),", r.err))
    assert placed == {"0": "CPU", "1": "RPC0", "2": "RPC1"}, r.err  # RPC0, RPC1: the servers' devices, in order
    for server in two_servers:
        assert f"RPC0[{server}] model buffer size" in r.err, r.err
    assert "offloaded 2/3 layers" in r.err, r.err


def test_tensor_split_must_name_each_device(cli, model, two_servers):
    r = cli("run", model, *PROMPT, "--rpc", _rpc(*two_servers), "--tensor-split", "1,1,1")
    assert_clean_error(r, 2, "--tensor-split has 3 proportions for 2 devices", f"RPC0 ({two_servers[0]})")


def test_bench_rpc_row_beside_a_local_row(cli, model, two_servers):
    r = cli("bench", model, "-p", "8", "-n", "4", "-r", "1", "-t", "1", "--gpu", "both", "--rpc",
            str(two_servers[0]), "--format", "json", "-q", timeout=300)
    rows = json_of(r)["rows"]
    assert [(row["backend"], row["rpc_servers"]) for row in rows] == [("CPU", []), ("RPC", [str(two_servers[0])])]
    assert all(row["error"] is None and row["tg_tps"] > 0 for row in rows), rows
    md = cli("bench", model, "-p", "0", "-n", "4", "-r", "1", "-t", "1", "--rpc", str(two_servers[1]), "-q",
             "--format", "md", timeout=300)
    assert md.code == 0 and f"RPC[{two_servers[1]}]" in md.out, md.out + md.err


def test_doctor_checks_each_server(cli, two_servers):
    dead = f"{LOOPBACK}:{free_port()}"
    r = cli("doctor", "--rpc", f"{two_servers[0]},{dead}", "--json")
    assert r.code == 1, r.err
    by = {s["endpoint"]: s for s in json.loads(r.out)["rpc_servers"]}
    ok = by[str(two_servers[0])]
    assert ok["error"] is None and ok["protocol"] == "7.0.0" and ok["devices"][0]["total_bytes"] > 0
    assert "connection refused" in by[dead]["error"]
    text = cli("doctor", "--rpc", str(two_servers[1]))
    assert text.code == 0 and f"rpc {two_servers[1]}: ok (protocol 7.0.0), device 0:" in text.out, text.out


def test_wrong_port_is_one_line_naming_the_server(cli, model):
    dead = f"{LOOPBACK}:{free_port()}"
    t0 = time.monotonic()
    r = cli("run", model, *PROMPT, "--rpc", dead, timeout=60)
    assert_clean_error(r, 1, f"rpc server {dead}: connection refused")
    assert time.monotonic() - t0 < 30


@contextmanager
def fake_server(answer: bytes | None) -> Iterator[str]:
    """A TCP listener on 127.0.0.1 that answers any request with `answer` (None: never answers)."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(4)
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)
            if answer is not None:
                conn.settimeout(5)
                try:
                    conn.recv(64)
                    conn.sendall(answer)
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"{LOOPBACK}:{listener.getsockname()[1]}"
    finally:
        stop.set()
        t.join(timeout=5)
        for c in held:
            c.close()
        listener.close()


def test_server_of_another_version_or_silent_is_refused_in_bounded_time(cli, model):
    # HELLO reply of an RPC server of protocol 6.0.0 (same layout: 4 version bytes + 24 caps bytes)
    with fake_server(struct.pack("<Q", 28) + bytes([6, 0, 0, 0]) + bytes(24)) as old:
        r = cli("run", model, *PROMPT, "--rpc", old, timeout=60)
        assert_clean_error(r, 1, f"rpc server {old}: speaks RPC protocol 6.0.0, this llama.cpp 7.0.0")
    with fake_server(None) as silent:
        t0 = time.monotonic()
        r = cli("run", model, *PROMPT, "--rpc", silent, timeout=60)
        assert_clean_error(r, 1, f"rpc server {silent}: connected, but no RPC answer")
        assert time.monotonic() - t0 < 30


def test_server_killed_mid_generation_is_one_line_within_30s(model, tmp_path):
    with servers(tmp_path, 1) as (server,):
        client = subprocess.Popen(
            [sys.executable, "-m", "ggufkit", "run", model, "-p", "Once upon a time", "-n", "-1", "--ctx", "8192",
             "--temp", "0", "-t", "1", "--rpc", str(server), "--grammar-file", _endless_grammar(tmp_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            assert client.stdout is not None
            _wait_for(client, client.stdout, lambda seen: len(seen) >= 8, timeout=60)  # generation has begun
            server.stop()
            t0 = time.monotonic()
            out, err = client.communicate(timeout=30)
            elapsed = time.monotonic() - t0
        finally:
            if client.poll() is None:
                client.kill()
                client.wait(timeout=10)
    assert client.returncode == 1, err
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ggufkit: error: rpc server {server}: lost mid-run "), lines
    assert elapsed < 30
    # the text (its start was read above) ends its line: with 2>&1 the error line starts its own (issue 26)
    assert out.endswith(b"\n"), out[-80:]


def _endless_grammar(tmp_path: Path) -> Path:
    """A grammar that never lets the end-of-text token through: generation runs until the context is full."""
    g = tmp_path / "endless.gbnf"
    g.write_text('root ::= [a-z ] root\n')
    return g


def test_chat_keeps_its_conversation_when_a_server_dies(model, tmp_path):
    with servers(tmp_path, 1) as (server,):
        client = subprocess.Popen(
            [sys.executable, "-m", "ggufkit", "run", model, "-i", "--temp", "0", "-n", "8", "-t", "1", "--stats",
             "--rpc", str(server), "-p", "first question"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE)
        try:
            assert client.stdin is not None and client.stderr is not None
            _wait_for(client, client.stderr, lambda seen: b"t/s" in seen, timeout=60)  # the first turn's stats
            server.stop()
            out, err = client.communicate(b"second question\n", timeout=30)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait(timeout=10)
    assert client.returncode == 1, err
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith(f"ggufkit: error: rpc server {server}: ") and "conversation was saved to " in last, last
    saved = Path(last.split("conversation was saved to ", 1)[1].split(" (", 1)[0])
    try:
        messages = json.loads(saved.read_text())["messages"]
        assert [m["content"] for m in messages if m["role"] == "user"] == ["first question", "second question"]
        assert messages[1]["role"] == "assistant"
    finally:
        saved.unlink(missing_ok=True)


def _wait_for(client: subprocess.Popen, stream, done, timeout: float) -> None:
    """Read `stream` until done(bytes so far), within `timeout` seconds, while the client lives."""
    import os
    import select

    fd, seen, deadline = stream.fileno(), b"", time.monotonic() + timeout
    while not done(seen):
        left = deadline - time.monotonic()
        assert left > 0 and client.poll() is None, seen.decode(errors="replace")
        if select.select([fd], [], [], min(left, 1.0))[0]:
            seen += os.read(fd, 4096)


def test_a_port_it_cannot_bind_is_the_only_line(cli):
    """Bind first, then announce (issue 26): a busy port, or an address that is not this machine's, is one
    error line, with no "listening on" or security warning before it for a server that never listened."""
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = cli("rpc-server", "--port", str(port), "-t", "1", timeout=60)
    assert_clean_error(r, 1, f"cannot listen on {LOOPBACK}:{port}: the port is in use")
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: nothing listens, so nothing is exposed either
    port = free_port()
    r = cli("rpc-server", "--host", "192.0.2.1", "--port", str(port), timeout=60)
    assert_clean_error(r, 1, f"cannot listen on 192.0.2.1:{port}: that address is not one of this machine's")
    help_text = cli("rpc-server", "--help").out.lower()
    assert "no authentication" in help_text and "ssh -n -l" in help_text
