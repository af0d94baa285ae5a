"""Exporting content to a file: verified bytes only, atomically, never over a non-file."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from node._fs import write_output

from ._errors import StoreFull, is_no_space

if TYPE_CHECKING:
    from ._store import Store


def export_file(store: Store, root: bytes, dest: str | os.PathLike[str]) -> int:
    """Write every verified chunk of ``root`` to ``dest`` with :func:`node._fs.write_output`.

    That is the CLI's safe writer: a regular file (or a new name) is replaced atomically from a
    temp file beside it that never outlives a failure (a corrupt chunk, a full disk), so
    ``dest`` keeps its old contents or does not exist; a device or FIFO is written in place,
    never renamed over; a directory raises :class:`IsADirectoryError`; and a device or link
    that appears at ``dest`` while we write is not replaced (``OutputReplaced``).
    """
    chunks = store.iter_verified(root)  # raises before any file is created
    try:
        return write_output(dest, chunks, durable=store.durable)
    except OSError as exc:
        if is_no_space(exc):
            raise StoreFull(exc.errno, f"no space left writing {dest}: {exc.strerror}") from exc
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
