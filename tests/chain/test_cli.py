"""``bcai chain|publish|host|prove|escrow|receipts|rewards`` in-process, against a real anvil."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from chain.anvil import anvil_binary
from chain.backend import RpcChain
from chain.client import ChainClient
from chain.config import load_deployment, read_chain_config
from chain.merkle import AllocationTree
from node.receipt import Receipt, payment_for, sign_receipt

ENV = {"BCAI_PASSPHRASE": "pw", "BCAI_INSECURE_FAST_KDF": "1", "HOME": "/nonexistent"}


def run(data: Path, *argv: str) -> tuple[Any, Any]:
    from node.cli import main

    out, err = io.StringIO(), io.StringIO()
    status = main(["-d", str(data), "--json", *argv], env=ENV, stdout=out, stderr=err)
    text = out.getvalue().strip()
    return status, (json.loads(text.splitlines()[-1]) if text else err.getvalue())


def test_embedded_chain_is_called_throwaway(tmp_path: Path) -> None:
    from node.cli import ExitStatus

    status, out = run(tmp_path, "chain", "up")
    assert status is ExitStatus.OK, out
    assert "throwaway" in out["warning"]
    table = read_chain_config(tmp_path)
    assert table is not None and table["rpc"] == "embedded"
    assert table["contracts"]["TransferReceipts"] == out["transfer_receipts"]
    status, out = run(tmp_path, "chain", "status")
    assert (
        status is ExitStatus.OK and "one process" in out["note"] and "throwaway" in out["warning"]
    )
    # A command that would record something refuses instead of printing a hollow success.
    for argv in (
        ("publish", "0x" + "11" * 32, "--dev-account", "1"),
        ("host", "status", "--dev-account", "1"),
        ("escrow", "deposit", "1eth", "--dev-account", "1"),
        ("chain", "fund"),
    ):
        status, out = run(tmp_path, *argv)
        assert status is ExitStatus.USAGE and "throwaway" in out["error"], argv


def test_amounts() -> None:
    from node.cli._chain_cmds import parse_amount

    assert parse_amount("0.1eth") == 10**17
    assert parse_amount("20 gwei") == 20 * 10**9
    assert parse_amount("123") == 123
    with pytest.raises(ValueError):
        parse_amount("0.5wei")


@pytest.fixture
def anvil_home(tmp_path: Path) -> Iterator[Path]:
    from node.cli import ExitStatus

    if anvil_binary() is None:
        pytest.skip("anvil binary not installed (npm ci)")
    home = tmp_path / "home"
    assert run(home, "init")[0] is ExitStatus.OK
    status, out = run(home, "chain", "up", "--anvil", "--port", "0", "--period-blocks", "50")
    assert status is ExitStatus.OK, out
    try:
        yield home
    finally:
        run(home, "chain", "down")


def _wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out")


@pytest.mark.anvil
def test_cli_flow_on_anvil(anvil_home: Path, tmp_path: Path) -> None:
    from node.cli import ExitStatus

    home = anvil_home
    table = read_chain_config(home)
    assert table is not None and table["block_time"] == 1
    status, out = run(home, "chain", "status")
    assert status is ExitStatus.OK and out["up"] and all(out["deployed"].values())
    assert int(out["balance"]) >= 100 * 10**18  # chain up funded the node's own account
    node = out["account"]
    backend = RpcChain(table["rpc"])
    deployment, _ = load_deployment(home)
    accounts = backend.dev_accounts()
    observer = ChainClient(backend, deployment, accounts[5])
    assert observer.validators() == [node] and observer.quorum() == 1

    # Blocks come without transactions: seed blocks and periods advance on their own.
    first = backend.block_number()
    _wait_for(lambda: backend.block_number() >= first + 2)

    src = tmp_path / "blob.bin"
    src.write_bytes(bytes(range(256)) * 100)  # 25,600 bytes: 7 segments, 2 rows with K = 4
    status, out = run(home, "add", str(src))
    assert status is ExitStatus.OK, out
    root = out["root"]
    raw_root = bytes.fromhex(root[2:])

    status, out = run(home, "publish", root)  # as the node, with the funds chain up gave it
    assert status is ExitStatus.OK, out
    assert (out["data_shards"], out["slots"], out["rows"]) == (4, 8, 2)
    status, out = run(home, "publish", root)
    assert status is ExitStatus.OK and out["already_registered"]
    status, out = run(home, "publish", root, "--data-shards", "2")
    assert status is ExitStatus.CHAIN_ERROR and out["error_type"] == "RegistrationMismatch"

    status, out = run(home, "host", "commit", root, "--slot", "3", "--stake", "0.1eth")
    assert status is ExitStatus.OK, out
    assert observer.commitment_of(raw_root, 3).host == node
    assert (home / "slots").is_dir()

    # A challenge from someone else: answered from the slot store once the seed is drawn.
    ChainClient(backend, deployment, accounts[2]).challenge(raw_root, 3)
    _wait_for(lambda: run(home, "host", "status")[1]["open_challenges"])
    _wait_for(lambda: observer.open_challenges_for(node))
    status, out = run(home, "prove")
    assert status is ExitStatus.OK, out
    assert [a["passed"] for a in out["answered"]] == [True]
    status, out = run(home, "host", "status")
    assert status is ExitStatus.OK, out
    [c] = out["commitments"]
    assert (c["root"], c["slot"], c["stake"]) == (root, 3, str(10**17))
    assert c["last_proven_at"] > 0 and out["open_challenges"] == []

    # Escrow and paid receipts from a file, one nonce twice: reported, not sent twice.
    status, out = run(home, "escrow", "deposit", "0.01eth", "--dev-account", "3")
    assert status is ExitStatus.OK and out["balance"] == str(10**16), out
    domain = observer.receipt_domain
    now = backend.timestamp()
    pay = payment_for(4096, deployment.params.min_price_per_gib)
    lines = [
        sign_receipt(
            accounts[3],
            Receipt(raw_root, node, accounts[3].address, 4096, 1, pay, n, now - 1),
            domain,
        ).to_json()
        for n in (0, 1, 1)
    ]
    rfile = tmp_path / "receipts.jsonl"
    rfile.write_text("\n".join(lines) + "\n")
    status, out = run(home, "receipts", "submit", str(rfile))
    assert status is ExitStatus.CHAIN_ERROR and out["accepted"] == 2, out
    assert [r["reason"] for r in out["rejected"]] == ["DuplicateNonce"]
    status, out = run(home, "escrow", "status", "--dev-account", "3")
    assert status is ExitStatus.OK and int(out["balance"]) == 10**16 - 2 * pay
    status, out = run(home, "escrow", "status")
    fee = pay * deployment.params.receipt_fee_bps // 10_000
    assert int(out["earnings"]) == 2 * (pay - fee)
    status, out = run(home, "escrow", "withdraw", "--earnings")
    assert status is ExitStatus.OK, out

    # Rewards: the node is the only validator (quorum 1); the claim is capped by its fees.
    epoch = observer.current_epoch()
    cap = observer.fee_cap(node, epoch)
    assert cap == 2 * fee * deployment.params.rebate_bps // 10_000
    alloc = tmp_path / "alloc.json"
    alloc.write_text(json.dumps({node: str(cap)}))
    status, out = run(home, "rewards", "fund", str(epoch), "--amount", str(cap))
    assert status is ExitStatus.OK, out
    status, out = run(home, "rewards", "sign", str(epoch), "--allocation", str(alloc))
    assert status is ExitStatus.OK, out
    sig = out["signature"]
    status, out = run(home, "rewards", "post", str(epoch), "--allocation", str(alloc), "--sig", sig)
    assert status is ExitStatus.OK, out
    status, out = run(home, "rewards", "claim", str(epoch), "--allocation", str(alloc))
    assert status is ExitStatus.OK and out["amount"] == str(cap), out
    status, out = run(home, "rewards", "claim", str(epoch), "--allocation", str(alloc))
    assert status is ExitStatus.CHAIN_ERROR and out["revert"] == "AlreadyClaimed"
    assert AllocationTree({node: cap}).total == cap

    # A second node attaches: it gets the chain and dev funds, and can publish at once.
    other = tmp_path / "other"
    assert run(other, "init")[0] is ExitStatus.OK
    status, out = run(other, "chain", "attach", str(home))
    assert status is ExitStatus.OK and out["funded"]["sent"] != "0", out
    status, out = run(other, "chain", "fund", "--amount", "150eth")
    assert status is ExitStatus.OK and int(out["balance"]) == 150 * 10**18, out
    status, out = run(other, "host", "status")
    assert status is ExitStatus.OK and out["commitments"] == [], out


@pytest.mark.anvil
def test_chain_up_keeps_its_port(anvil_home: Path) -> None:
    """Restarting `chain up --anvil` reuses the configured port: attached nodes keep working."""
    from node.cli import ExitStatus

    table = read_chain_config(anvil_home)
    assert table is not None
    port = urlparse(table["rpc"]).port
    status, out = run(anvil_home, "chain", "up", "--anvil")
    assert status is ExitStatus.USAGE and "chain down" in out["error"]  # no orphaned anvil
    run(anvil_home, "chain", "down")
    _wait_for(lambda: not RpcChain(table["rpc"], timeout=1).is_up(), timeout=10)
    status, out = run(anvil_home, "chain", "up", "--anvil")
    assert status is ExitStatus.OK, out
    assert urlparse(out["rpc"]).port == port
    # The saved state came back: the same contracts, no redeploy, validators as they were.
    assert out["restored"] and out["validators_from"] == "restored"
    assert out["data_availability"] == table["contracts"]["DataAvailability"]
    assert out["validators"] == [out["funded"][0]["address"]] and out["quorum"] == 1
    # --reset: a fresh chain (new deployment) on the same port; --validator sets who signs.
    run(anvil_home, "chain", "down")
    _wait_for(lambda: not RpcChain(table["rpc"], timeout=1).is_up(), timeout=10)
    v = ["0x" + "11" * 20, "0x" + "22" * 20]
    status, out = run(
        anvil_home, "chain", "up", "--anvil", "--reset", "--validator", v[0], "--validator", v[1]
    )
    assert status is ExitStatus.OK and not out["restored"], out
    assert urlparse(out["rpc"]).port == port
    assert out["validators_from"] == "given" and out["quorum"] == 2
    assert [a.lower() for a in out["validators"]] == v
