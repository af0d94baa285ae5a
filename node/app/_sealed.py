"""Encrypted content on a node: seal on add, open on export, always on the caller's side.

The store, the provider and the daemon only ever see the sealed stream (ordinary content whose
root is over the ciphertext). Sealing and opening run in the process that holds the key:

* a :class:`~node.app.Node` in this process ingests a :class:`node.seal.SealReader` stream
  (the plaintext never reaches its store);
* through a running daemon (:class:`~node.app.RemoteNode`) the sealed stream is written to a
  0600 temporary file in ``<data dir>/run`` that the daemon adds and that is removed after;
  opening streams the ciphertext from ``GET /api/v1/content/ROOT`` and decrypts it here. The
  daemon never receives a key or a passphrase.

Both kinds of node get the same three operations: ``add(..., encrypt=key)``,
``iter_content(root, key=key)`` and ``export(root, path, key=key)`` (docs/encryption.md).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from node._fs import write_output
from node.content import root_hex
from node.log import get_logger
from node.seal import SEALED_MEDIA_TYPE, ContentKey, OpenedStream, SealReader, open_sealed

log = get_logger("node.app.sealed")

#: where a client seals to before a daemon adds the file (inside the data dir, 0600)
SEAL_TMP_DIR = "run"


def _plain_reader(
    source: str | os.PathLike[str] | BinaryIO,
) -> contextlib.AbstractContextManager[Any]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory", str(path))
        return open(path, "rb")
    return contextlib.nullcontext(source)


def add_sealed(
    node: Any,
    source: str | os.PathLike[str] | BinaryIO,
    key: ContentKey,
    *,
    name: str | None = None,
    media_type: str | None = None,
    chunk_size: int | None = None,
    pin: bool = True,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Seal ``source`` under ``key`` and add the sealed stream to ``node``; the manifest JSON
    plus ``encrypted``, ``plaintext_size`` and ``plaintext_root``.

    The manifest keeps no plaintext metadata: its name is ``name`` if given (it is stored and
    served in clear), else empty; its media type is always :data:`node.seal.SEALED_MEDIA_TYPE`
    (``media_type`` is not recorded: hosts would read it).
    """
    del media_type
    kwargs: dict[str, Any] = {
        "name": name or "",
        "media_type": SEALED_MEDIA_TYPE,
        "chunk_size": chunk_size,
        "pin": pin,
    }
    with _plain_reader(source) as plain:
        reader = SealReader(plain, key)
        if hasattr(node, "url"):  # a daemon: seal to a file it can read, never send the key
            out = _add_through_file(node, reader, kwargs)
        else:
            out = dict(node.add(reader, progress=progress, **kwargs))
    result = reader.result
    assert result is not None
    out.update(
        encrypted=True,
        plaintext_size=result.size,
        plaintext_root=root_hex(result.plaintext_root),
    )
    log.info("added encrypted content", root=out.get("root"), records=result.records)
    return out


def _add_through_file(node: Any, reader: SealReader, kwargs: dict[str, Any]) -> dict[str, Any]:
    data_dir = getattr(node, "data_dir", None)
    tmp_dir = Path(data_dir) / SEAL_TMP_DIR if data_dir is not None else None
    if tmp_dir is None or not tmp_dir.is_dir():
        raise FileNotFoundError(2, "no run directory to seal into", str(tmp_dir))
    tmp = tmp_dir / f".sealed-{secrets.token_hex(8)}.tmp"
    try:
        write_output(tmp, iter(lambda: reader.read(1 << 20), b""), durable=False)
        os.chmod(tmp, 0o600)
        return dict(node.add(tmp, **kwargs))
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def iter_opened(node: Any, root: bytes, key: ContentKey) -> OpenedStream:
    """The verified plaintext of sealed content ``root`` (raises before the first byte if the
    content is not here; a wrong key raises on the first iteration)."""
    return open_sealed(node.iter_content(root), key)


def export_opened(
    node: Any, root: bytes, key: ContentKey, path: str | os.PathLike[str]
) -> dict[str, Any]:
    """Decrypt sealed content ``root`` into ``path`` (atomically: a wrong key, damaged or
    truncated content leaves ``path`` as it was)."""
    stream = iter_opened(node, root, key)
    try:
        size = write_output(path, stream)
    finally:
        stream.close()
    result = stream.result
    assert result is not None
    return {
        "root": root_hex(root),
        "path": str(path),
        "size": size,
        "encrypted": True,
        "plaintext_root": root_hex(result.plaintext_root),
    }
