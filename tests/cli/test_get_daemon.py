"""`bcai get` through a running node: the thin path (stdlib HTTP client, no transfer engine
imported) gives the same bytes, JSON and exit codes as the in-process get; a missing, stale or
silent daemon is handled. Real `bcai serve` processes, real TCP and HTTP on 127.0.0.1."""

from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.app import ExitStatus, NodeError, RemoteNode
from tests._procs import ENV, ServeProcess, cli, run

MiB = 1 << 20
#: What the thin path must not import (each costs 0.05-1 s of start-up).
HEAVY = ("trio", "structlog", "eth_account", "py_ecc", "plyvel", "httpx", "node.transfer",
         "node.store", "node.receipt", "nacl")  # fmt: skip


def _file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def _init(data: Path) -> None:
    status, _, err = cli(data, "init")
    assert status == 0, err


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[tuple[ServeProcess, list[str], list[bytes]]]:
    """A serving provider with three 1 MiB + 7 contents; yields (server, roots, bytes)."""
    prov = tmp_path / "prov"
    _init(prov)
    roots, blobs = [], []
    for i in range(3):
        src = _file(tmp_path / f"src{i}.bin", MiB + 7)
        status, out, _ = cli(prov, "add", str(src))
        assert status == 0
        roots.append(out["root"])
        blobs.append(src.read_bytes())
    with ServeProcess(prov) as server:
        yield server, roots, blobs


def test_get_through_the_daemon_matches_the_in_process_get(
    tmp_path: Path, provider: tuple[ServeProcess, list[str], list[bytes]]
) -> None:
    server, roots, blobs = provider
    recv = tmp_path / "recv"
    _init(recv)
    # No daemon on recv: the get runs in this process.
    here = tmp_path / "here.bin"
    proc = run(recv, "get", roots[0], "--peer", server.peer, "-o", str(here))
    assert proc.returncode == 0, proc.stderr
    local = json.loads(proc.stdout)
    assert here.read_bytes() == blobs[0]
    with ServeProcess(recv) as receiver:
        assert (recv / "run" / "api.json").exists()
        there = tmp_path / "there.bin"
        proc = run(recv, "get", roots[1], "--peer", server.peer, "-o", str(there))
        assert proc.returncode == 0, proc.stderr
        remote = json.loads(proc.stdout)
        assert there.read_bytes() == blobs[1]
        assert set(remote) == set(local) and remote["output"] == str(there)
        assert remote["fetched_chunks"] == remote["chunks"] == local["chunks"]
        assert [p["address"] for p in remote["providers"]] == [server.address]
        # The daemon did it: its transfer list has the get, the store has the content.
        transfers = cli(recv, "status")[1]["transfers"]
        assert [t["root"] for t in transfers] == [roots[1]]
        # Text mode: the same line shape as in-process.
        proc = run_text(recv, "get", roots[2], "--peer", server.peer, "-o", str(there))
        assert proc.returncode == 0 and proc.stdout.startswith(f"got {roots[2]} (")
        assert f"wrote {there}" in proc.stdout and there.read_bytes() == blobs[2]
        # Already complete: answered from the daemon's store, no peer.
        proc = run(recv, "get", roots[1], "-o", str(there))
        assert proc.returncode == 0 and json.loads(proc.stdout)["local"] is True
        # -o - streams the bytes through the API.
        proc_b = subprocess.run(
            [sys.executable, "-m", "node.cli", "-d", str(recv), "get", roots[0],
             "--peer", server.peer, "-o", "-"],
            env=ENV, capture_output=True, timeout=120,
        )  # fmt: skip
        assert proc_b.returncode == 0 and proc_b.stdout == blobs[0], proc_b.stderr
        assert receiver.proc.poll() is None


