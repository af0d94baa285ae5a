"""TCP socket tuning for peer connections: buffer sizes and the congestion control.

Congestion control (``[network] congestion``; docs/decisions.md D36). ``"auto"`` (the default)
switches a connection to ``cubic`` when its round trip measured by the TCP handshake is under
:data:`NEAR_RTT_US` (the same host or a LAN) and otherwise keeps the system's choice;
``"system"`` never changes it; any other value is a kernel module name (``"cubic"``,
``"bbr"``, ...) set on every connection. Why: BBR, a common system default, paces its sends
with per-socket timers when the qdisc is not ``fq``. Where the round trip is microseconds
there is no network queue for pacing to protect, and the timers cost the sender's CPU, which
is what bounds a transfer between two nodes on one host or a LAN. Measured on loopback here
(1 GiB get, 2 cores shared by both ends): the serving node's CPU 1.5 s with cubic against
1.8-2.1 s with bbr, and a raw socket moves 3.2 GB/s with cubic against 1.3-2.2 GB/s with bbr.
A long path keeps the system's choice (BBR's model is made for it).

A name the kernel refuses (not built, not in ``net.ipv4.tcp_allowed_congestion_control`` for
an unprivileged process) leaves the system's choice and is logged once.
"""

from __future__ import annotations

import contextlib
import socket
import struct

from node.log import get_logger

log = get_logger(__name__)

BUFFER_BYTES = 4 << 20
"""SO_SNDBUF and SO_RCVBUF asked for: a 1 MiB chunk should not need many wake-ups."""

NEAR_RTT_US = 1000
"""Below this handshake round trip (microseconds) ``"auto"`` picks :data:`NEAR_CONTROL`."""

NEAR_CONTROL = "cubic"


# struct tcp_info (linux/tcp.h): 8 bytes of u8 fields, then u32 fields from tcpi_rto on;
# tcpi_rtt (smoothed round trip, microseconds) is the 16th of those: offset 8 + 15 * 4.
_TCP_INFO_RTT = struct.Struct("=68xI")

_policy = "auto"
_refused: set[str] = set()


def set_congestion(policy: str) -> None:
    """The policy for connections opened or accepted from now on (``[network] congestion``,
    checked by ``node.config``; a name the kernel refuses keeps the system's choice)."""
    global _policy
    _policy = policy


def handshake_rtt_us(sock: socket.socket) -> int | None:
    """The kernel's smoothed round trip of ``sock`` in microseconds (after connect/accept the
    TCP handshake has given it one sample), or ``None`` where TCP_INFO is not available."""
    opt = getattr(socket, "TCP_INFO", None)
    if opt is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, opt, _TCP_INFO_RTT.size)
    except OSError:
        return None
    if len(info) < _TCP_INFO_RTT.size:
        return None
    (rtt,) = _TCP_INFO_RTT.unpack_from(info)
    return int(rtt)


def congestion_control(sock: socket.socket) -> str | None:
    """The congestion control ``sock`` uses now (``None``: not a Linux TCP socket)."""
    opt = getattr(socket, "TCP_CONGESTION", None)
    if opt is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, opt, 16)
    except OSError:
        return None
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def _choose(sock: socket.socket, policy: str) -> str | None:
    if policy == "system":
        return None
    if policy != "auto":
        return policy
    rtt = handshake_rtt_us(sock)
    if rtt is None or rtt >= NEAR_RTT_US:
        return None
    return NEAR_CONTROL


def tune_socket(sock: socket.socket, policy: str | None = None) -> str | None:
    """Buffers, then the congestion control of ``policy`` (default: :func:`set_congestion`'s).
    Returns the congestion control set, or ``None`` when the system's choice was kept."""
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, opt, BUFFER_BYTES)
    name = _choose(sock, _policy if policy is None else policy)
    cc = getattr(socket, "TCP_CONGESTION", None)
    if name is None or cc is None:
        return None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, cc, name.encode("ascii"))
    except OSError as exc:
        if name not in _refused:
            _refused.add(name)
            log.warning("congestion control refused: system choice kept", name=name, error=str(exc))
        return None
    return name
