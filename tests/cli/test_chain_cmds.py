"""``bcai host announce``, ``host commit`` (pins, announces), unfunded accounts, the embedded
chain, ``--allocation`` help: in-process ``main`` against a real anvil."""

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
from node.config import load_config, save_config

ENV = {"BCAI_PASSPHRASE": "pw", "BCAI_INSECURE_FAST_KDF": "1", "HOME": "/nonexistent"}


def run(data: Path, *argv: str, json_out: bool = True) -> tuple[Any, Any, str]:
    """(status, the last JSON line of stdout or stderr's text, stderr)."""
    from node.cli import main

    out, err = io.StringIO(), io.StringIO()
    flags = ["--json"] if json_out else []
    status = main(["-d", str(data), *flags, *argv], env=ENV, stdout=out, stderr=err)
    text = out.getvalue().strip()
    if json_out and text:
        return status, json.loads(text.splitlines()[-1]), err.getvalue()
    return status, text or err.getvalue(), err.getvalue()


def _set_public_endpoint(home: Path, endpoint: str) -> None:
    cfg = load_config(home)
    cfg.network.public_endpoint = endpoint
    save_config(home, cfg)


@pytest.fixture(scope="module")
def chain_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from node.cli import ExitStatus

    if anvil_binary() is None:
        pytest.skip("anvil binary not installed (npm ci)")
    home = tmp_path_factory.mktemp("net") / "a"
    assert run(home, "init")[0] is ExitStatus.OK
    status, out, _ = run(home, "chain", "up", "--anvil", "--port", "0", "--period-blocks", "50")
    assert status is ExitStatus.OK, out
    try:
        yield home
    finally:
        run(home, "chain", "down")


def _observer(home: Path) -> ChainClient:
    table = read_chain_config(home)
    assert table is not None
    backend = RpcChain(table["rpc"])
    deployment, _ = load_deployment(home)
    return ChainClient(backend, deployment, backend.dev_accounts()[7])


@pytest.mark.anvil
def test_announce_and_commit_pins_and_announces(chain_home: Path, tmp_path: Path) -> None:
    from node.cli import ExitStatus

    home = chain_home
    observer = _observer(home)
    status, out, _ = run(home, "host", "announce")
    assert status is ExitStatus.USAGE and "public_endpoint" in out["error"], out
    status, out, _ = run(home, "host", "announce", "not an endpoint")
    assert status is ExitStatus.USAGE, out

    _set_public_endpoint(home, "127.0.0.1:7420")
    src = tmp_path / "blob.bin"
    src.write_bytes(bytes(range(256)) * 120)
    status, out, _ = run(home, "add", str(src))  # not pinned: gc --unpinned would delete it
    assert status is ExitStatus.OK, out
    root = out["root"]
    assert run(home, "publish", root)[0] is ExitStatus.OK
    status, out, _ = run(home, "host", "commit", root, "--slot", "2", "--stake", "0.1eth")
    assert status is ExitStatus.OK, out
    node = observer.commitment_of(bytes.fromhex(root[2:]), 2).host
    assert out["pinned"] and out["announced"]["events"] == ["EndpointAnnounced"], out
    assert observer.endpoint_of(node) == "127.0.0.1:7420"
    assert observer.providers(root) == [(node, "127.0.0.1:7420")]

    # The record is there: no second transaction.
    status, out, _ = run(home, "host", "announce")
    assert status is ExitStatus.OK and out["changed"] is False, out
    status, out, _ = run(home, "host", "announce", "[::1]:7421")
    assert status is ExitStatus.OK and out["changed"] and out["tx"], out
    assert observer.providers(root) == [(node, "[::1]:7421")]

    # Staked content is pinned: gc --unpinned keeps it.
    status, out, _ = run(home, "gc", "--unpinned")
    assert status is ExitStatus.OK, out
    status, out, _ = run(home, "verify", root)
    assert status is ExitStatus.OK, out

    status, out, _ = run(home, "host", "announce", "--clear")
    assert status is ExitStatus.OK and out["endpoint"] is None, out
    assert observer.endpoint_of(node) is None
    assert observer.providers(root) == [(node, None)]


@pytest.mark.anvil
def test_unfunded_account_gets_one_typed_line(chain_home: Path, tmp_path: Path) -> None:
    from node.cli import ExitStatus

    poor = tmp_path / "poor"
    status, out, _ = run(poor, "init")
    assert status is ExitStatus.OK, out
    address = out["address"]
    status, out, _ = run(poor, "chain", "attach", str(chain_home), "--no-fund")
    assert status is ExitStatus.OK and out["funded"] is None, out
    src = tmp_path / "x.bin"
    src.write_bytes(b"\x07" * 20_000)
    status, out, _ = run(poor, "add", str(src))
    assert status is ExitStatus.OK, out
    root = out["root"]
    status, out, _ = run(poor, "publish", root)
    assert status is ExitStatus.CHAIN_ERROR, out
    assert out["error_type"] == "InsufficientFunds" and out["address"] == address
    assert out["balance"] == "0" and int(out["needed"]) > 0
    # Without --json: exactly one line on stderr, naming the account and its balance.
    status, _, err = run(poor, "host", "announce", "127.0.0.1:1", json_out=False)
    assert status == ExitStatus.CHAIN_ERROR == 6
    assert len(err.strip().splitlines()) == 1 and address in err and "has 0 ETH" in err, err


def test_embedded_chain_refuses_announce(tmp_path: Path) -> None:
    from node.cli import ExitStatus

    status, out, _ = run(tmp_path, "chain", "up")
    assert status is ExitStatus.OK, out
    status, out, _ = run(tmp_path, "host", "announce", "127.0.0.1:7420", "--dev-account", "1")
    assert status is ExitStatus.USAGE and "throwaway" in out["error"], out


def test_allocation_help_names_a_file() -> None:
    import argparse

    from node.cli._main import build_parser

    def sub(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) and name in action.choices:
                return action.choices[name]
        raise AssertionError(f"no subcommand {name}")

    rewards = sub(build_parser({}), "rewards")
    for name in ("sign", "post", "claim"):
        action = next(a for a in sub(rewards, name)._actions if a.dest == "allocation")
        assert action.metavar == "FILE" and "path of a JSON file" in str(action.help)
