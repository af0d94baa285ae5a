"""The C tree kernel (node.content._accel) against the pure-Python tree it replaces."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.content import _accel
from node.content._tree import (
    EMPTY_ROOT,
    SEGMENT_SIZE,
    _reduce,
    chunk_root,
    chunk_root_py,
    merkle_root,
    segment_leaf_hashes,
)

from .._hyp import examples

needs_kernel = pytest.mark.skipif(_accel.KERNEL is None, reason="tree kernel not built")

# Lengths around segment boundaries and odd segment counts (the carried-up last node).
_lengths = st.one_of(
    st.integers(1, 3 * SEGMENT_SIZE + 1),
    st.integers(1, 40).flatmap(
        lambda k: st.sampled_from([k * SEGMENT_SIZE - 1, k * SEGMENT_SIZE, k * SEGMENT_SIZE + 1])
    ),
)


@needs_kernel
@settings(max_examples=examples(150), deadline=None)
@given(n=_lengths, seed=st.integers(0, 2**32))
def test_kernel_chunk_root_equals_python(n: int, seed: int) -> None:
    data = random.Random(seed).randbytes(n)
    assert chunk_root(data) == chunk_root_py(data)
    # every buffer kind the transfer path hands it: bytes, bytearray, read-only view, slice
    assert chunk_root(bytearray(data)) == chunk_root_py(data)
    assert chunk_root(memoryview(data).toreadonly()) == chunk_root_py(data)
    padded = b"xx" + data + b"yy"
    assert chunk_root(memoryview(padded)[2 : 2 + n]) == chunk_root_py(data)


@needs_kernel
@settings(max_examples=examples(150), deadline=None)
@given(leaves=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=300))
def test_kernel_merkle_root_equals_python(leaves: list[bytes]) -> None:
    assert merkle_root(leaves) == _reduce(list(leaves))


@needs_kernel
def test_kernel_detects_one_flipped_bit() -> None:
    data = bytearray(os.urandom(1 << 20))
    root = chunk_root(data)
    data[777_777] ^= 0x10
    assert chunk_root(data) != root
    assert chunk_root(data) == chunk_root_py(data)


def test_empty_and_python_reference() -> None:
    assert chunk_root(b"") == EMPTY_ROOT == chunk_root_py(b"")
    data = os.urandom(5 * SEGMENT_SIZE + 3)
    assert chunk_root_py(data) == merkle_root(segment_leaf_hashes(data))


def test_no_accel_env_turns_the_kernel_off() -> None:
    code = "from node.content import _accel; print(_accel.KERNEL is None)"
    env = dict(os.environ, BCAI_NO_ACCEL="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr


@pytest.mark.skipif(not os.environ.get("BCAI_REQUIRE_ACCEL"), reason="BCAI_REQUIRE_ACCEL unset")
def test_kernel_is_built_where_required() -> None:
    """CI sets BCAI_REQUIRE_ACCEL: `make setup` must have built the kernel there."""
    assert _accel.KERNEL is not None, f"{_accel.LIBRARY} missing: run make setup"
