"""``bcai chain|publish|host|prove|receipts|rewards`` in-process, against a real anvil."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chain.anvil import anvil_binary
from chain.backend import RpcChain
from chain.client import ChainClient
from chain.config import load_deployment, read_chain_config
from chain.deploy import setup_validators
from node.cli import ExitStatus, main
from node.receipt import Receipt, sign_receipt

ENV = {"BCAI_PASSPHRASE": "pw", "BCAI_INSECURE_FAST_KDF": "1", "HOME": "/nonexistent"}


def run(data: Path, *argv: str) -> tuple[ExitStatus, Any]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["-d", str(data), "--json", *argv], env=ENV, stdout=out, stderr=err)
    text = out.getvalue().strip()
    return status, (json.loads(text.splitlines()[-1]) if text else err.getvalue())


def test_chain_up_embedded_writes_config(tmp_path: Path) -> None:
    status, out = run(tmp_path, "chain", "up")
    assert status is ExitStatus.OK, out
    table = read_chain_config(tmp_path)
    assert table is not None and table["rpc"] == "embedded"
    assert table["contracts"]["TransferReceipts"] == out["transfer_receipts"]
    status, out = run(tmp_path, "chain", "status")
    assert status is ExitStatus.OK and "one process" in out["note"]


def test_amounts() -> None:
    from node.cli._chain_cmds import parse_amount

    assert parse_amount("0.1eth") == 10**17
    assert parse_amount("20 gwei") == 20 * 10**9
    assert parse_amount("123") == 123
    with pytest.raises(ValueError):
        parse_amount("0.5wei")


@pytest.fixture
def anvil_home(tmp_path: Path) -> Iterator[Path]:
    if anvil_binary() is None:
        pytest.skip("anvil binary not installed (npm ci)")
    status, out = run(tmp_path, "chain", "up", "--anvil", "--response-window", "600")
    assert status is ExitStatus.OK, out
    try:
        yield tmp_path
    finally:
        run(tmp_path, "chain", "down")


@pytest.mark.anvil
def test_cli_flow_on_anvil(anvil_home: Path, tmp_path: Path) -> None:
    home = anvil_home
    status, out = run(home, "chain", "status")
    assert status is ExitStatus.OK and out["up"] and all(out["deployed"].values())

    assert run(home, "init")[0] is ExitStatus.OK
    src = tmp_path / "blob.bin"
    src.write_bytes(bytes(range(256)) * 100)  # 25,600 bytes: 7 segments
    status, out = run(home, "add", str(src))
    assert status is ExitStatus.OK, out
    root = out["root"]

    status, out = run(home, "publish", root, "--dev-account", "1")
    assert status is ExitStatus.OK, out
    status, out = run(home, "publish", root, "--dev-account", "1")
    assert status is ExitStatus.OK and out["already_registered"]
    status, out = run(home, "host", "commit", root, "--stake", "0.1eth", "--dev-account", "1")
    assert status is ExitStatus.OK, out

    table = read_chain_config(home)
    assert table is not None
    backend = RpcChain(table["rpc"])
    deployment, _ = load_deployment(home)
    accounts = backend.dev_accounts()
    challenger = ChainClient(backend, deployment, accounts[2])
    challenger.challenge(accounts[1].address, bytes.fromhex(root[2:]))
    status, out = run(home, "prove", "--dev-account", "1")
    assert status is ExitStatus.OK and out["answered"] == []  # seed block not mined yet
    backend.mine(2)  # the seed block and one more: calls see the seed's hash
    status, out = run(home, "prove", "--dev-account", "1")
    assert status is ExitStatus.OK, out
    assert [a["passed"] for a in out["answered"]] == [True]

    # Receipts from a file, one replayed: the replay is reported, not sent.
    domain = challenger.receipt_domain
    now = backend.timestamp()
    lines = [
        sign_receipt(
            accounts[3],
            Receipt(
                bytes.fromhex(root[2:]), accounts[1].address, accounts[3].address, 4096, 1, n, now
            ),
            domain,
        ).to_json()
        for n in (0, 1, 1)
    ]
    rfile = tmp_path / "receipts.jsonl"
    rfile.write_text("\n".join(lines) + "\n")
    status, out = run(home, "receipts", "submit", str(rfile), "--dev-account", "1")
    assert status is ExitStatus.CHAIN_ERROR and out["accepted"] == 2
    assert [r["reason"] for r in out["rejected"]] == ["DuplicateNonce"]

    # Rewards: fund, two validators sign, post, claim, claim again (named revert).
    setup_validators(
        backend, accounts[0], deployment, [accounts[5].address, accounts[6].address], 2
    )
    alloc = tmp_path / "alloc.json"
    alloc.write_text(json.dumps({accounts[1].address: "600", accounts[4].address: "400"}))
    assert run(home, "rewards", "fund", "1", "--amount", "1000", "--dev-account", "0")[0] is (
        ExitStatus.OK
    )
    sigs = []
    for n in ("5", "6"):
        status, out = run(
            home, "rewards", "sign", "1", "--allocation", str(alloc), "--dev-account", n
        )
        assert status is ExitStatus.OK, out
        sigs += ["--sig", out["signature"]]
    status, out = run(
        home, "rewards", "post", "1", "--allocation", str(alloc), *sigs, "--dev-account", "0"
    )
    assert status is ExitStatus.OK, out
    status, out = run(
        home, "rewards", "claim", "1", "--allocation", str(alloc), "--dev-account", "1"
    )
    assert status is ExitStatus.OK and out["amount"] == "600"
    status, out = run(
        home, "rewards", "claim", "1", "--allocation", str(alloc), "--dev-account", "1"
    )
    assert status is ExitStatus.CHAIN_ERROR and out["revert"] == "AlreadyClaimed"
