"""The chain commands' errors: one mapping (``node.app.classify``) for the command run in-process
and for the same command answered by a running node (the API renders ``failure_of(exc)``, the
client re-raises it as ``NodeError``), so both print the same JSON line and exit code.

A chain that does not answer is ``retryable: true`` on both paths (docs/operations.md: re-running
the same command can succeed once the chain is back); it was ``false`` in-process before.
"""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from web3.exceptions import Web3RPCError

from chain.backend import RpcChain
from chain.errors import (
    ChainRevert,
    ChainUnavailable,
    ChainUsageError,
    DeploymentMissing,
    InsufficientFunds,
    ReorgTooDeep,
)
from node.app import Failure, NodeError
from node.app._api import failure_of
from node.cli import ExitStatus, main
from node.cli import _chain_cmds as chain_cmds
from node.receipt import ReceiptError
from node.store import CorruptSlot, SlotMismatch, SlotMissing

ENV = {"BCAI_PASSPHRASE": "pw", "BCAI_INSECURE_FAST_KDF": "1", "HOME": "/nonexistent"}
ADDRESS = "0x" + "ab" * 20
VERIFY = ExitStatus.VERIFY_FAILED


def run(data: Path, *argv: str) -> tuple[int, dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["-d", str(data), "--json", *argv], env=ENV, stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, (out.getvalue(), err.getvalue())  # one line, whatever the error
    return int(status), json.loads(lines[0])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("chain-errors") / "n"
    assert run(data, "init")[0] == ExitStatus.OK
    return data


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when we return: nothing listens


def _unavailable() -> ChainUnavailable:
    """A real one: an RPC endpoint nobody listens on."""
    try:
        RpcChain(f"http://127.0.0.1:{_closed_port()}").dev_accounts()
    except ChainUnavailable as exc:
        return exc
    raise AssertionError("a closed port answered")


CASES: list[tuple[str, BaseException, ExitStatus, bool]] = [
    ("unavailable", _unavailable(), ExitStatus.CHAIN_ERROR, True),
    ("revert", ChainRevert("NotRegistered", {"root": b"\x01" * 32}), ExitStatus.CHAIN_ERROR, False),
    ("funds", InsufficientFunds(ADDRESS, 0, 10**15), ExitStatus.CHAIN_ERROR, False),
    ("usage", ChainUsageError("no dev account 12 on this chain"), ExitStatus.USAGE, False),
    ("deployment", DeploymentMissing("no deployment here"), ExitStatus.USAGE, False),
    ("other chain error", ReorgTooDeep("reorg below 64 blocks"), ExitStatus.CHAIN_ERROR, False),
    ("rpc refusal", Web3RPCError("insufficient funds for gas"), ExitStatus.CHAIN_ERROR, False),
    ("receipt", ReceiptError("receipt signed for another chain"), ExitStatus.USAGE, False),
    ("corrupt slot", CorruptSlot("slot 3 is damaged", root=b"\x02" * 32, slot=3), VERIFY, False),
    ("slot mismatch", SlotMismatch("that content is not this root"), ExitStatus.USAGE, False),
    ("missing slot", SlotMissing("slot 3 is not stored"), ExitStatus.NOT_FOUND, False),
]


@pytest.mark.parametrize(
    ("exc", "status", "retryable"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_in_process_and_through_a_node_print_the_same_error(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    exc: BaseException,
    status: ExitStatus,
    retryable: bool,
) -> None:
    def in_process(ctx: object, args: object) -> ExitStatus:
        raise exc

    monkeypatch.setattr(chain_cmds, "cmd_chain_status", in_process)
    code, local = run(home, "chain", "status")

    # What a running node's API answers for the same error, and what its client makes of it.
    answer = json.loads(json.dumps(failure_of(exc, home).to_json(), default=str))

    def through_node(ctx: object, args: object) -> ExitStatus:
        raise NodeError(Failure.from_json(answer))

    monkeypatch.setattr(chain_cmds, "cmd_chain_status", through_node)
    code2, remote = run(home, "chain", "status")

    assert code == code2 == status
    assert local == remote == answer
    assert local["retryable"] is retryable and local["status"] == status.name.lower()
    assert "\n" not in local["error"] and local["error"]


def test_details_survive_both_paths(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ctx: object, args: object) -> ExitStatus:
        raise InsufficientFunds(ADDRESS, 5, 10**15)

    monkeypatch.setattr(chain_cmds, "cmd_chain_status", boom)
    code, out = run(home, "chain", "status")
    assert code == ExitStatus.CHAIN_ERROR == 6
    assert out["error_type"] == "InsufficientFunds" and out["address"] == ADDRESS
    assert out["balance"] == "5" and out["needed"] == str(10**15)


def test_a_bad_argument_value_is_a_usage_error(home: Path) -> None:
    code, out = run(home, "chain", "fund", "--amount", "lots", "--rpc", "http://127.0.0.1:9")
    assert code == ExitStatus.USAGE and "not an amount" in out["error"], out


def test_a_chain_that_does_not_answer_is_retryable_from_the_command_line(home: Path) -> None:
    """No monkeypatching: `chain fund` against an RPC port nobody listens on."""
    code, out = run(home, "chain", "fund", "--rpc", f"http://127.0.0.1:{_closed_port()}")
    assert code == ExitStatus.CHAIN_ERROR and out["status"] == "chain_error", out
    assert out["retryable"] is True and "did not answer" in out["error"]
