"""One node, many peers (issue 11), over real sockets on 127.0.0.1: the config's watermarks are
what admission enforces (and 10,000+ is accepted), the open-file limit is raised, liveness is
one node-wide sweep (silent peers closed, quiet-but-alive ones kept) and an idle connection
costs one task.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import sys
from pathlib import Path

import pytest
import trio

from node.config import ConfigError, load_config
from node.transfer import Provider, default_receipt_domain
from node.transport import (
    AdmissionLimits,
    AdmissionPolicy,
    LocalPeer,
    PeerConnection,
    PeerDisconnected,
    TransportError,
    serve_peers,
)
from node.transport._connect import _tune
from node.transport._noise_stream import NoiseStream
from node.wire import ErrorCode

from ..transfer.helpers import make_identity, store_with
from .test_keepalive import serve_provider

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs 127.0.0.0/8 on lo")

CHUNK = 256 * 1024


def _write_config(data: Path, text: str) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "config.toml").write_text(text)


def test_config_watermarks_reach_admission_and_10000_is_allowed(tmp_path: Path) -> None:
    _write_config(tmp_path / "a", "[network]\nconnections_high = 20000\nconnections_low = 18000\n")
    lim = AdmissionLimits.from_config(load_config(tmp_path / "a").network)
    assert (lim.connections_high, lim.connections_low) == (20000, 18000)
    _write_config(tmp_path / "b", "[network]\nconnections_high = 100\nconnections_low = 200\n")
    with pytest.raises(ConfigError, match="connections_low must not exceed connections_high"):
        load_config(tmp_path / "b")
    _write_config(tmp_path / "c", '[network]\nupload_buffers = "8MiB"\nupload_queue = 64\n')
    net = load_config(tmp_path / "c").network
    assert (net.upload_buffers, net.upload_queue, net.upload_queue_per_peer) == (8 << 20, 64, 256)
    with pytest.raises(ConfigError, match="upload_buffers must be a positive integer"):
        _write_config(tmp_path / "e", "[network]\nupload_buffers = 0\n")
        load_config(tmp_path / "e")


async def _connect_from(ip: str, port: int, me: LocalPeer) -> PeerConnection:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    await sock.bind((ip, 0))
    await sock.connect(("127.0.0.1", port))
    tcp = trio.SocketStream(sock)
    _tune(tcp)
    stream = NoiseStream(tcp, initiator=True, static=me.static, identity_payload=me.payload)
    conn = PeerConnection(stream, capabilities=me.capabilities)
    await conn.start()
    return conn


async def test_watermarks_from_config_trim_to_low_and_fd_limit_is_raised(tmp_path: Path) -> None:
    """``connections_high``/``low`` from config.toml are what ``serve_peers`` enforces: 45
    peers from 3 IPs against high 40 / low 30: every admission past 40 trims down to 30, the
    trimmed get Goodbye(BUSY), nobody is refused. The serving process's open-file soft limit
    is raised to the hard one."""
    _write_config(tmp_path / "cfg", "[network]\nconnections_high = 40\nconnections_low = 30\n")
    limits = AdmissionLimits.from_config(load_config(tmp_path / "cfg").network)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low_soft = min(1024, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low_soft, hard))
    src, _root, _ = store_with(tmp_path / "src", CHUNK, chunk_size=CHUNK)
    policy = AdmissionPolicy(limits)
    conns: list[PeerConnection] = []
    try:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                me = LocalPeer.from_identity(make_identity())
                prov = Provider(src, me.address, receipt_domain=default_receipt_domain())
                listeners = await nursery.start(
                    lambda task_status: serve_peers(
                        prov.handle, 0, me, policy=policy, task_status=task_status
                    )
                )
                assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
                port = listeners[0].socket.getsockname()[1]
                for i in range(45):
                    peer = LocalPeer.from_identity(make_identity())
                    conns.append(await _connect_from(f"127.0.7.{1 + i % 3}", port, peer))
                    await trio.testing.wait_all_tasks_blocked()
                    assert policy.established <= limits.connections_high
                # 41st admitted -> trimmed to 30 (11 closed); then 31..40 fill up again, the
                # 45th is under the mark: 11 Goodbye(BUSY), 34 open, none refused
                assert policy.established == 34 and policy.refused == 0
                goodbyes = 0
                for c in conns:
                    with trio.move_on_after(0.2):
                        try:
                            await c.receive()
                        except PeerDisconnected as exc:
                            assert exc.code == ErrorCode.BUSY
                            goodbyes += 1
                assert goodbyes == 11
                assert not any(c.goodbye for c in conns[-4:])  # newcomers are never trimmed
                nursery.cancel_scope.cancel()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        src.close()


def _tasks() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())


async def test_idle_connections_cost_one_task_and_one_sweep_keeps_them_honest(
    tmp_path: Path,
) -> None:
    """20 idle peers add one task each on the node (no sender, swarm or keep-alive task);
    the node-wide sweep pings them (peers that answer stay past the idle timeout) and closes
    a peer that answers nothing once the idle timeout passes."""
    src, _root, _ = store_with(tmp_path / "src", CHUNK, chunk_size=CHUNK)
    policy = AdmissionPolicy()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await serve_provider(nursery, src, policy, idle_timeout=1.2, keepalive=0.3)
            await trio.testing.wait_all_tasks_blocked()
            before = _tasks()
            idle = [
                await _connect_from("127.0.8.1", port, LocalPeer.from_identity(make_identity()))
                for _ in range(20)
            ]
            await trio.testing.wait_all_tasks_blocked()
            per_conn = (_tasks() - before) / 20
            assert per_conn <= 1.5, per_conn  # was 6: accept, nursery tasks, sender, swarm...

            # 10 peers answer Pings (their receive loop runs), 10 never read a byte
            alive = idle[:10]
            sweeps_before = policy.sweeps

            async def answer(c: PeerConnection) -> None:
                with contextlib.suppress(TransportError):
                    await c.receive()  # answers the node's Pings; returns at its Goodbye

            for c in alive:
                nursery.start_soon(answer, c)
            with trio.fail_after(6):
                while policy.idle_closed < 10:
                    await trio.sleep(0.05)
            await trio.sleep(1.5)  # past another idle timeout: the answering ones stay
            assert policy.idle_closed == 10 and policy.established == 10
            assert policy.sweeps > sweeps_before + 4  # one sweep a tick, not one timer a peer
            nursery.cancel_scope.cancel()
    src.close()
