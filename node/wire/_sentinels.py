"""Sentinel values returned by the decoders instead of an event (as h11's ``NEED_DATA``)."""

from __future__ import annotations

from typing import Final


class Sentinel:
    """A named singleton; compare with ``is``."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA: Final = Sentinel("NEED_DATA")
"""Nothing complete is buffered: feed more bytes."""
PEER_CLOSED: Final = Sentinel("PEER_CLOSED")
"""The peer closed the stream cleanly, on a message boundary."""
