"""``TransferObserver``: what the transfer layer tells the node about its work.

The transfer core and the provider call these hooks at the points named below; the node
service (``node.app``) implements them to feed ``/metrics``, the dashboard and the active
transfer list. Every hook must be cheap and must not raise (it runs on the data path); the
default :data:`NULL_OBSERVER` does nothing. This module imports nothing from above it.
"""

from __future__ import annotations

from typing import Protocol


class TransferObserver(Protocol):
    # -- receiver side (fetch) ---------------------------------------------------------------
    def chunk_received(
        self, peer: str, nbytes: int, seconds: float, wire_bytes: int | None = None
    ) -> None:
        """A verified chunk of ``nbytes`` from ``peer`` (address); ``seconds`` from request;
        ``wire_bytes``: its payload on the wire (a zstd frame, or ``nbytes``; None: ``nbytes``)."""

    def chunk_rejected(self, peer: str, reason: str) -> None:
        """A chunk from ``peer`` failed verification (``"corrupt"``) or timed out
        (``"timeout"``)."""

    def requests_outstanding(self, peer: str, count: int, window: int) -> None:
        """Chunks requested from ``peer`` and not yet answered, and its current window."""

    # -- provider side (serve) ---------------------------------------------------------------
    def chunk_served(
        self, peer: str, nbytes: int, seconds: float, wire_bytes: int | None = None
    ) -> None:
        """A chunk of ``nbytes`` sent to ``peer``; ``seconds`` from Request to last byte queued;
        ``wire_bytes`` as for :meth:`chunk_received`."""

    def connection_opened(self, peer: str, inbound: bool) -> None:
        """An authenticated connection with ``peer`` (address) is up."""

    def connection_closed(self, peer: str, inbound: bool) -> None:
        """That connection ended (for any reason)."""


class _NullObserver:
    def chunk_received(
        self, peer: str, nbytes: int, seconds: float, wire_bytes: int | None = None
    ) -> None:
        pass

    def chunk_rejected(self, peer: str, reason: str) -> None:
        pass

    def requests_outstanding(self, peer: str, count: int, window: int) -> None:
        pass

    def chunk_served(
        self, peer: str, nbytes: int, seconds: float, wire_bytes: int | None = None
    ) -> None:
        pass

    def connection_opened(self, peer: str, inbound: bool) -> None:
        pass

    def connection_closed(self, peer: str, inbound: bool) -> None:
        pass


NULL_OBSERVER: TransferObserver = _NullObserver()

__all__ = ["NULL_OBSERVER", "TransferObserver"]
