"""Collapse trio's ExceptionGroups into the one error callers expect.

Nurseries wrap every failure in an ExceptionGroup; the engine's callers want a single typed
error (``CorruptChunk``, ``PeerDisconnected``...). Cancellations are ignored; Ctrl-C
(``KeyboardInterrupt``) wins over everything (the CLI maps it to INTERRUPTED; wrapped in a
group it used to escape as a traceback), then a transfer error, then a transport error;
anything else is re-raised as the group.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import trio

from node.transport import TransportError

from ._errors import TransferError


def leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


@contextlib.asynccontextmanager
async def collapse_groups() -> AsyncIterator[None]:
    try:
        yield
    except BaseExceptionGroup as group:
        found = [e for e in leaves(group) if not isinstance(e, trio.Cancelled)]
        for kind in (KeyboardInterrupt, TransferError, TransportError):
            for leaf in found:
                if isinstance(leaf, kind):
                    raise leaf from None
        raise
