"""Optional C kernel for the segment tree: :func:`node.content._tree.chunk_root` in one call.

Why our own C (docs/decisions.md D30): hashing a 1 MiB chunk is 256 leaf hashes and 255 node
hashes. ``hashlib`` releases the GIL for each 4 KiB leaf and takes it back after, so a worker
thread verifying chunks convoys with the event-loop thread (measured 788 -> 173 MB/s when the
other thread runs Python), and the 511 calls cost Python overhead besides. No kept library
computes an RFC 6962 tree (they hash single messages); ``_ctree.c`` computes a whole chunk
with the GIL released once, so the receiver's hashing runs on the second core.

Its SHA-256 (D35): on a CPU with the SHA extensions, our own SHA-NI code hashing four (then
two, then one) equal-length messages interleaved, ~1.8x OpenSSL's per byte; elsewhere, or
with ``BCAI_NO_SHANI=1`` or ``load(sha_ni=False)``, OpenSSL's SHA-256 (the same code
``hashlib`` uses). The CPU is checked once when the library loads (cpuid); tests check both
paths against the Python tree and ``hashlib``.

The kernel is built by ``make setup`` (``python -m node._native``: the system C compiler,
linked against the ``libcrypto`` Python's own ``_hashlib`` loads; no headers needed; a
compiler without the x86 intrinsics builds the OpenSSL path only). When it is not built,
cannot be built (no compiler) or ``BCAI_NO_ACCEL=1`` is set, the pure-Python tree is used:
same results (a property test checks both on random inputs), slower.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

Buffer = bytes | bytearray | memoryview

LIBRARY = Path(__file__).with_name("_ctree.so")
"""Built by :mod:`node._native` (which names the same path: it may not import this layer)."""
_CDEF = """
int bcai_sha_ni(void);
int bcai_leaf_hashes(const uint8_t *data, size_t len, uint8_t *out, int sha_ni);
int bcai_tree_root(const uint8_t *data, size_t len, uint8_t *scratch, uint8_t *out, int sha_ni);
int bcai_merkle_root(const uint8_t *leaves, size_t n, uint8_t *scratch, uint8_t *out,
                     int sha_ni);
"""


class _Kernel:
    def __init__(self, ffi: Any, lib: Any, sha_ni: bool) -> None:
        self._ffi = ffi
        self._lib = lib
        self.sha_ni = sha_ni
        """True: SHA-256 through the CPU's SHA extensions, up to four messages interleaved; False:
        OpenSSL's SHA-256 (same results)."""
        self._flag = int(sha_ni)

    def tree_root(self, data: Buffer) -> bytes:
        """Root of non-empty ``data`` cut into 4 KiB segments (GIL released for the call)."""
        ffi = self._ffi
        n = len(data)
        out = ffi.new("uint8_t[32]")
        scratch = ffi.new("uint8_t[]", 32 * -(-n // 4096))
        self._lib.bcai_tree_root(ffi.from_buffer(data), n, scratch, out, self._flag)
        return bytes(ffi.buffer(out))

    def merkle_root(self, leaves: bytes) -> bytes:
        """Root over ``leaves`` (concatenated 32-byte leaf hashes, at least one)."""
        ffi = self._ffi
        n = len(leaves) // 32
        out = ffi.new("uint8_t[32]")
        scratch = ffi.new("uint8_t[]", 32 * n)
        self._lib.bcai_merkle_root(ffi.from_buffer(leaves), n, scratch, out, self._flag)
        return bytes(ffi.buffer(out))

    def leaf_hashes(self, data: Buffer) -> bytes:
        """The concatenated leaf hashes of non-empty ``data`` (SHA-256 of 0x00 || segment)."""
        ffi = self._ffi
        n = len(data)
        out = ffi.new("uint8_t[]", 32 * -(-n // 4096))
        self._lib.bcai_leaf_hashes(ffi.from_buffer(data), n, out, self._flag)
        return bytes(ffi.buffer(out))


def load(sha_ni: bool | None = None) -> _Kernel | None:
    """The built kernel, or ``None`` (not built, unloadable, or ``BCAI_NO_ACCEL`` set).

    ``sha_ni``: ``None`` takes the SHA-NI path when the CPU has it and ``BCAI_NO_SHANI`` is
    unset; ``False`` forces OpenSSL's SHA-256; ``True`` takes SHA-NI if the CPU has it (the
    kernel's ``sha_ni`` says which path it got).
    """
    if os.environ.get("BCAI_NO_ACCEL") or not LIBRARY.exists():
        return None
    try:
        from cffi import FFI

        ffi = FFI()
        ffi.cdef(_CDEF)
        lib = ffi.dlopen(str(LIBRARY))
        cpu = lib.bcai_sha_ni() == 1  # 0: the CPU has no SHA-NI; -1: built without it
    except (ImportError, OSError, AttributeError):  # AttributeError: a stale build
        return None
    if sha_ni is None:
        sha_ni = not os.environ.get("BCAI_NO_SHANI")
    return _Kernel(ffi, lib, sha_ni and cpu)


KERNEL = load()
tree_root: Callable[[Buffer], bytes] | None = KERNEL.tree_root if KERNEL else None
merkle_root: Callable[[bytes], bytes] | None = KERNEL.merkle_root if KERNEL else None
