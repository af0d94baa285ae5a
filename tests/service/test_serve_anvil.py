"""`bcai serve` as a host and `bcai serve --validator`, real processes on an anvil that mines only
on transactions (the chain `bcai chain up --anvil` starts).

The validator's node challenges the host's due commitment on its own; the seed block is not
mined by anybody else, so the host's node must ask for it (it used to wait forever and be
slashed); it then answers with its sampled slot segments and passes, unattended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chain import ChainClient, DeployParams, RpcChain, deploy_suite
from chain.anvil import anvil_binary, start_anvil
from chain.config import chain_table, write_chain_config
from chain.tx import send_value

pytestmark = [
    pytest.mark.anvil,
    pytest.mark.skipif(anvil_binary() is None, reason="anvil binary not installed (npm ci)"),
]

ENV = {
    **os.environ,
    "BCAI_PASSPHRASE": "serve-validator-test",
    "BCAI_INSECURE_FAST_KDF": "1",
    "BCAI_LOG_LEVEL": "info",
}


def bcai(data_dir: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "--json", "-d", str(data_dir), *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if out.returncode != 0:
        raise AssertionError(f"bcai {args} exited {out.returncode}: {out.stdout} {out.stderr}")
    return dict(json.loads(out.stdout.splitlines()[-1])) if out.stdout.strip() else {}


def serve(data_dir: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    cli = [sys.executable, "-m", "node.cli", "--json", "-d", str(data_dir)]
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [*cli, "serve", "--listen", "127.0.0.1:0", "--chain-interval", "0.3", *extra],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline() or b"null")
    assert info and info["chain_duties"] is True, f"serve did not start; see {log}"
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chain_status(data_dir: Path) -> dict[str, Any]:
    return dict(bcai(data_dir, "status").get("chain") or {})


def test_validator_challenges_and_host_answers_on_a_quiet_anvil(tmp_path: Path) -> None:
    anvil = start_anvil(log_dir=tmp_path / "anvil")  # no block time: mines only on transactions
    host, val = tmp_path / "host", tmp_path / "validator"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        host_addr, val_addr = (bcai(d, "init")["address"] for d in (host, val))
        backend = RpcChain(anvil.url)
        funder = backend.dev_accounts()[0]
        params = DeployParams(
            min_stake=10**16,
            period_blocks=200,
            due_bps=10_000,  # every commitment due every period
            samples=4,
            validators=(val_addr,),
            quorum=1,
        )
        deployment = deploy_suite(backend, funder, params)
        write_chain_config(host, chain_table(deployment, anvil.url))
        bcai(val, "chain", "attach", str(host))
        for address in (host_addr, val_addr):
            send_value(backend, funder, address, 10**18)
        f = tmp_path / "data.bin"
        f.write_bytes(os.urandom(5 * 4096 + 17))
        root = bcai(host, "add", str(f))["root"]
        bcai(host, "publish", root, "--data-shards", "2", "--slots", "3")
        bcai(host, "host", "commit", root, "--slot", "1", "--stake", "0.02eth")

        procs.append(serve(host, tmp_path / "host.log"))
        procs.append(serve(val, tmp_path / "validator.log", "--validator"))
        deadline = time.monotonic() + 60
        answers: dict[str, Any] = {}
        while time.monotonic() < deadline:
            answers = chain_status(host).get("answers", {})
            if answers.get("sent") or answers.get("failed"):
                break
            time.sleep(0.5)
        assert answers.get("sent") == 1 and answers.get("failed") == 0, answers
        # Nobody else sent a transaction: the host had the seed block mined itself.
        assert "seed block not mined" in (tmp_path / "host.log").read_text()

        client = ChainClient(backend, deployment, funder)
        c = client.commitment_of(bytes.fromhex(root[2:]), 1)
        assert c.host.lower() == host_addr.lower()
        assert c.stake == 2 * 10**16 and c.last_proven_at > 0 and c.faults == 0
        validator = chain_status(val).get("validator", {})
        assert validator.get("issued_this_run") == 1, validator
        assert validator["book"]["issued"] == 1  # the book records what was issued
        challenge = client.get_challenge(validator["txs"][0]["id"])
        assert challenge.status.name == "PASSED" and challenge.scheduled
    finally:
        for p in procs:
            stop(p)
        anvil.stop()
