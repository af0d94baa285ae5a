"""The README's local-network section, command for command, in real processes on one anvil:
no `cast`, no manual mining. (The test asks for a free port where the README takes 8545/7070.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chain.anvil import anvil_binary
from chain.backend import RpcChain
from chain.client import ChainClient
from chain.config import load_deployment, read_chain_config

pytestmark = [
    pytest.mark.anvil,
    pytest.mark.skipif(anvil_binary() is None, reason="anvil binary not installed (npm ci)"),
]

ENV = {**os.environ, "BCAI_INSECURE_FAST_KDF": "1", "BCAI_PASSPHRASE": "test-pass"}


def bcai(data: Path, *args: str, ok: bool = True) -> Any:
    """``bcai -d DATA --json ARGS`` as its own process; the last JSON line of its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli", "-d", str(data), "--json", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = proc.stdout.strip().splitlines()
    out = json.loads(lines[-1]) if lines else None
    if ok:
        assert proc.returncode == 0, (args, proc.returncode, out, proc.stderr[-2000:])
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_local_network_walk(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    bcai(a, "init")
    bcai(b, "init")
    b_address = bcai(b, "status")["address"]
    up = bcai(a, "chain", "up", "--anvil", "--port", str(_free_port()), "--fund", b_address)
    try:
        _walk(a, b, tmp_path, up)
    finally:
        bcai(a, "chain", "down", ok=False)


def _walk(a: Path, b: Path, tmp_path: Path, up: dict[str, Any]) -> None:
    a_address = bcai(a, "status")["address"]
    assert up["validators"] == [a_address] and up["quorum"] == 1
    assert {f["address"] for f in up["funded"]} >= {a_address}
    attached = bcai(b, "chain", "attach", str(a))
    assert attached["rpc"] == up["rpc"]

    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(3 * (1 << 20) + 4321))
    root = bcai(a, "add", str(model))["root"]
    bcai(a, "publish", root)
    port = _free_port()
    bcai(a, "host", "announce", f"127.0.0.1:{port}")
    commit = bcai(a, "host", "commit", root, "--slot", "0", "--stake", "0.1eth")
    assert commit["pinned"]

    table = read_chain_config(a)
    assert table is not None
    backend = RpcChain(table["rpc"])
    deployment, _ = load_deployment(a)
    observer = ChainClient(backend, deployment, backend.dev_accounts()[7])
    assert observer.providers(root) == [(a_address, f"127.0.0.1:{port}")]
    first = backend.block_number()
    time.sleep(2.5)
    assert backend.block_number() >= first + 2  # blocks on a timer, no manual mining

    log = tmp_path / "serve.log"
    argv = ["-d", str(a), "--json", "serve", "--listen", f"127.0.0.1:{port}"]
    serve = subprocess.Popen(
        [sys.executable, "-m", "node.cli", *argv],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    try:
        assert serve.stdout is not None and serve.stdout.readline(), log.read_text()[-3000:]
        got = bcai(b, "get", root, "-o", str(tmp_path / "copy.bin"))  # no --peer: the chain
        assert (tmp_path / "copy.bin").read_bytes() == model.read_bytes(), got
    finally:
        serve.terminate()
        serve.wait(timeout=30)

    # The chain survives a restart: same URL, same contracts, same commitment, no redeploy.
    bcai(a, "chain", "down")
    again = bcai(a, "chain", "up", "--anvil")
    assert again["restored"] and again["rpc"] == up["rpc"]
    assert again["data_availability"] == up["data_availability"]
    status = bcai(b, "host", "status", "--host", a_address)
    assert [c["root"] for c in status["commitments"]] == [root]
    assert observer.providers(root) == [(a_address, f"127.0.0.1:{port}")]
