"""Fixtures for the store tests: a real LevelDB and real chunk files under tmp_path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.content import MIN_CHUNK_SIZE, Manifest, hash_file
from node.store import Store

CS = MIN_CHUNK_SIZE  # 256 KiB: multi-chunk content stays small


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_path: Path) -> Iterator[Store]:
    with Store.open(store_path) as s:
        yield s


def chunk_files(store_path: Path) -> list[Path]:
    """Every chunk file on disk."""
    return sorted(p for p in (store_path / "chunks").glob("*/*") if p.is_file())


def tmp_files(store_path: Path) -> list[Path]:
    return sorted((store_path / "tmp").iterdir())


def write_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def rand(n: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes (fast for a few MiB)."""
    import random

    return random.Random(seed).randbytes(n)


def flip_byte(path: Path, offset: int = 100) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))
        f.flush()
        os.fsync(f.fileno())


def content(tmp_path: Path, n_bytes: int, seed: int = 0) -> tuple[bytes, Manifest, list[bytes]]:
    """Random content of ``n_bytes``: its bytes, manifest (chunk size CS) and chunk roots."""
    data = rand(n_bytes, seed)
    src = write_file(tmp_path / f"src{seed}", data)
    res = hash_file(src, chunk_size=CS, collect_roots=True)
    assert res.chunk_roots is not None
    return data, Manifest(root=res.root, size=len(data), chunk_size=CS), res.chunk_roots


def chunk_of(data: bytes, i: int) -> bytes:
    """Bytes of chunk ``i`` (chunk size CS)."""
    return data[i * CS : (i + 1) * CS]
