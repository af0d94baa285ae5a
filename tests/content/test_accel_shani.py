"""Both SHA-256 paths of the C tree kernel (SHA-NI interleaved, OpenSSL) against the references.

The SHA-NI path hashes 4, then 2, then 1 equal-length messages interleaved and builds the
SHA-256 padding itself, so the lengths here sit around its edges: a leaf's message is
0x00 || up to 4096 bytes, and a message's last block changes at L % 64 = 55/56 (one padding
block or two) and 0/63 (a block boundary); leaf counts cover every remainder of 4 and 2.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cffi import FFI
from hypothesis import given, settings
from hypothesis import strategies as st

from node import _native
from node.content import _accel
from node.content._tree import SEGMENT_SIZE, _reduce, chunk_root_py

from .._hyp import examples

pytestmark = pytest.mark.skipif(_accel.KERNEL is None, reason="tree kernel not built")

_CPUINFO = Path("/proc/cpuinfo")
_CPU_SHA_NI = _CPUINFO.exists() and any(
    line.startswith("flags") and "sha_ni" in line.split()
    for line in _CPUINFO.read_text().splitlines()
)


def _kernels() -> list[object]:
    """The OpenSSL path, and the SHA-NI path where this CPU has it."""
    params: list[object] = [pytest.param(False, id="openssl")]
    sha_ni = _accel.load(sha_ni=True)
    skip = pytest.mark.skipif(sha_ni is None or not sha_ni.sha_ni, reason="no SHA-NI here")
    params.append(pytest.param(True, id="sha-ni", marks=skip))
    return params


@pytest.fixture(scope="module", params=_kernels())
def kernel(request: pytest.FixtureRequest) -> _accel._Kernel:
    k = _accel.load(sha_ni=request.param)
    assert k is not None and k.sha_ni is request.param
    return k


def _leaves_hashlib(data: bytes) -> bytes:
    return b"".join(
        hashlib.sha256(b"\x00" + data[i : i + SEGMENT_SIZE]).digest()
        for i in range(0, len(data), SEGMENT_SIZE)
    )


def _padding_edges(segments: int) -> st.SearchStrategy[int]:
    """Lengths whose last leaf's message (0x00 || tail) ends near a padding edge."""
    edges = [55, 56, 63, 64, 0, 1]  # L % 64 of the last message: 1 or 2 padding blocks, boundary
    return st.tuples(st.integers(0, segments - 1), st.integers(0, 63), st.sampled_from(edges)).map(
        lambda t: t[0] * SEGMENT_SIZE + max(1, (64 * t[1] + t[2] - 1) % SEGMENT_SIZE)
    )


_lengths = st.one_of(
    st.integers(1, 300),  # one short leaf: every padding case up to 4 blocks
    st.integers(1, 13).flatmap(  # 1..13 leaves: every remainder of the 4- and 2-lane groups
        lambda k: st.integers(k * SEGMENT_SIZE - 70, k * SEGMENT_SIZE + 70).filter(lambda n: n > 0)
    ),
    _padding_edges(13),
    st.integers(1, 13 * SEGMENT_SIZE),
)


@settings(max_examples=examples(120), deadline=None)
@given(n=_lengths, seed=st.integers(0, 2**32))
def test_tree_root_and_leaves_equal_references(kernel: _accel._Kernel, n: int, seed: int) -> None:
    data = random.Random(seed).randbytes(n)
    root = chunk_root_py(data)
    assert kernel.tree_root(data) == root
    assert kernel.leaf_hashes(data) == _leaves_hashlib(data)
    # every buffer kind the transfer path hands it
    assert kernel.tree_root(bytearray(data)) == root
    assert kernel.tree_root(memoryview(data).toreadonly()) == root
    padded = b"x" + data + b"yy"
    assert kernel.tree_root(memoryview(padded)[1 : 1 + n]) == root
    assert kernel.leaf_hashes(memoryview(padded)[1 : 1 + n]) == _leaves_hashlib(data)


@pytest.mark.parametrize("segments", [1, 2, 3, 4, 5, 6, 7, 8, 9, 255, 256, 257])
def test_whole_segment_counts(kernel: _accel._Kernel, segments: int) -> None:
    data = os.urandom(segments * SEGMENT_SIZE)
    assert kernel.tree_root(data) == chunk_root_py(data)
    assert kernel.leaf_hashes(data) == _leaves_hashlib(data)


@pytest.mark.parametrize("n", [(1 << 20) - 1, 1 << 20, (1 << 20) + 1])
def test_one_mib_chunk(kernel: _accel._Kernel, n: int) -> None:
    data = bytearray(os.urandom(n))
    root = kernel.tree_root(data)
    assert root == chunk_root_py(bytes(data))
    data[n // 3] ^= 0x01  # one flipped bit changes the root, on both paths alike
    assert kernel.tree_root(data) != root
    assert kernel.tree_root(data) == chunk_root_py(bytes(data))


@settings(max_examples=examples(100), deadline=None)
@given(leaves=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70))
def test_merkle_root_equals_python(kernel: _accel._Kernel, leaves: list[bytes]) -> None:
    assert kernel.merkle_root(b"".join(leaves)) == _reduce(list(leaves))


def test_the_two_paths_agree_on_one_input() -> None:
    data = os.urandom(37 * SEGMENT_SIZE + 1000)
    ossl, best = _accel.load(sha_ni=False), _accel.load()
    assert ossl is not None and best is not None
    assert ossl.tree_root(data) == best.tree_root(data) == chunk_root_py(data)


@pytest.mark.skipif(not _CPUINFO.exists(), reason="no /proc/cpuinfo")
def test_runtime_detection_matches_the_cpu() -> None:
    """The kernel's cpuid check agrees with Linux's view of the CPU (its flags)."""
    lib = _accel.load(sha_ni=True)
    assert lib is not None
    if lib._lib.bcai_sha_ni() == -1:
        pytest.skip("kernel built without the SHA-NI path (compiler without the intrinsics)")
    assert lib.sha_ni is _CPU_SHA_NI
    assert _accel.KERNEL is not None
    assert _accel.KERNEL.sha_ni is (_CPU_SHA_NI and not os.environ.get("BCAI_NO_SHANI"))


def test_no_shani_env_forces_openssl() -> None:
    code = "from node.content import _accel; print(_accel.KERNEL.sha_ni)"
    env = dict(os.environ, BCAI_NO_SHANI="1")
    env.pop("BCAI_NO_ACCEL", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    env.pop("BCAI_NO_SHANI")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == str(_CPU_SHA_NI), out.stderr


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_a_compiler_without_the_intrinsics_builds_the_openssl_path(tmp_path: Path) -> None:
    """node._native retries with -DBCAI_NO_SHANI_BUILD when the first compile fails."""
    fake = tmp_path / "cc"
    fake.write_text(
        '#!/bin/sh\ncase " $* " in *" -DBCAI_NO_SHANI_BUILD "*) exec cc "$@";; esac\n'
        'echo "immintrin.h: no such file" >&2; exit 1\n'
    )
    fake.chmod(0o755)
    library = _native.build(str(fake), tmp_path / "_ctree.so")
    ffi = FFI()
    ffi.cdef(_accel._CDEF)
    kernel = _accel._Kernel(ffi, ffi.dlopen(str(library)), sha_ni=True)
    assert kernel._lib.bcai_sha_ni() == -1  # built without the SHA-NI path: OpenSSL answers
    data = os.urandom(9 * SEGMENT_SIZE + 55)
    assert kernel.tree_root(data) == chunk_root_py(data)
