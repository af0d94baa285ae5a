"""Streaming check of a chunk-root list against the content root in O(log n) memory.

The content root is the RFC 6962 tree hash over all 4 KiB segments, which equals the tree hash
over the chunk roots with the chunk roots as (already hashed) subtrees: full chunks are
power-of-two subtrees, so the split points of RFC 6962 fall on chunk boundaries.

Roots arrive in pages; each is pushed onto a stack of perfect subtrees (the "compact range"
of transparency logs): equal-height neighbours merge at once, so the stack holds at most
log2(n) + 1 hashes. At the end the stack is folded right to left, which is exactly RFC 6962's
split at the largest power of two below n. The empty content's root is SHA-256("").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

EMPTY_ROOT = hashlib.sha256(b"").digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class RootListVerifier:
    """Feed chunk roots in order with :meth:`update`; :meth:`matches` checks the result."""

    def __init__(self, expected_count: int) -> None:
        if expected_count < 0:
            raise ValueError("expected_count must be >= 0")
        self.expected_count = expected_count
        self.count = 0
        self._stack: list[tuple[int, bytes]] = []  # (height, hash), heights strictly decreasing

    def update(self, roots: Iterable[bytes]) -> None:
        stack = self._stack
        for root in roots:
            if len(root) != 32:
                raise ValueError("a chunk root is 32 bytes")
            if self.count >= self.expected_count:
                raise ValueError("more chunk roots than the manifest announces")
            self.count += 1
            height, h = 0, bytes(root)
            while stack and stack[-1][0] == height:
                _, left = stack.pop()
                h = _node(left, h)
                height += 1
            stack.append((height, h))

    @property
    def stack_depth(self) -> int:
        return len(self._stack)

    def root(self) -> bytes:
        """The tree hash over everything fed so far."""
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = _node(left, h)
        return h

    def matches(self, content_root: bytes) -> bool:
        return self.count == self.expected_count and self.root() == content_root
