"""A chain that goes down delays the node's chain work and loses none of it.

Real processes throughout: anvil (with its state kept in a file across a restart), a provider
running `bcai serve` with chain duties, a receiver running `bcai get`. The provider publishes
three contents and the receiver prepays escrow; then, while the chain is down, the receiver
fetches the three contents and pays for them in receipts; the provider collects them, cannot
submit them, and is SIGKILLed and restarted. When the chain comes back every receipt lands on
chain, once, and the receiver's escrow paid exactly what it signed for.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chain import ChainClient, RpcChain
from chain.anvil import anvil_binary, start_anvil
from chain.config import load_deployment
from chain.tx import send_value

pytestmark = [
    pytest.mark.anvil,
    pytest.mark.skipif(anvil_binary() is None, reason="anvil binary not installed (npm ci)"),
]

SIZES = [300_000, 1_048_576 + 1, 2_500_000]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "BCAI_PASSPHRASE": "outage-test",
        "BCAI_INSECURE_FAST_KDF": "1",
        "BCAI_LOG_LEVEL": "info",
    }


def bcai(data_dir: Path, *args: str, check: bool = True) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "--json", "-d", str(data_dir), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"bcai {args} exited {out.returncode}: {out.stdout} {out.stderr}")
    return json.loads(out.stdout.splitlines()[-1]) if out.stdout.strip() else {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """A `bcai serve` process; its first stdout line (JSON) says where it listens."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node.cli",
                "--json",
                "-d",
                str(data_dir),
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--chain-interval",
                "0.3",
            ],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"serve exited early; see {log}"
        self.info = json.loads(line)
        assert self.info["chain_duties"] is True

    @property
    def peer(self) -> str:
        return f"{self.info['listen']}/{self.info['address']}"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def test_receipts_survive_chain_outage_and_node_restart(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "anvil-state.json"
    anvil_args = ["--state", str(state)]
    anvil = start_anvil(port=port, log_dir=tmp_path / "anvil1", extra_args=anvil_args)
    provider, receiver = tmp_path / "provider", tmp_path / "receiver"
    serve = None
    try:
        provider_address, receiver_address = (
            bcai(d, "init")["address"] for d in (provider, receiver)
        )
        bcai(provider, "chain", "deploy", "--rpc", anvil.url)
        attached = bcai(receiver, "chain", "attach", str(provider))  # funds the receiver
        assert attached["rpc"] == anvil.url
        backend = RpcChain(anvil.url)
        funder = backend.dev_accounts()[0]
        assert bcai(provider, "status")["running"] is False  # nothing running yet
        send_value(backend, funder, provider_address, 10**18)
        roots = []
        for i, size in enumerate(SIZES):
            f = tmp_path / f"file{i}.bin"
            f.write_bytes(os.urandom(size))
            roots.append(bcai(provider, "add", str(f))["root"])
            bcai(provider, "publish", roots[-1])  # receipts count only for registered roots
        bcai(receiver, "escrow", "deposit", "0.01eth")
        deployment, _ = load_deployment(provider)
        escrow_before = ChainClient(backend, deployment, funder).escrow_of(receiver_address)

        serve = Serve(provider, tmp_path / "serve1.log")
        assert serve.info["address"] == provider_address

        # The chain goes away (SIGTERM: anvil writes its state file on the way out).
        anvil.stop()
        assert state.exists()
        for root in roots:
            bcai(receiver, "get", root, "--peer", serve.peer, "-o", str(tmp_path / root))

        # The provider cannot submit; its receipts are queued durably. Kill it hard, restart.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = bcai(provider, "status")
            chain = status.get("chain") or {}
            if chain and not chain["chain_up"] and chain["receipts"]["pending"] == len(SIZES):
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"receipts not queued while the chain was down: {status}")
        assert chain["receipts"]["bytes_pending"] == sum(SIZES)
        serve.kill()
        serve = Serve(provider, tmp_path / "serve2.log")

        # The chain comes back with its state; the restarted node drains its queue.
        anvil = start_anvil(port=port, log_dir=tmp_path / "anvil2", extra_args=anvil_args)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            chain = bcai(provider, "status").get("chain") or {}
            if chain.get("receipts", {}).get("submitted") == len(SIZES):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"receipts did not land after the chain returned: {chain}")
        receipts = chain["receipts"]
        assert receipts["pending"] == receipts["inflight"] == receipts["rejected"] == 0
        assert receipts["bytes_pending"] == receipts["payment_pending"] == 0

        client = ChainClient(RpcChain(anvil.url), deployment, funder)
        epoch = client.current_epoch()
        assert client.receipt_count(provider_address, epoch) == len(SIZES)
        assert client.served_bytes(provider_address, epoch) == sum(SIZES)
        paid = client.payments_of(provider_address, epoch)
        assert paid > 0
        assert escrow_before.balance - client.escrow_of(receiver_address).balance == paid
    finally:
        if serve is not None:
            serve.stop()
        anvil.stop()
        shutil.rmtree(tmp_path / "anvil1", ignore_errors=True)
