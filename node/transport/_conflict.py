"""Detect two tasks using one direction of a stream at once (like trio's private helper)."""

from __future__ import annotations

from types import TracebackType

import trio


class ConflictDetector:
    """``with detector:`` raises :class:`trio.BusyResourceError` if already held."""

    __slots__ = ("_held", "_msg")

    def __init__(self, msg: str) -> None:
        self._msg = msg
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._msg)
        self._held = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._held = False