def run_text(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", "-d", str(data), *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_errors_through_the_daemon_have_the_in_process_codes(
    tmp_path: Path, provider: tuple[ServeProcess, list[str], list[bytes]]
) -> None:
    server, roots, _ = provider
    recv = tmp_path / "recv"
    _init(recv)
    unknown = "0x" + "ab" * 32
    cases = [
        (("get", roots[0], "--peer", "no-port"), ExitStatus.USAGE, "bad peer"),
        (("get", "0x1234"), ExitStatus.USAGE, "32 bytes of hex"),
        (("get", roots[0], "--peer", server.peer, "--limit-rate", "fast"), ExitStatus.USAGE,
         "bad rate"),
        (("get", unknown, "--peer", server.peer), ExitStatus.NOT_FOUND, None),
        (("get", roots[0], "--peer", server.peer, "-o", str(tmp_path / "no" / "dir" / "f")),
         ExitStatus.NOT_FOUND, None),
    ]  # fmt: skip
    here = [run(recv, *args) for args, _, _ in cases]
    with ServeProcess(recv, "--no-fsync"):  # the benchmarks' receiver daemon
        there = [run(recv, *args) for args, _, _ in cases]
    for (args, status, text), a, b in zip(cases, here, there, strict=True):
        assert a.returncode == b.returncode == status, (args, a.stdout, b.stdout, b.stderr)
        ja, jb = json.loads(a.stdout), json.loads(b.stdout)
        assert ja["status"] == jb["status"] and ja["retryable"] == jb["retryable"], (ja, jb)
        assert text is None or (text in ja["error"] and text in jb["error"]), (ja, jb)
        assert "Traceback" not in b.stderr


