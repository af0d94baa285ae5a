"""Exporting content to a file: verified bytes only, and atomically."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import StoreFull, is_no_space
from ._files import fsync_dir

if TYPE_CHECKING:
    from ._store import Store


def export_file(store: Store, root: bytes, dest: Path) -> int:
    """Write every verified chunk to a temp file beside ``dest``, fsync, rename over ``dest``.

    A failure at any point (a corrupt chunk, a full disk) removes the temp file, so ``dest``
    either keeps its old contents or does not exist: no unverified or partial output.
    """
    chunks = store.iter_verified(root)  # raises before any file is created
    dest = dest.absolute()
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    size = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            for data in chunks:
                mv = memoryview(data)
                while mv:
                    n = os.write(fd, mv)
                    mv = mv[n:]
                size += len(data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and is_no_space(exc):
            raise StoreFull(exc.errno, f"no space left writing {dest}: {exc.strerror}") from exc
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return size
