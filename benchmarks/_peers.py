"""Load-client worker for ``benchmarks/load.py``: many protocol peers in one trio process.

Run as ``python -m benchmarks._peers``; it speaks JSON lines on stdin/stdout:

1. stdin, first line, the setup: ``{"host", "port", "server", "peers": n, "first": g0,
   "ip_count": m, "idle": bool, "concurrency": c, "retries": r}``. Peer ``g`` (global index
   ``g0 .. g0+n-1``) gets its own identity (eth account + Noise key) and connects from the
   loopback address ``127.1.x.y`` number ``g % m``, so the node's per-IP caps see ``m`` IPs,
   as from real peers. Each connection is confirmed admitted by a Ping answered with a Pong
   (a refused one gets ``Error(BUSY)`` + ``Goodbye(BUSY)`` instead). Refused attempts are
   retried ``r`` times (after ``retry_after_ms`` for BUSY, ~0.5 s otherwise) and each is
   counted by reason. Reply: ``{"event": "connected", "connected", "refused": {reason: n},
   "setup_s", "identities_s", "handshakes_s"}`` (making the identities, then connecting).
2. then commands, one per line, each answered by one ``{"event": "result", ...}`` line:

   - ``{"cmd": "run", "mode": "closed"|"open", "root", "nchunks", "chunk_size", "k",
     "rate_per_peer", "start_at", "warmup", "duration", "max_outstanding"}``: chunk requests
     (one index per Request) from every peer of this process (``only_last``: its last peer
     only). ``closed``: each peer keeps ``k`` requests in flight. ``open``: each peer's
     requests arrive as a Poisson process of ``rate_per_peer`` per second; an arrival finding
     ``max_outstanding`` in flight waits in a client-side backlog, and its latency counts from
     its arrival (no coordinated omission). Latency = Request written -> last byte of that
     chunk. Only chunks completed in ``[start_at + warmup, start_at + warmup + duration]``
     (wall clock, shared by all workers) count. After the window, in-flight requests are
     drained (then cancelled) so the next phase starts from an empty queue.
   - ``{"cmd": "control", "kind": "ping"|"want"|"mixed", "peers": p, "window": w, "root",
     "start_at", "warmup", "duration"}``: the first ``p`` peers keep ``w`` control requests
     each in flight (Ping -> Pong, Want -> Manifest + Price + HaveAll), refilled in batches.
   - ``{"cmd": "count"}``: how many connections are still open, and why the others ended.
   - ``{"cmd": "quit"}``: Goodbye to everyone, exit.

Peers are built from the project's own client pieces (``node.transport.NoiseStream`` and
``PeerConnection``, ``node.wire`` messages); the one addition is a hook that sees Pongs, which
``PeerConnection.receive`` answers and drops by itself.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import gc
import itertools
import json
import os
import random
import resource
import secrets
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from node.identity import Identity
from node.noise import KeyPair
from node.transport import (
    HandshakeTimeout,
    LocalPeer,
    NoiseStream,
    PeerConnection,
    PeerDisconnected,
    TransportError,
)
from node.wire import (
    Cancel,
    Capabilities,
    ChunkData,
    ErrorCode,
    ErrorMsg,
    HaveAll,
    Message,
    NotFound,
    Ping,
    Pong,
    RemoteProtocolError,
    Request,
    Want,
)

#: A load peer receives only (no PROVIDER, RECEIPTS or SWARM), like ``bcai get`` without a box.
CLIENT_CAPS = Capabilities(flags=0)


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE to the hard limit (one socket per peer); returns the new soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def source_ip(g: int, ip_count: int, prefix: str = "127.1") -> str:
    """Loopback source address number ``g % ip_count``: 127.1.0.1, 127.1.0.2, ..."""
    n = g % ip_count
    return f"{prefix}.{n // 250}.{n % 250 + 1}"


def new_identity() -> LocalPeer:
    from eth_account import Account

    account = Account.from_key(secrets.token_bytes(32))
    kp = KeyPair.generate()
    ident = Identity(
        account=account, address=account.address, noise_private=kp.private, noise_public=kp.public
    )
    return LocalPeer.from_identity(ident, CLIENT_CAPS)


class ProbeConnection(PeerConnection):
    """A ``PeerConnection`` that reports each Pong (``receive`` swallows them) to ``on_pong``."""

    on_pong: Callable[[int], None] | None = None

    def _buffered_message(self) -> Message | None:
        msg = super()._buffered_message()
        if type(msg) is Pong and self.on_pong is not None:
            self.on_pong(msg.nonce)
        return msg


async def open_probe(
    host: str,
    port: int,
    me: LocalPeer,
    server: str,
    local_ip: str | None,
    *,
    tune: bool,
    idle_timeout: float,
) -> ProbeConnection:
    """``node.transport.open_peer_connection`` with a source address and a Pong hook."""
    tcp = await trio.open_tcp_stream(host, port, local_address=local_ip)
    if tune:  # as open_peer_connection does: a 1 MiB chunk in few wake-ups
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                tcp.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
    stream = NoiseStream(
        tcp,
        initiator=True,
        static=me.static,
        identity_payload=me.payload,
        expected_address=server,
        handshake_timeout=15.0,
    )
    conn = ProbeConnection(stream, capabilities=me.capabilities, idle_timeout=idle_timeout)
    try:
        await conn.start()
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
        raise
    return conn


def code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


def classify(exc: BaseException) -> str:
    """A short, stable reason for a failed or ended connection."""
    if isinstance(exc, OSError) and not isinstance(exc, TransportError):
        return "connect:" + errno.errorcode.get(exc.errno or 0, str(exc.errno))
    if isinstance(exc, trio.TooSlowError):
        return "timeout"
    if isinstance(exc, HandshakeTimeout):
        return "handshake-timeout"
    if isinstance(exc, PeerDisconnected):
        if exc.code == int(ErrorCode.BUSY):
            return "trimmed" if "trimmed" in str(exc) else "goodbye-busy"
        return f"goodbye:{code_name(exc.code)}" if exc.code else "closed"
    if isinstance(exc, TransportError):
        return type(exc).__name__
    return type(exc).__name__


@dataclass
class Phase:
    mode: str
    root: bytes
    nchunks: int
    k: int
    rate: float  #: per peer, open mode
    max_outstanding: int
    t0: float
    w_start: float
    w_end: float
    nursery: trio.Nursery
    issuing: bool = True
    latencies: list[float] = field(default_factory=list)
    refusals: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)


class Peer:
    """One connected peer: a reader task for its lifetime, plus whatever phase runs."""

    def __init__(self, g: int, conn: ProbeConnection) -> None:
        self.g = g
        self.conn = conn
        self.admitted = trio.Event()
        self.refusal: str | None = None
        self.end: str | None = None
        self.phase: Phase | None = None
        self.pending: dict[int, float] = {}  #: chunk index -> when its latency started
        self.by_req: dict[int, int] = {}  #: request id -> index
        self.backlog: collections.deque[float] = collections.deque()
        self.req_ids = itertools.count(1)
        self.next_index = 0
        self.window_bytes = 0
        self.window_chunks = 0
        # control
        self.nonces = itertools.count(2)
        self.pings: dict[int, float] = {}
        self.wants: collections.deque[float] = collections.deque()
        self.control_rtts: list[float] | None = None
        self.control_window: tuple[float, float] = (0.0, 0.0)
        self.control_due = 0
        self.control_wakeup = trio.Event()
        conn.on_pong = self._pong

    @property
    def alive(self) -> bool:
        return self.end is None and self.refusal is None

    # -- receiving -------------------------------------------------------------------------

    def _pong(self, nonce: int) -> None:
        if nonce == 1:
            self.admitted.set()
            return
        sent = self.pings.pop(nonce, None)
        if sent is not None:
            self._control_answer(sent)

    def _control_answer(self, sent: float) -> None:
        now = trio.current_time()
        if (
            self.control_rtts is not None
            and self.control_window[0] <= now <= self.control_window[1]
        ):
            self.control_rtts.append(now - sent)
        self.control_due += 1
        self.control_wakeup.set()

    async def reader(self) -> None:
        conn = self.conn
        try:
            await conn.send(Ping(1))  # answered by Pong only once the node admitted us
            while True:
                try:
                    msg = await conn.receive()
                except RemoteProtocolError as exc:  # recoverable: the node sent something odd
                    if self.phase is not None:
                        self.phase.errors[f"protocol:{code_name(exc.code)}"] += 1
                    continue
                kind = type(msg)
                if kind is ChunkData:
                    assert isinstance(msg, ChunkData)
                    if msg.offset + len(msg.data) == msg.total_len:
                        await self._chunk_done(msg.index, msg.total_len)
                elif kind is ErrorMsg:
                    assert isinstance(msg, ErrorMsg)
                    await self._error(msg)
                elif kind is HaveAll:
                    if self.wants:
                        self._control_answer(self.wants.popleft())
                elif kind is NotFound and self.phase is not None:
                    self.phase.errors["not-found"] += 1
        except (TransportError, OSError, trio.BrokenResourceError) as exc:
            if not self.admitted.is_set() and self.refusal is None:
                self.refusal = classify(exc)
            elif self.refusal is None:
                self.end = classify(exc)
        finally:
            self.admitted.set()  # wake the confirmer either way

    async def _chunk_done(self, index: int, nbytes: int) -> None:
        started = self.pending.pop(index, None)
        ph = self.phase
        if started is None or ph is None:
            return  # a piece of a cancelled request
        now = trio.current_time()
        if ph.w_start <= now <= ph.w_end:
            ph.latencies.append(now - started)
            self.window_bytes += nbytes
            self.window_chunks += 1
        if not ph.issuing:
            return
        if ph.mode == "closed":
            await self.issue(now)
        elif self.backlog:
            await self.issue(self.backlog.popleft())

    async def _error(self, msg: ErrorMsg) -> None:
        if not self.admitted.is_set():
            # Error(BUSY) before our Pong: refused after the handshake (per-IP/identity cap)
            self.refusal = f"busy: {msg.message}" if msg.code == ErrorCode.BUSY else msg.message
            return
        ph = self.phase
        index = self.by_req.pop(msg.request_id, None) if msg.request_id else None
        started = self.pending.pop(index, None) if index is not None else None
        if ph is None:
            return
        name = code_name(msg.code)
        if msg.code in (ErrorCode.BUSY, ErrorCode.RATE_LIMITED) and started is not None:
            ph.refusals[f"request:{name}"] += 1
            if ph.issuing:  # retried after the delay it asked for; latency keeps counting
                ph.nursery.start_soon(self._retry, msg.retry_after_ms / 1000, started)
        else:
            ph.errors[f"error:{name}"] += 1

    async def _retry(self, delay: float, started: float) -> None:
        await trio.sleep(delay * (0.5 + random.random()))
        ph = self.phase
        if ph is not None and ph.issuing and self.alive:
            if len(self.pending) < ph.max_outstanding:
                await self.issue(started)
            else:
                self.backlog.appendleft(started)

    # -- requesting ------------------------------------------------------------------------

    async def issue(self, started: float) -> None:
        ph = self.phase
        if ph is None or not self.alive:
            return
        n = ph.nchunks
        # modulo this phase's content: the cursor carries over from a phase whose content had
        # more chunks (256 KiB, 256 chunks) into one with fewer (1 MiB, 64): an index past the
        # end was refused (OUT_OF_RANGE) and, in a closed loop, that peer never asked again
        index = self.next_index % n
        while index in self.pending:
            index = (index + 1) % n
        self.next_index = (index + 1) % n
        rid = next(self.req_ids)
        self.pending[index] = started
        self.by_req[rid] = index
        if len(self.by_req) > 4 * ph.max_outstanding:  # ids of chunks already served
            live = set(self.pending)
            self.by_req = {r: i for r, i in self.by_req.items() if i in live}
        try:
            # shielded: the phase's end cancels the arrival tasks, and a send cut half-way
            # would break the Noise stream (and leave this index pending for ever)
            with trio.CancelScope(shield=True):
                await self.conn.send(Request(ph.root, rid, (index,)))
        except (TransportError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.end = self.end or classify(exc)

    async def arrivals(self, ph: Phase) -> None:
        """Open loop: Poisson arrivals at ``ph.rate`` per second from ``ph.t0``."""
        t = ph.t0 + random.expovariate(ph.rate)
        while self.alive and ph.issuing:
            await trio.sleep_until(t)
            if len(self.pending) < ph.max_outstanding:
                await self.issue(t)
            else:
                self.backlog.append(t)
            t += random.expovariate(ph.rate)

    async def control(self, kind: str, window: int, root: bytes, until: float) -> None:
        """Keep ``window`` control requests in flight until ``until``, refilled in batches."""
        self.control_due = window
        flip = itertools.count()
        while self.alive and trio.current_time() < until:
            if self.control_due < max(1, window // 2):
                self.control_wakeup = trio.Event()
                with trio.move_on_at(until):
                    await self.control_wakeup.wait()
                continue
            batch: list[Message] = []
            now = trio.current_time()
            for _ in range(self.control_due):
                use_ping = kind == "ping" or (kind == "mixed" and next(flip) % 2 == 0)
                if use_ping:
                    nonce = next(self.nonces)
                    self.pings[nonce] = now
                    batch.append(Ping(nonce))
                else:
                    self.wants.append(now)
                    batch.append(Want(root))
            self.control_due = 0
            try:
                await self.conn.send(*batch)
            except (TransportError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.end = self.end or classify(exc)
                return


# -- the worker ------------------------------------------------------------------------------


class Worker:
    def __init__(self, setup: dict[str, Any]) -> None:
        self.setup = setup
        self.peers: list[Peer] = []
        self.refused: collections.Counter[str] = collections.Counter()
        self.attempts = 0

    async def connect_all(self, nursery: trio.Nursery) -> dict[str, Any]:
        s = self.setup
        t0 = time.monotonic()
        first, count = int(s["first"]), int(s["peers"])
        idle = bool(s.get("idle"))
        # identities first (a few ms each: key generation + the signed identity payload)
        idents = [new_identity() for _ in range(count)]
        t_ident = time.monotonic() - t0
        limiter = trio.CapacityLimiter(int(s.get("concurrency", 16)))
        retries = int(s.get("retries", 3))

        async def one(i: int) -> None:
            g = first + i
            for attempt in range(retries + 1):
                delay = 0.5
                async with limiter:
                    self.attempts += 1
                    try:
                        with trio.fail_after(30):
                            conn = await open_probe(
                                s["host"],
                                int(s["port"]),
                                idents[i],
                                s["server"],
                                source_ip(g, int(s["ip_count"]), s.get("ip_prefix", "127.1")),
                                tune=not idle,
                                idle_timeout=3600.0 if idle else 120.0,
                            )
                    except (TransportError, OSError, trio.TooSlowError) as exc:
                        self.refused[classify(exc)] += 1
                        await trio.sleep(delay * (1 + random.random()) * (attempt + 1))
                        continue
                    # an idle holder only answers the node's Pings: no receive timer of its
                    # own (one deadline set and cleared per Ping answered, 2,500 per worker)
                    conn.swept = idle
                    peer = Peer(g, conn)
                    nursery.start_soon(peer.reader)
                    with trio.move_on_after(30):
                        await peer.admitted.wait()
                if peer.refusal is None and peer.end is None and peer.admitted.is_set():
                    self.peers.append(peer)
                    return
                reason = peer.refusal or peer.end or "no-pong"
                self.refused[reason] += 1
                if reason.startswith("busy"):
                    delay = 1.0
                with trio.move_on_after(1):
                    await conn.aclose()
                await trio.sleep(delay * (1 + random.random()))

        async with trio.open_nursery() as n:
            for i in range(count):
                n.start_soon(one, i)
        self.peers.sort(key=lambda p: p.g)
        return {
            "event": "connected",
            "connected": len(self.peers),
            "attempts": self.attempts,
            "refused": dict(self.refused),
            "setup_s": round(time.monotonic() - t0, 3),
            "identities_s": round(t_ident, 3),
            "handshakes_s": round(time.monotonic() - t0 - t_ident, 3),
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        }

    @staticmethod
    def _times(cmd: dict[str, Any]) -> tuple[float, float, float]:
        now_wall, now = time.time(), trio.current_time()
        t0 = now + max(0.0, float(cmd["start_at"]) - now_wall)
        w_start = t0 + float(cmd["warmup"])
        return t0, w_start, w_start + float(cmd["duration"])

    async def run(self, cmd: dict[str, Any]) -> dict[str, Any]:
        peers = [p for p in self.peers if p.alive]
        if cmd.get("only_last"):
            peers = peers[-1:]
        t0, w_start, w_end = self._times(cmd)
        cpu0 = _cpu()
        rate = float(cmd.get("rate_per_peer") or 0)
        async with trio.open_nursery() as nursery:
            ph = Phase(
                mode=cmd["mode"],
                root=bytes.fromhex(cmd["root"].removeprefix("0x")),
                nchunks=int(cmd["nchunks"]),
                k=int(cmd["k"]),
                rate=rate,
                max_outstanding=int(cmd["max_outstanding"]),
                t0=t0,
                w_start=w_start,
                w_end=w_end,
                nursery=nursery,
            )
            for p in peers:
                p.phase, p.window_bytes, p.window_chunks = ph, 0, 0
                p.backlog.clear()
            await trio.sleep_until(t0)
            if ph.mode == "closed":
                for _ in range(ph.k):
                    for p in peers:
                        await p.issue(trio.current_time())
            else:
                for p in peers:
                    nursery.start_soon(p.arrivals, ph)
            await trio.sleep_until(w_end)
            ph.issuing = False
            nursery.cancel_scope.cancel()
        cpu1 = _cpu()
        backlog = sum(len(p.backlog) for p in peers)
        drained = True
        with trio.move_on_after(float(cmd.get("drain", 10))) as scope:
            while any(p.pending and p.alive for p in peers):
                await trio.sleep(0.02)
        if scope.cancelled_caught:
            drained = False
            for p in peers:
                if p.pending and p.alive:
                    with contextlib.suppress(TransportError, trio.BrokenResourceError):
                        await p.conn.send(Cancel(ph.root, tuple(sorted(p.pending))[:1024]))
        for p in peers:
            p.phase = None
            p.pending.clear()
            p.by_req.clear()
            p.backlog.clear()
        return {
            "event": "result",
            "peers": len(peers),
            "peer_bytes": [p.window_bytes for p in peers],
            "peer_chunks": [p.window_chunks for p in peers],
            "latencies": [round(x, 6) for x in ph.latencies],
            "refusals": dict(ph.refusals),
            "errors": dict(ph.errors),
            "ended": dict(collections.Counter(p.end for p in self.peers if p.end)),
            "backlog_at_end": backlog,
            "drained": drained,
            "cpu_s": round(cpu1 - cpu0, 3),
            "window_s": w_end - w_start,
        }

    async def control(self, cmd: dict[str, Any]) -> dict[str, Any]:
        peers = [p for p in self.peers if p.alive][: int(cmd["peers"])]
        t0, w_start, w_end = self._times(cmd)
        root = bytes.fromhex(cmd["root"].removeprefix("0x"))
        rtts: list[float] = []
        for p in peers:
            p.control_rtts, p.control_window = rtts, (w_start, w_end)
            p.pings.clear()
            p.wants.clear()
        cpu0 = _cpu()
        await trio.sleep_until(t0)
        async with trio.open_nursery() as nursery:
            for p in peers:
                nursery.start_soon(p.control, cmd["kind"], int(cmd["window"]), root, w_end)
        cpu1 = _cpu()
        with trio.move_on_after(5):  # let the last answers in before the next phase
            while any((p.pings or p.wants) and p.alive for p in peers):
                await trio.sleep(0.02)
        for p in peers:
            p.control_rtts = None
        return {
            "event": "result",
            "peers": len(peers),
            "answered": len(rtts),
            "latencies": [round(x, 6) for x in rtts],
            "cpu_s": round(cpu1 - cpu0, 3),
            "window_s": w_end - w_start,
            "ended": dict(collections.Counter(p.end for p in self.peers if p.end)),
        }

    def count(self) -> dict[str, Any]:
        return {
            "event": "result",
            "open": sum(1 for p in self.peers if p.alive),
            "ended": dict(collections.Counter(p.end for p in self.peers if p.end)),
        }


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _amain(setup: dict[str, Any]) -> None:
    worker = Worker(setup)
    async with trio.open_nursery() as nursery:
        connected = await worker.connect_all(nursery)
        if setup.get("idle"):  # thousands of long-lived connections: never rescanned by the GC
            gc.collect()
            gc.freeze()
        _emit(connected)
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                break
            cmd = json.loads(line)
            if cmd["cmd"] == "run":
                _emit(await worker.run(cmd))
            elif cmd["cmd"] == "control":
                _emit(await worker.control(cmd))
            elif cmd["cmd"] == "count":
                _emit(worker.count())
            elif cmd["cmd"] == "quit":
                break
        with trio.move_on_after(5):
            async with trio.open_nursery() as closer:
                for p in worker.peers:
                    closer.start_soon(p.conn.aclose)
        _emit({"event": "bye"})
        nursery.cancel_scope.cancel()


def main() -> None:
    os.environ.setdefault("BCAI_LOG_LEVEL", "warning")
    raise_nofile()
    setup = json.loads(sys.stdin.readline())
    trio.run(_amain, setup)


if __name__ == "__main__":
    main()