def test_the_thin_path_imports_no_engine(
    tmp_path: Path, provider: tuple[ServeProcess, list[str], list[bytes]]
) -> None:
    """A get through a daemon imports only argparse, http.client and the CLI frame; without a
    daemon the same command imports the engine (the check can fail both ways)."""
    server, roots, blobs = provider
    recv = tmp_path / "recv"
    _init(recv)
    code = (
        "import io, json, sys; from node.cli import main;"
        "out = io.StringIO();"
        f"status = main(sys.argv[1:], stdout=out, stderr=sys.stderr);"
        f"print(json.dumps([int(status), [m for m in {HEAVY!r} if m in sys.modules]]))"
    )

    def get(dst: Path) -> tuple[int, list[str]]:
        argv = ["-d", str(recv), "--json", "get", roots[0], "--peer", server.peer, "-o", str(dst)]
        proc = subprocess.run(
            [sys.executable, "-c", code, *argv], env=ENV, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        status, loaded = json.loads(proc.stdout.splitlines()[-1])
        assert dst.read_bytes() == blobs[0]
        return status, loaded

    status, loaded = get(tmp_path / "a.bin")
    assert status == 0 and {"trio", "node.transfer", "node.store"} <= set(loaded)
    cli(recv, "rm", roots[0])
    with ServeProcess(recv):
        status, loaded = get(tmp_path / "b.bin")
        assert status == 0 and loaded == []


def test_a_stale_or_silent_daemon_file(
    tmp_path: Path, provider: tuple[ServeProcess, list[str], list[bytes]]
) -> None:
    server, roots, blobs = provider
    recv = tmp_path / "recv"
    _init(recv)
    (recv / "run").mkdir(exist_ok=True)
    (recv / "run" / "api.token").write_text("x" * 64)
    api = recv / "run" / "api.json"
    # A dead pid: the file is ignored, the get runs here.
    dead = 2**22 + 12345  # above pid_max on this kind of machine: never a live process
    api.write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": dead}))
    dst = tmp_path / "out.bin"
    proc = run(recv, "get", roots[0], "--peer", server.peer, "-o", str(dst))
    assert proc.returncode == 0, proc.stderr
    assert dst.read_bytes() == blobs[0]
    # A live pid (ours) with nothing listening: typed, retryable, no store opened behind it.
    api.write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": os.getpid()}))
    proc = run(recv, "get", roots[1], "--peer", server.peer, "-o", str(dst))
    assert proc.returncode == ExitStatus.UNAVAILABLE, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["retryable"] is True and "does not answer" in out["error"]
    # A garbled file: ignored.
    api.write_text("{not json")
    proc = run(recv, "get", roots[1], "--peer", server.peer, "-o", str(dst))
    assert proc.returncode == 0 and dst.read_bytes() == blobs[1]


# -- the client against canned answers -------------------------------------------------------


class _Canned(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b""
    chunked = False
    seen: list[tuple[str, str, str | None, bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append(
            (self.command, self.path, self.headers.get("Authorization"), self.rfile.read(length))
        )
        self.send_response(self.status)
        if self.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for line in self.body.splitlines(keepends=True):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[tuple[type[_Canned], RemoteNode]]:
    handler = type("Handler", (_Canned,), {"seen": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield handler, RemoteNode(f"http://127.0.0.1:{srv.server_address[1]}/", "tok")
    finally:
        srv.shutdown()
        srv.server_close()


def test_client_reads_ndjson_progress_result_and_failures(
    canned: tuple[type[_Canned], RemoteNode],
) -> None:
    handler, node = canned
    handler.chunked = True
    handler.body = (
        b'{"progress": {"done_bytes": 5, "total_bytes": 10}}\n\n'
        b'{"progress": {"done_bytes": 10, "total_bytes": 10}}\n'
        b'{"result": {"root": "0x01", "size": 10}}\n'
    )
    seen: list[int] = []
    out = node.fetch(b"\x01" * 32, ["h:1"], progress=lambda p: seen.append(p["done_bytes"]))
    assert out == {"root": "0x01", "size": 10} and seen == [5, 10]
    method, path, auth, body = handler.seen[-1]
    assert (method, path, auth) == ("POST", "/api/v1/get", "Bearer tok")
    assert json.loads(body)["peers"] == ["h:1"] and json.loads(body)["root"] == "0x" + "01" * 32
    # A failure line: the daemon's typed failure, unchanged.
    handler.body = b'{"failure": {"error": "gone", "status": "peer_error", "retryable": true}}\n'
    with pytest.raises(NodeError) as info:
        node.fetch(b"\x01" * 32)
    assert info.value.failure.status == ExitStatus.PEER_ERROR and info.value.failure.retryable
    # The stream ends without a result; or a line that is not JSON.
    for body, text in ((b"", "without a result"), (b"<html>\n", "unexpected answer")):
        handler.body = body
        with pytest.raises(NodeError) as info:
            node.fetch(b"\x01" * 32)
        assert info.value.failure.status == ExitStatus.ERROR and text in info.value.failure.message


def test_client_maps_http_errors_and_garbage(canned: tuple[type[_Canned], RemoteNode]) -> None:
    handler, node = canned
    handler.status, handler.body = 404, b'{"error": "no such root", "status": "not_found"}'
    with pytest.raises(NodeError) as info:
        node.verify(b"\x02" * 32)
    assert info.value.failure.status == ExitStatus.NOT_FOUND
    assert info.value.failure.message == "no such root"
    handler.status, handler.body = 500, b"<html>oops</html>"
    with pytest.raises(NodeError) as info:
        node.status()
    assert (
        info.value.failure.status == ExitStatus.ERROR and "HTTP 500" in info.value.failure.message
    )
    handler.status, handler.body = 200, b"not json"
    with pytest.raises(NodeError) as info:
        node.ls()
    assert info.value.failure.status == ExitStatus.ERROR
    handler.status, handler.body = 200, b'{"ok": 1}'
    assert node.status() == {"ok": 1}
    # Streaming content in pieces, and a closed port.
    handler.body = os.urandom(3 * MiB + 1)
    assert b"".join(node.iter_content(b"\x03" * 32)) == handler.body
    closed = RemoteNode("http://127.0.0.1:9", "tok")
    with pytest.raises(NodeError) as info:
        closed.status()
    assert info.value.failure.status == ExitStatus.UNAVAILABLE and info.value.failure.retryable


# -- the progress display ---------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_for_a_get_that_lasts(tmp_path: Path) -> None:
    from node.cli._main import Context
    from node.cli._net_cmds import _Bar

    def ctx(err: io.StringIO) -> Context:
        return Context(stdout=io.StringIO(), stderr=err, env={}, json=False, data_dir=tmp_path)

    sample = {"done_bytes": MiB, "total_bytes": 4 * MiB, "speed": 5e6}
    err = _Tty()
    with _Bar(ctx(err), b"\xab" * 32) as bar:
        bar.update(sample)  # at once: a small get shows nothing (and imports no rich)
        assert bar.progress is None and err.getvalue() == ""
        bar.started -= _Bar.SHOW_AFTER
        bar.update(sample)  # a get that lasts: the bar appears
        assert bar.progress is not None
    assert "0xabababab" in err.getvalue()
    # On a pipe: no bar, one line every LINE_EVERY seconds.
    pipe = io.StringIO()
    with _Bar(ctx(pipe), b"\xab" * 32) as bar:
        bar.update(sample)
        assert pipe.getvalue() == ""
        bar.last_line -= _Bar.LINE_EVERY
        bar.update(sample)
        bar.update(sample)
    assert bar.progress is None
    assert pipe.getvalue().splitlines() == [
        f"bcai: get 0xababababab… {MiB}/{4 * MiB} bytes (25.0%), 5.0 MB/s"
    ]
