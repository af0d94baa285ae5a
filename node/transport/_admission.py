"""Admission control for inbound connections, sans-IO: who may hold a socket, and who goes.

Two budgets, so that unauthenticated sockets never hold the slots of authenticated peers:

- **Pre-handshake**: at most ``max_handshakes`` sockets in the Noise handshake + Hello at once,
  at most ``max_handshakes_per_ip`` from one IP, each for at most ``handshake_timeout`` seconds.
  When the overall budget is full, the oldest handshake of the IP with the most in flight is
  evicted if that IP has two or more and more than the newcomer's (one busy IP must not crowd
  out the rest). Otherwise, and when a per-IP budget is full, the oldest pending handshake (of
  that IP) that has had ``handshake_grace`` seconds is evicted (an honest handshake takes a few
  round trips; a socket silent that long is the likeliest attacker); if none is that old the
  newcomer is refused.
  Nothing can be said before the handshake, so refusal and eviction are a bare close.
- **Established**: at most ``max_connections_per_ip`` authenticated connections from one IP and
  ``max_connections_per_peer`` from one identity; beyond those the newcomer is refused with
  ``Error(BUSY, retry_after_ms)`` then ``Goodbye(BUSY)``. Past ``connections_high`` the node
  does not refuse: it admits the newcomer and trims the least useful connections down to
  ``connections_low`` (misbehaving first, then those that never asked for anything, then the
  ones idle longest), each closed with ``Goodbye(BUSY)``.

Each refusal is logged once per key (IP or identity) while that key stays in a bounded memory,
not once per attempt. The policy only counts; ``_manager.serve_peers`` does the I/O.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, OrderedDict
from dataclasses import dataclass, field, fields
from typing import Any

#: How many distinct refused keys are remembered for log-once (oldest forgotten first).
LOG_MEMORY = 4096


def ip_key(ip: str) -> str:
    """The address the per-IP limits count by: an IPv4 address as is (IPv4-mapped IPv6
    unwrapped), an IPv6 address by its /64, which one subscriber usually holds whole."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


