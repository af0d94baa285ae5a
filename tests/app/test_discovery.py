"""Discovery: ``[network] bootstrap``/``public_endpoint`` and ``find_providers`` over hostile
chain data (a fake port), then once against a real EVM (py-evm) with the HostDirectory."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from chain.errors import ChainUnavailable
from node.app._discovery import find_providers, parse_peer
from node.config import (
    Config,
    ConfigError,
    config_from_dict,
    load_config,
    parse_host_port,
    save_config,
)
from node.transfer import PeerAddr

A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
C = "0x" + "cc" * 20
D = "0x" + "dd" * 20
ROOT = bytes(range(32))


# -- config -------------------------------------------------------------------------------------


def test_config_keys_round_trip(tmp_path: Path) -> None:
    cfg = config_from_dict(
        {
            "network": {
                "bootstrap": [f"10.0.0.1:7420/{A}", f"[::1]:7421/{B}", f"seed.example.org:1/{C}"],
                "public_endpoint": "203.0.113.7:7420",
            }
        }
    )
    assert cfg.network.bootstrap[1] == f"[::1]:7421/{B}"
    assert cfg.network.public_endpoint == "203.0.113.7:7420"
    save_config(tmp_path, cfg)
    again = load_config(tmp_path)
    assert again.network.bootstrap == cfg.network.bootstrap
    assert again.network.public_endpoint == "203.0.113.7:7420"
    assert Config().network.bootstrap == [] and Config().network.public_endpoint is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("bootstrap", "10.0.0.1:7420/" + A),  # not a list
        ("bootstrap", ["10.0.0.1:7420"]),  # no address: the handshake could not pin it
        ("bootstrap", ["10.0.0.1:7420/0x1234"]),
        ("bootstrap", [f"10.0.0.1:0/{A}"]),
        ("bootstrap", [f"10.0.0.1:65536/{A}"]),
        ("bootstrap", [f"host name:1/{A}"]),
        ("bootstrap", [7420]),
        ("public_endpoint", "0.0.0.0"),
        ("public_endpoint", "example.org:http"),
        ("public_endpoint", 7420),
        ("public_endpoint", "[fe80::1:7420"),
        ("public_endpoint", "999.1.1.1:7420"),
        ("public_endpoint", "a" * 124 + ".com:1"),  # 130 bytes: over the chain's cap
    ],
)
def test_config_rejects(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        config_from_dict({"network": {key: value}})


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:7420", ("127.0.0.1", 7420)),
        ("[2001:db8::1]:1", ("2001:db8::1", 1)),
        ("node-1.example.org:65535", ("node-1.example.org", 65535)),
        ("localhost:8", ("localhost", 8)),
    ],
)
def test_parse_host_port(text: str, want: tuple[str, int]) -> None:
    assert parse_host_port(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":1",
        "h:",
        "h:01234567",
        "-bad.example:1",
        "bad-.example:1",
        "a..b:1",
        "h\n:1",
        "h:1\n",
        "h\u00e9:1",
        "1.2.3:1",
        "[::g]:1",
        "::1:7420",
        "x" * 64 + ".org:1",
        "h:1/" + A,
    ],
)
def test_parse_host_port_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_host_port(text)


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), st.integers(), st.none()))
def test_parse_host_port_fails_only_with_config_error(value: Any) -> None:
    try:
        host, port = parse_host_port(value)
    except ConfigError:
        return
    assert 1 <= port <= 65535 and host and host.isascii() and not any(c.isspace() for c in host)


# -- find_providers over a fake port -------------------------------------------------------------


class FakePort:
    """Only what discovery uses: ``providers(root)`` (recorded), or an error."""

    def __init__(self, entries: list[Any], error: Exception | None = None) -> None:
        self.entries = entries
        self.error = error
        self.asked: list[bytes] = []

    def providers(self, root: bytes) -> list[Any]:
        self.asked.append(root)
        if self.error is not None:
            raise self.error
        return list(self.entries)


def _find(port: Any, **kw: Any) -> list[PeerAddr]:
    return find_providers(port, ROOT, rng=random.Random(1), **kw)


def test_chain_then_learned_then_bootstrap() -> None:
    port = FakePort([(A, "10.0.0.1:7420")])
    found = _find(port, learned=[f"10.0.0.2:7420/{B}"], bootstrap=[f"10.0.0.3:7420/{C}"])
    assert port.asked == [ROOT]
    assert [str(p) for p in found] == [
        f"10.0.0.1:7420/{A}",
        f"10.0.0.2:7420/{B}",
        f"10.0.0.3:7420/{C}",
    ]


def test_no_chain_uses_the_configured_peers() -> None:
    found = _find(None, bootstrap=[f"10.0.0.3:7420/{C}"])
    assert found == [PeerAddr("10.0.0.3", 7420, C)]


def test_hostile_records_are_skipped_with_one_log_line() -> None:
    port = FakePort(
        [
            (A, "10.0.0.1:7420\nrm -rf /"),
            (B, "x" * 5000),
            (C, "\ufffd\ufffd:1"),
            ("0xnot-an-address", "10.0.0.9:1"),
            ("garbage",),
            (D, "10.0.0.4:7420"),
            (A, None),  # announced nothing: skipped, not malformed
        ]
    )
    with capture_logs() as logs:
        found = _find(port, bootstrap=["nonsense"], learned=[b"bytes"])
    assert found == [PeerAddr("10.0.0.4", 7420, D)]
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1, warnings
    assert warnings[0]["skipped"] == 7 and len(warnings[0]["examples"]) == 3
    assert all(len(x) < 200 for x in warnings[0]["examples"])  # hostile text is cut short


def test_dedupe_by_address_and_own_address_excluded() -> None:
    port = FakePort([(A, "10.0.0.1:7420"), (B, "10.0.0.2:7420")])
    found = _find(
        port,
        learned=[f"10.9.9.9:1/{A.upper().replace('0X', '0x')}", f"10.0.0.3:7420/{C}"],
        bootstrap=[f"10.0.0.3:7421/{C}", f"10.0.0.4:7420/{D}"],
        own_address=B.upper().replace("0X", "0x"),
    )
    assert [p.address for p in found] == [A, C, D]
    assert found[1] == PeerAddr("10.0.0.3", 7420, C)  # the first source wins


def test_capped_and_chain_order_shuffled() -> None:
    entries = [("0x" + f"{i:040x}", f"10.0.{i // 256}.{i % 256}:7420") for i in range(1, 65)]
    port = FakePort(entries)
    found = _find(port, bootstrap=[f"10.1.0.1:1/{A}"], limit=32)
    assert len(found) == 32
    assert A not in {p.address for p in found}  # the list was full before the fallbacks
    other = find_providers(port, ROOT, limit=32, rng=random.Random(2))
    assert [p.address for p in found] != [p.address for p in other]
    assert find_providers(port, ROOT, limit=0) == []
    # Every holder can be drawn: the first slots do not own the list.
    drawn = {p.address for seed in range(8) for p in _seeded(port, seed)}
    assert len(drawn) > 32


def _seeded(port: Any, seed: int) -> list[PeerAddr]:
    return find_providers(port, ROOT, limit=32, rng=random.Random(seed))


def test_chain_down_keeps_the_fallbacks() -> None:
    port = FakePort([], error=ChainUnavailable("connection refused"))
    with capture_logs() as logs:
        found = _find(port, bootstrap=[f"10.0.0.3:7420/{C}"])
    assert found == [PeerAddr("10.0.0.3", 7420, C)]
    assert any("unavailable" in e["event"] for e in logs)


def test_parse_peer_requires_the_address() -> None:
    assert parse_peer(f"[::1]:9/{A}") == PeerAddr("::1", 9, A)
    with pytest.raises(ConfigError):
        parse_peer("[::1]:9")


# -- against a real EVM ---------------------------------------------------------------------------


def test_find_providers_on_a_real_chain() -> None:
    from chain.backend import EmbeddedChain
    from chain.port import ClientPort
    from tests.chain.conftest import build_world, commit, make_content, publish

    world = build_world(EmbeddedChain())
    c = make_content(4 * 4096 * 2, seed=31)
    publish(world.client(0), c)
    honest, silent, liar, exited = (world.client(i) for i in (1, 2, 3, 4))
    for slot, host in enumerate((honest, silent, liar, exited)):
        commit(host, c, slot)
    honest.announce_endpoint("127.0.0.1:7420")
    liar.announce_endpoint("127.0.0.1:7420; DROP TABLE peers")
    exited.announce_endpoint("127.0.0.1:7999")
    exited.request_exit(c.root, 3)
    world.backend.time_travel(world.deployment.params.exit_delay + 1)
    port = ClientPort(world.client(5))
    with capture_logs() as logs:
        found = find_providers(port, c.root, bootstrap=[f"127.0.0.1:7000/{A}"])
    assert found == [PeerAddr("127.0.0.1", 7420, honest.address), PeerAddr("127.0.0.1", 7000, A)]
    assert [e["skipped"] for e in logs if e["log_level"] == "warning"] == [1]
    # As the honest host itself: only the others.
    assert find_providers(port, c.root, own_address=honest.address) == []


def test_discover_for_a_node(tmp_path: Path) -> None:
    """``discover(node, root)``: the node's port (or none configured), learned peers, bootstrap."""
    from types import SimpleNamespace

    from node.app._discovery import discover

    cfg = config_from_dict({"network": {"bootstrap": [f"10.0.0.3:7420/{C}"]}})
    port = FakePort([(A, "10.0.0.1:7420")])
    node = SimpleNamespace(
        data_dir=tmp_path, config=cfg, chain_port=port, learned_peers=[f"10.0.0.2:1/{B}"]
    )
    assert [p.address for p in discover(node, ROOT)] == [A, B, C]
    # No port on the node and no [chain] table: the configured peers only.
    bare = SimpleNamespace(data_dir=tmp_path, config=cfg)
    assert discover(bare, ROOT) == [PeerAddr("10.0.0.3", 7420, C)]
