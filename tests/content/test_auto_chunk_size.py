"""``auto_chunk_size``: the chunk size a content gets when none is asked for (D41)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.content import (
    AUTO_CHUNKS,
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    auto_chunk_size,
    check_chunk_size,
)

MiB = 1 << 20


@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (0, MiB),
        (1, MiB),
        (16 * MiB, MiB),
        (32 * MiB - 1, MiB),
        (32 * MiB, 2 * MiB),
        (64 * MiB - 1, 2 * MiB),
        (64 * MiB, 4 * MiB),
        (100 * MiB, 4 * MiB),  # the seed's 100 MB gradient update: 25 chunks
        (1 << 40, 4 * MiB),
    ],
)
def test_table(size: int, chunk: int) -> None:
    assert auto_chunk_size(size) == chunk


@given(st.integers(min_value=0, max_value=1 << 50))
def test_a_valid_size_that_keeps_16_chunks(size: int) -> None:
    c = auto_chunk_size(size)
    assert check_chunk_size(c) == c and DEFAULT_CHUNK_SIZE <= c <= MAX_CHUNK_SIZE
    if c > DEFAULT_CHUNK_SIZE:  # grown only while the content still has >= 16 chunks
        assert size // c >= AUTO_CHUNKS
    if c < MAX_CHUNK_SIZE:  # and as far as that goes
        assert size // (2 * c) < AUTO_CHUNKS


@given(st.integers(min_value=0, max_value=1 << 40), st.integers(min_value=0, max_value=1 << 40))
def test_monotone(a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert auto_chunk_size(lo) <= auto_chunk_size(hi)


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError):
        auto_chunk_size(-1)