@dataclass(frozen=True)
class AdmissionLimits:
    """The numbers (``[network]`` in config.toml carries the same names; see
    docs/operations.md). Defaults suit a node on one public address."""

    max_handshakes: int = 64
    """Sockets in the handshake (Noise + Hello) at once, all IPs together."""
    max_handshakes_per_ip: int = 8
    """Sockets in the handshake at once from one IP."""
    handshake_timeout: float = 5.0
    """Seconds a socket may take from accept to the peer's Hello."""
    handshake_grace: float = 1.0
    """A pending handshake younger than this is never evicted for a newcomer."""
    max_connections_per_ip: int = 32
    """Authenticated connections from one IP."""
    max_connections_per_peer: int = 8
    """Authenticated connections from one identity (Ethereum address)."""
    connections_high: int = 256
    """Above this many authenticated connections the least useful are trimmed ..."""
    connections_low: int = 224
    """... down to this many."""
    retry_after_ms: int = 5000
    """``retry_after_ms`` in the BUSY Error sent to a refused peer."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{f.name} must be a non-negative number, got {value!r}")
        if not 0 < self.max_handshakes_per_ip <= self.max_handshakes:
            raise ValueError("need 0 < max_handshakes_per_ip <= max_handshakes")
        if not 0 < self.max_connections_per_peer <= self.max_connections_per_ip:
            raise ValueError("need 0 < max_connections_per_peer <= max_connections_per_ip")
        if not 0 < self.connections_low <= self.connections_high:
            raise ValueError("need 0 < connections_low <= connections_high")
        if self.handshake_timeout <= 0:
            raise ValueError("handshake_timeout must be positive")

    @classmethod
    def from_config(cls, network: Any) -> AdmissionLimits:
        """From a ``node.config.NetworkConfig`` (or anything with these attribute names);
        missing attributes keep their defaults."""
        kw = {
            f.name: getattr(network, f.name)
            for f in fields(cls)
            if getattr(network, f.name, None) is not None
        }
        return cls(**kw)


@dataclass
class PeerStats:
    """What the policy knows of one established connection, for choosing whom to trim."""

    conn_id: int
    ip: str
    address: str
    opened_at: float
    last_useful: float | None = None
    """When the peer last sent an application message (not Ping/Pong)."""
    bytes_served: int = 0
    strikes: int = 0
    """Recoverable protocol errors the peer caused."""

    def usefulness_key(self) -> tuple[int, int, float]:
        """Sort key: smallest = trim first (misbehaving, never useful, idle longest)."""
        useful = self.last_useful is not None or self.bytes_served > 0
        last = self.last_useful if self.last_useful is not None else self.opened_at
        return (-self.strikes, int(useful), last)


@dataclass(frozen=True)
class Refusal:
    """Why a connection is not admitted; ``log`` is true the first time for this key."""

    reason: str
    key: str
    log: bool


@dataclass(frozen=True)
class HandshakeAdmission:
    """A pre-handshake slot was granted; ``evict`` names the pending handshake to cancel."""

    evict: int | None = None


@dataclass(frozen=True)
class Admission:
    """An established slot was granted; ``trim`` lists connections to close, least useful
    first."""

    trim: tuple[int, ...] = ()


@dataclass
class AdmissionPolicy:
    """Counts pre-handshake and established connections and decides admission and trimming.

    Connection ids are the caller's (unique per accepted socket). Every ``begin_handshake``
    that was granted must be matched by ``end_handshake``; every granted ``admit`` by
    ``release``.
    """

    limits: AdmissionLimits = field(default_factory=AdmissionLimits)
    accepted: int = 0
    """Sockets ever offered to :meth:`begin_handshake` (a metric; tests wait on it)."""
    refused: int = 0
    """Of which refused, before or after the handshake."""
    sweeps: int = 0
    """Liveness rounds of ``serve_peers``' sweeper (a metric; tests wait on it)."""
    idle_closed: int = 0
    """Connections the sweeper closed because nothing arrived for ``idle_timeout``."""
    looked: int = 0
    """Connections the sweeper looked at (once each time something may be due for one)."""
    keepalive_pings: int = 0
    """Keep-alive Pings the sweeper sent ..."""
    keepalive_tasks: int = 0
    """... of which through a task of their own (the socket could not take one at once)."""
    _pending: dict[int, tuple[str, float]] = field(default_factory=dict)
    _pending_per_ip: Counter[str] = field(default_factory=Counter)
    _established: dict[int, PeerStats] = field(default_factory=dict)
    _per_ip: Counter[str] = field(default_factory=Counter)
    _per_peer: Counter[str] = field(default_factory=Counter)
    _logged: OrderedDict[str, None] = field(default_factory=OrderedDict)

    # -- counts --------------------------------------------------------------------------

    @property
    def handshakes(self) -> int:
        return len(self._pending)

    @property
    def established(self) -> int:
        return len(self._established)

    def handshakes_from(self, ip: str) -> int:
        return self._pending_per_ip[ip]

    def connections_from(self, ip: str) -> int:
        return self._per_ip[ip]

    def connections_of(self, address: str) -> int:
        return self._per_peer[address]

    def stats(self, conn_id: int) -> PeerStats | None:
        return self._established.get(conn_id)

    # -- pre-handshake --------------------------------------------------------------------

    def begin_handshake(self, conn_id: int, ip: str, now: float) -> HandshakeAdmission | Refusal:
        """A socket was accepted from ``ip``: may it start the handshake?

        When granted with ``evict``, the caller must cancel that handshake; its slot has
        already been given to ``conn_id`` here (the caller's later ``end_handshake`` for the
        evicted id is a no-op).
        """
        lim = self.limits
        self.accepted += 1
        evict: int | None = None
        if self._pending_per_ip[ip] >= lim.max_handshakes_per_ip:
            evict = self._oldest_pending(now, ip)
            if evict is None:
                return self._refuse(f"ip:{ip}", "too many handshakes from this IP")
        elif len(self._pending) >= lim.max_handshakes:
            evict = self._crowding(ip)
            if evict is None:
                evict = self._oldest_pending(now, None)
            if evict is None:
                return self._refuse(f"ip:{ip}", "handshake budget full")
        if evict is not None:
            self.end_handshake(evict)
        self._pending[conn_id] = (ip, now)
        self._pending_per_ip[ip] += 1
        return HandshakeAdmission(evict)

    def _crowding(self, ip: str) -> int | None:
        """The oldest handshake of the IP with the most in flight, if it has at least two
        and more than ``ip``: one busy IP must not crowd out the others, even in a burst."""
        if not self._pending_per_ip:
            return None
        heavy, count = max(self._pending_per_ip.items(), key=lambda kv: kv[1])
        if count < 2 or count <= self._pending_per_ip[ip] or heavy == ip:
            return None
        return next(cid for cid, (pip, _) in self._pending.items() if pip == heavy)

    def _oldest_pending(self, now: float, ip: str | None) -> int | None:
        """The oldest pending handshake (from ``ip`` if given) past the grace period."""
        for cid, (pip, started) in self._pending.items():  # insertion order = age order
            if now - started < self.limits.handshake_grace:
                return None
            if ip is None or pip == ip:
                return cid
        return None

    def end_handshake(self, conn_id: int) -> None:
        """The handshake finished, failed or was evicted; idempotent."""
        entry = self._pending.pop(conn_id, None)
        if entry is None:
            return
        ip = entry[0]
        self._pending_per_ip[ip] -= 1
        if self._pending_per_ip[ip] <= 0:
            del self._pending_per_ip[ip]

    # -- established ----------------------------------------------------------------------

    def admit(self, conn_id: int, ip: str, address: str, now: float) -> Admission | Refusal:
        """An authenticated peer ``address`` from ``ip``: may it stay? (Call after
        ``end_handshake``.) A grant may ask for others to be trimmed."""
        lim = self.limits
        if self._per_peer[address] >= lim.max_connections_per_peer:
            return self._refuse(f"peer:{address}", "too many connections from this identity")
        if self._per_ip[ip] >= lim.max_connections_per_ip:
            return self._refuse(f"ip:{ip}", "too many connections from this IP")
        self._established[conn_id] = PeerStats(conn_id, ip, address, now)
        self._per_ip[ip] += 1
        self._per_peer[address] += 1
        return Admission(self._trim(protect=conn_id))

    def _trim(self, protect: int) -> tuple[int, ...]:
        """Over the high watermark: the least useful down to the low one (``protect`` and
        connections already being trimmed excluded). Trimmed ones are released here."""
        if len(self._established) <= self.limits.connections_high:
            return ()
        excess = len(self._established) - self.limits.connections_low
        candidates = sorted(
            (s for s in self._established.values() if s.conn_id != protect),
            key=PeerStats.usefulness_key,
        )
        victims = tuple(s.conn_id for s in candidates[:excess])
        for cid in victims:
            self.release(cid)
        return victims

    def release(self, conn_id: int) -> None:
        """The connection closed (or was trimmed); idempotent."""
        stats = self._established.pop(conn_id, None)
        if stats is None:
            return
        for counter, key in ((self._per_ip, stats.ip), (self._per_peer, stats.address)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    def note_useful(self, conn_id: int, now: float, bytes_served: int = 0) -> None:
        """The peer asked for something (or was sent ``bytes_served`` bytes of chunk data)."""
        stats = self._established.get(conn_id)
        if stats is not None:
            stats.last_useful = now
            stats.bytes_served += bytes_served

    def note_strike(self, conn_id: int) -> None:
        """The peer sent something wrong that the connection survived."""
        stats = self._established.get(conn_id)
        if stats is not None:
            stats.strikes += 1

    # -- log once --------------------------------------------------------------------------

    def _refuse(self, key: str, reason: str) -> Refusal:
        self.refused += 1
        return Refusal(reason, key, self.first_time(key))

    def first_time(self, key: str) -> bool:
        """True the first time ``key`` is seen (within the last :data:`LOG_MEMORY` keys):
        what is logged once per IP or identity asks this."""
        first = key not in self._logged
        if first:
            self._logged[key] = None
            if len(self._logged) > LOG_MEMORY:
                self._logged.popitem(last=False)
        else:
            self._logged.move_to_end(key)
        return first
