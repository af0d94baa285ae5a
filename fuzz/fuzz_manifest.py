"""Fuzz ``node.content.Manifest.from_bytes`` (canonical JSON from a peer's Manifest message).

Typed errors allowed to escape: ``InvalidManifest`` (a ``ContentError``). Invariants: input
over ``MAX_MANIFEST_BYTES`` is refused before parsing; an accepted manifest re-encodes
(``to_bytes``) to at most ``MAX_MANIFEST_BYTES`` and parses back to an equal manifest, and its
chunk count is consistent with size and chunk size.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import _common

    from node.content import MAX_MANIFEST_BYTES, InvalidManifest, Manifest

Finding = _common.Finding


def body(data: bytes) -> None:
    try:
        m = Manifest.from_bytes(data)
    except InvalidManifest:
        return
    if len(data) > MAX_MANIFEST_BYTES:
        raise Finding(f"accepted a manifest of {len(data)} bytes")
    raw = m.to_bytes()
    if len(raw) > MAX_MANIFEST_BYTES:
        raise Finding(f"accepted manifest re-encodes to {len(raw)} bytes")
    if Manifest.from_bytes(raw) != m:
        raise Finding("manifest does not round-trip")
    n = m.chunk_count
    if m.size and not (n - 1) * m.chunk_size < m.size <= n * m.chunk_size:
        raise Finding("chunk_count inconsistent with size")


def main() -> None:
    atheris.Setup(sys.argv, _common.guarded("manifest", body))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
