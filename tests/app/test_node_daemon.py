"""The node as a service: every CLI command works while ``bcai serve`` holds the data dir.

Real processes (``bcai serve``), real TCP and HTTP on 127.0.0.1, real LevelDB.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest
import trio

from node.app import ExitStatus, open_node
from node.transfer import serve_node
from tests._procs import ENV, ServeProcess, cli

MiB = 1 << 20


def _file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def _init(data: Path) -> str:
    status, out, err = cli(data, "init")
    assert status == 0, err
    return str(out["address"])


def test_every_command_goes_through_the_running_node(tmp_path: Path) -> None:
    prov, recv = tmp_path / "prov", tmp_path / "recv"
    _init(prov)
    _init(recv)
    first = _file(tmp_path / "first.bin", 3 * MiB + 5)
    status, added, _ = cli(prov, "add", str(first))
    assert status == 0
    with ServeProcess(prov) as server, ServeProcess(recv) as receiver:
        api = server.info["api"]
        assert api.startswith("http://127.0.0.1:") and server.info["metrics"] == api + "/metrics"
        # Store commands on the provider while it serves (before: "store in use").
        second = _file(tmp_path / "second.bin", MiB)
        status, out, err = cli(prov, "add", str(second), "--name", "two")
        assert status == 0, err
        root2 = out["root"]
        status, ls, _ = cli(prov, "ls")
        assert {c["root"] for c in ls["content"]} == {added["root"], root2}
        assert cli(prov, "pin", root2)[1] == {"root": root2, "pinned": True}
        status, report, _ = cli(prov, "verify", root2)
        assert status == 0 and report["ok"] and report["checked"] == 1
        exported = tmp_path / "out2.bin"
        status, out, _ = cli(prov, "export", root2, "-o", str(exported))
        assert status == 0 and exported.read_bytes() == second.read_bytes()
        # Typed errors cross the API unchanged.
        status, out, _ = cli(prov, "verify", "0x" + "ab" * 32)
        assert status == ExitStatus.NOT_FOUND and out["status"] == "not_found"
        status, out, _ = cli(prov, "rm", root2)
        assert status == 0 and out["removed"] is True

        # A get through the receiver's daemon: the daemon fetches, the CLI renders.
        output = tmp_path / "got.bin"
        status, got, err = cli(recv, "get", added["root"], "--peer", server.peer, "-o", str(output))
        assert status == 0, err
        assert got["fetched_chunks"] == added["chunks"] and got["providers"]
        assert (
            hashlib.sha256(output.read_bytes()).digest()
            == hashlib.sha256(first.read_bytes()).digest()
        )
        status, st, _ = cli(recv, "status")
        assert st["running"] is True and st["api"] == receiver.info["api"]
        assert st["metrics"] == receiver.info["api"] + "/metrics"
        [t] = [t for t in st["transfers"] if t["root"] == added["root"]]
        assert t["state"] == "done" and t["direction"] == "in"
        assert t["done_bytes"] == t["total_bytes"] == first.stat().st_size

        # The API wants its token; /metrics is open and speaks Prometheus.
        assert httpx.get(api + "/api/v1/status").status_code == 401
        token = (prov / "run" / "api.token").read_text().strip()
        assert (prov / "run" / "api.token").stat().st_mode & 0o077 == 0
        ok = httpx.get(api + "/api/v1/status", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()["address"] == server.address
        metrics = httpx.get(api + "/metrics")
        assert metrics.status_code == 200 and "text/plain" in metrics.headers["content-type"]
        size = first.stat().st_size
        assert _metric(metrics.text, "bcai_sent_bytes_total") >= size
        received = httpx.get(receiver.info["metrics"]).text
        assert _metric(received, "bcai_received_bytes_total") >= size
        assert _metric(received, "bcai_chunks_received_total") == added["chunks"]

        # Limits change at run time through the API; bad values are typed errors.
        auth = {"Authorization": f"Bearer {token}"}
        put = httpx.put(api + "/api/v1/limits", json={"download": "1M"}, headers=auth)
        assert put.status_code == 200 and put.json()["download"] == MiB
        assert cli(prov, "status")[1]["limits"]["download"] == MiB
        bad = httpx.put(api + "/api/v1/limits", json={"download": "fast"}, headers=auth)
        assert bad.status_code == 400 and bad.json()["status"] == "usage"
        bad = httpx.put(api + "/api/v1/limits", json={"sideways": 1}, headers=auth)
        assert bad.status_code == 400
        put = httpx.put(api + "/api/v1/limits", json={"download": None}, headers=auth)
        assert put.json()["download"] is None
        status, out, _ = cli(prov, "limits", "--upload", "2M")
        assert status == 0 and out == {"download": None, "upload": 2 * MiB}

        # One node per data dir.
        status, out, _ = cli(prov, "serve", "--listen", "127.0.0.1:0")
        assert status == ExitStatus.UNAVAILABLE and "already runs" in out["error"]
        assert server.stop() == 0 and receiver.stop() == 0
    assert not (prov / "run" / "api.json").exists()
    # Without the daemon the same commands open the store themselves.
    status, ls, _ = cli(prov, "ls")
    assert status == 0 and [c["root"] for c in ls["content"]] == [added["root"]]
    assert cli(prov, "status")[1]["running"] is False


def _metric(text: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    raise AssertionError(f"{name} not exposed")


def test_stale_api_file_is_ignored(tmp_path: Path) -> None:
    data = tmp_path / "n"
    _init(data)
    (data / "run").mkdir(exist_ok=True)
    dead = 2**22 + 12345  # above pid_max on this kind of machine: never a live process
    (data / "run" / "api.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": dead}))
    status, out, _ = cli(data, "ls")
    assert status == 0 and out["content"] == []


def test_daemon_that_stopped_answering_is_a_typed_error(tmp_path: Path) -> None:
    data = tmp_path / "n"
    _init(data)
    (data / "run").mkdir(exist_ok=True)
    (data / "run" / "api.token").write_text("x" * 64)
    # Our own pid is alive, nothing listens on port 9: the CLI must not open the store behind
    # a node that may still hold it, nor print a traceback.
    (data / "run" / "api.json").write_text(
        json.dumps({"url": "http://127.0.0.1:9", "pid": os.getpid()})
    )
    status, out, _ = cli(data, "ls")
    assert status == ExitStatus.UNAVAILABLE and out["retryable"] is True
    assert "does not answer" in out["error"]


async def test_library_face_fetches_with_progress(tmp_path: Path) -> None:
    """docs/library.md in a test: a job opens its node, fetches a root, sees progress."""
    prov, recv = tmp_path / "prov", tmp_path / "recv"
    _init(prov)
    _init(recv)
    src = _file(tmp_path / "ckpt.bin", 2 * MiB + 1)
    with open_node(prov, passphrase=ENV["BCAI_PASSPHRASE"]) as provider:
        root = provider.add(src)["root"]
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    provider.store, provider.identity, task_status=task_status
                )
            )
            seen: list[int] = []
            with open_node(recv, passphrase=lambda: ENV["BCAI_PASSPHRASE"]) as node:
                out = await node.fetch(
                    bytes.fromhex(root[2:]),
                    [f"{host}:{port}/{provider.address}"],
                    output=tmp_path / "ckpt.out",
                    progress=lambda p: seen.append(p.done_bytes),
                )
                assert out["size"] == src.stat().st_size and seen and seen[-1] == out["size"]
                assert (tmp_path / "ckpt.out").read_bytes() == src.read_bytes()
                [t] = node.status()["transfers"]
                assert t["state"] == "done" and t["priority"] == "normal"
                # Already complete: no peer needed the second time.
                again = await node.fetch(bytes.fromhex(root[2:]), [])
                assert again["local"] is True
            nursery.cancel_scope.cancel()


def test_open_node_on_a_missing_dir_is_typed(tmp_path: Path) -> None:
    from node.app._errors import NotInitialised, classify

    with pytest.raises(NotInitialised) as info:
        open_node(tmp_path / "nope")
    failure = classify(info.value)
    assert failure is not None and failure.status == ExitStatus.NOT_FOUND


async def test_max_transfers_queues_the_rest(tmp_path: Path) -> None:
    """[network] max_transfers = 1: a second fetch waits ("queued") until the first is done."""
    from node.config import load_config

    prov, recv = tmp_path / "prov", tmp_path / "recv"
    _init(prov)
    _init(recv)
    srcs = [_file(tmp_path / f"f{i}.bin", 2 * MiB) for i in range(2)]
    cfg = load_config(recv)
    cfg.network.max_transfers = 1
    with open_node(prov, passphrase=ENV["BCAI_PASSPHRASE"]) as provider:
        roots = [bytes.fromhex(provider.add(src)["root"][2:]) for src in srcs]
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    provider.store, provider.identity, task_status=task_status
                )
            )
            peer = f"{host}:{port}/{provider.address}"
            with open_node(recv, passphrase=ENV["BCAI_PASSPHRASE"], config=cfg) as node:
                seen: list[list[str]] = []
                async with trio.open_nursery() as fetches:
                    for root in roots:
                        fetches.start_soon(lambda r=root: node.fetch(r, [peer], limit_rate=4 * MiB))
                    while len(node.status()["transfers"]) < 2 or any(
                        t["state"] in ("queued", "running") for t in node.status()["transfers"]
                    ):
                        seen.append(sorted(t["state"] for t in node.status()["transfers"]))
                        await trio.sleep(0.05)
                assert ["queued", "running"] in seen  # never two running at once
                assert ["running", "running"] not in seen
                assert [t["state"] for t in node.status()["transfers"]] == ["done", "done"]
            nursery.cancel_scope.cancel()


def test_ctrl_c_of_a_get_through_the_daemon(tmp_path: Path) -> None:
    """Ctrl-C of `bcai get` that a daemon runs: exit 130 and one line, the daemon cancels the
    transfer (state kept), and the same command afterwards resumes and completes."""
    import signal
    import subprocess
    import sys
    import time

    prov, recv = tmp_path / "prov", tmp_path / "recv"
    _init(prov)
    _init(recv)
    src = _file(tmp_path / "big.bin", 12 * MiB)
    root = cli(prov, "add", str(src))[1]["root"]
    with ServeProcess(prov) as server, ServeProcess(recv):
        cmd = [sys.executable, "-m", "node.cli", "-d", str(recv), "get", root,
               "--peer", server.peer, "--limit-rate", "2M"]  # fmt: skip
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        running: list[dict[str, object]] = []
        while time.monotonic() < deadline and not running:
            time.sleep(0.2)
            transfers = cli(recv, "status")[1]["transfers"]
            running = [t for t in transfers if t["state"] == "running" and t["done_bytes"]]
        assert running, "the transfer never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 130
        lines = err.decode().strip().splitlines()
        assert lines and lines[-1].startswith("bcai: error: interrupted"), err
        assert "Traceback" not in err.decode()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = [t["state"] for t in cli(recv, "status")[1]["transfers"]]
            if states == ["failed"]:
                break
            time.sleep(0.2)
        assert states == ["failed"]  # cancelled in the daemon too, not left running
        status, out, err = cli(recv, "get", root, "--peer", server.peer)
        assert status == 0, err
        assert 0 < out["resumed_chunks"] < out["chunks"]
