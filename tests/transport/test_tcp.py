"""Socket tuning of peer connections (node.transport._tcp): the handshake round trip read from
TCP_INFO, the congestion control each policy leaves on real loopback sockets, both ends of a
real peer connection, and the config check."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from node.config import ConfigError, load_config, save_config
from node.transport import PeerConnection, open_peer_connection, serve_peers, set_congestion
from node.transport import _tcp as tcp

from .test_peer_tcp import local, make_ident

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "TCP_CONGESTION") or not hasattr(socket, "TCP_INFO"),
    reason="Linux TCP socket options",
)


def _available() -> set[str]:
    try:
        text = Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text()
    except OSError:
        return set()
    return set(text.split())


def _settable() -> set[str]:
    """What this process may set: any available module as root, else the allowed list."""
    if os.geteuid() == 0:
        return _available()
    try:
        text = Path("/proc/sys/net/ipv4/tcp_allowed_congestion_control").read_text()
    except OSError:
        return set()
    return set(text.split()) & _available()


def _system() -> str:
    return Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as ls:
        client = socket.create_connection(ls.getsockname())
        server, _ = ls.accept()
        try:
            yield client, server
        finally:
            client.close()
            server.close()


def test_the_handshake_round_trip_is_read_from_tcp_info(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    for s in pair:
        rtt = tcp.handshake_rtt_us(s)
        assert rtt is not None and 0 < rtt < tcp.NEAR_RTT_US  # loopback: microseconds
        # the field read is tcpi_rtt: rttvar follows it and rto (> rtt) comes first
        info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        rto, rtt2 = struct.unpack_from("=8xI", info)[0], struct.unpack_from("=68xI", info)[0]
        assert rtt2 == rtt and rto > rtt


def test_a_udp_socket_has_no_round_trip() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert tcp.handshake_rtt_us(s) is None
        assert tcp.congestion_control(s) is None
        assert tcp.tune_socket(s, "cubic") is None  # refused by the kernel: logged, kept


@pytest.mark.skipif("cubic" not in _settable(), reason="cubic not available here")
def test_auto_picks_cubic_for_a_near_peer(pair: tuple[socket.socket, socket.socket]) -> None:
    _client, server = pair
    assert tcp.tune_socket(server, "auto") == "cubic"
    assert tcp.congestion_control(server) == "cubic"
    assert server.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= tcp.BUFFER_BYTES


def test_system_keeps_the_system_choice(pair: tuple[socket.socket, socket.socket]) -> None:
    client, _ = pair
    assert tcp.tune_socket(client, "system") is None
    assert tcp.congestion_control(client) == _system()


def test_a_named_control_is_set_and_a_refused_one_keeps_the_system_choice(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    other = sorted(_settable() - {_system()})
    if other:
        assert tcp.tune_socket(client, other[0]) == other[0]
        assert tcp.congestion_control(client) == other[0]
    assert tcp.tune_socket(server, "nosuchcontrol") is None
    assert tcp.congestion_control(server) == _system()


class _FarSocket:
    """A socket whose kernel reports a 20 ms handshake round trip (a long path)."""

    def getsockopt(self, level: int, opt: int, size: int = 0) -> bytes:
        assert opt == socket.TCP_INFO
        return bytes(68) + struct.pack("=I", 20_000) + bytes(size - 72)


def test_auto_keeps_the_system_choice_on_a_long_path() -> None:
    assert tcp._choose(_FarSocket(), "auto") is None  # type: ignore[arg-type]
    assert tcp._choose(_FarSocket(), "cubic") == "cubic"  # type: ignore[arg-type]
    assert tcp._choose(_FarSocket(), "system") is None  # type: ignore[arg-type]


@pytest.mark.skipif("cubic" not in _settable(), reason="cubic not available here")
@pytest.mark.parametrize("policy", ["auto", "system"])
async def test_both_ends_of_a_peer_connection(policy: str) -> None:
    """The policy applies to the connecting and the accepting socket alike."""
    seen: list[str | None] = []
    server, client = make_ident(), make_ident()

    async def handler(conn: PeerConnection) -> None:
        seen.append(tcp.congestion_control(conn.stream.transport_stream.socket))  # type: ignore[attr-defined]
        await trio.sleep_forever()

    set_congestion(policy)
    try:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(serve_peers, handler, 0, local(server))
                port = listeners[0].socket.getsockname()[1]
                conn = await open_peer_connection("127.0.0.1", port, local(client))
                while not seen:
                    await trio.sleep(0.01)
                mine = tcp.congestion_control(conn.stream.transport_stream.socket)  # type: ignore[attr-defined]
                await conn.aclose()
                nursery.cancel_scope.cancel()
    finally:
        set_congestion("auto")
    want = "cubic" if policy == "auto" else _system()
    assert (mine, seen[0]) == (want, want)


def test_config_checks_the_policy(tmp_path: Path) -> None:
    cfg = load_config(tmp_path)
    assert cfg.network.congestion == "auto"
    for good in ("auto", "system", "cubic", "bbr"):
        cfg.network.congestion = good
        save_config(tmp_path, cfg)
        assert load_config(tmp_path).network.congestion == good
    for bad in ("Cubic", "", "x" * 16, "cu bic", 5):
        cfg.network.congestion = bad  # type: ignore[assignment]
        with pytest.raises(ConfigError, match="congestion must be"):
            save_config(tmp_path, cfg)
            load_config(tmp_path)
