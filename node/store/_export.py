"""Exporting content to a file: verified bytes only, atomically, never over a non-file."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

from node._fs import LINKED_OUTPUT, OutputReplaced, write_output
from node.content import hash_file

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

    A ``dest`` the store links chunks into (``_links``) is never replaced: its inode would go,
    and the links with it. If it already holds exactly ``root`` (every chunk hashes to its
    chunk root: a second ``get --link -o`` of the same content) nothing is written; otherwise
    :class:`node._fs.OutputReplaced` says why.
    """
    linked = store._links.file_at(Path(dest))
    if linked is not None:
        return _check_in_place(store, root, linked.path)
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


def _check_in_place(store: Store, root: bytes, path: Path) -> int:
    """``path`` (a linked file) already holds exactly ``root``: its size (else
    :class:`node._fs.OutputReplaced`)."""
    m = store.get_manifest(root)
    got = hash_file(path, m.chunk_size)
    if (got.root, got.size) != (m.root, m.size):
        raise OutputReplaced(errno.EEXIST, LINKED_OUTPUT, str(path))
    return m.size
