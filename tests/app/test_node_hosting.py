"""A host keeps serving while it adds, publishes and commits to content: `publish` and
`host commit` go through the running node (which holds the store and signs with its key)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from chain.anvil import anvil_binary
from chain.backend import RpcChain
from chain.client import ChainClient
from chain.config import load_deployment, read_chain_config
from tests._procs import ServeProcess, cli, run

pytestmark = [
    pytest.mark.anvil,
    pytest.mark.skipif(anvil_binary() is None, reason="anvil binary not installed (npm ci)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_publish_and_commit_while_serving(tmp_path: Path) -> None:
    a = tmp_path / "a"
    assert cli(a, "init")[0] == 0
    up = run(a, "chain", "up", "--anvil", "--port", str(_free_port()))
    assert up.returncode == 0, up.stderr
    try:
        with ServeProcess(a, "--no-chain") as server:
            model = tmp_path / "model.bin"
            model.write_bytes(os.urandom(2 * (1 << 20) + 99))
            status, added, err = cli(a, "add", str(model))
            assert status == 0, err
            root = added["root"]
            status, pub, err = cli(a, "publish", root, "--data-shards", "2", "--slots", "4")
            assert status == 0, err
            assert pub["slots"] == 4 and pub["tx"].startswith("0x")
            status, again, _ = cli(a, "publish", root, "--data-shards", "2", "--slots", "4")
            assert status == 0 and again["already_registered"] is True
            stake = ("--stake", "0.05eth")
            status, commit, err = cli(a, "host", "commit", root, "--slot", "1", *stake)
            assert status == 0, err
            assert commit["pinned"] is True and commit["slot"] == 1
            # An override would act behind the node's back: refused, one line, exit 2.
            status, out, _ = cli(a, "publish", root, "--rpc", "http://127.0.0.1:1")
            assert status == 2 and "holds its store" in out["error"]
            # Typed errors cross the API: slot out of range.
            status, out, _ = cli(a, "host", "commit", root, "--slot", "9", *stake)
            assert status != 0 and out["error"]
            assert server.stop() == 0
        table = read_chain_config(a)
        deployment, _ = load_deployment(a)
        backend = RpcChain(str(table["rpc"]))
        client = ChainClient(backend, deployment, backend.dev_accounts()[0])
        c = client.commitment_of(bytes.fromhex(root[2:]), 1)
        assert c.host.lower() == server.address.lower() and c.stake == 5 * 10**16
        [entry] = [e for e in cli(a, "ls")[1]["content"] if e["root"] == root]
        assert entry["pinned"] is True
    finally:
        run(a, "chain", "down")
