"""An add without a chunk size sizes the chunks by the content (D41): a regular file by its
size, a stream by the default; an explicit size always wins."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from node.config import ConfigError, NodeConfig, config_from_dict, config_to_dict
from node.content import DEFAULT_CHUNK_SIZE
from node.store import Store

MiB = 1 << 20


def _sparse(path: Path, size: int) -> Path:
    """``size`` zero bytes that take no disk (and dedup to one chunk file in the store)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_a_100_mib_file_gets_4_mib_chunks_and_a_small_one_the_default(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", durable=False) as store:
        big = store.add_file(_sparse(tmp_path / "big", 100 * MiB))
        assert (big.chunk_size, big.chunk_count) == (4 * MiB, 25)
        small = store.add_file(_sparse(tmp_path / "small", 3 * MiB + 5))
        assert small.chunk_size == DEFAULT_CHUNK_SIZE
        assert store.verify(big.root).ok


def test_a_stream_gets_the_default_and_an_explicit_size_wins(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", durable=False) as store:
        data = os.urandom(3 * MiB)
        assert store.add_file(io.BytesIO(data)).chunk_size == DEFAULT_CHUNK_SIZE
        r, w = os.pipe()
        os.write(w, data[: 32 * 1024])  # (less than a pipe holds: nobody reads yet)
        os.close(w)
        with os.fdopen(r, "rb") as pipe:  # a pipe's size says nothing about its content
            assert store.add_file(pipe).chunk_size == DEFAULT_CHUNK_SIZE
        src = _sparse(tmp_path / "big", 100 * MiB)
        assert store.add_file(src, chunk_size=MiB).chunk_size == MiB
        # (fresh bytes each: content already complete keeps the manifest it was added with)
        assert store.add_bytes(os.urandom(MiB), chunk_size=256 * 1024).chunk_size == 256 * 1024
        assert store.add_bytes(os.urandom(2 * MiB)).chunk_size == DEFAULT_CHUNK_SIZE
        assert store.add_bytes(bytes(40 * MiB)).chunk_size == 2 * MiB


def test_config_chunk_size_is_auto_unless_set() -> None:
    assert NodeConfig().chunk_size is None  # auto
    assert config_from_dict({"node": {"chunk_size": "auto"}}).node.chunk_size is None
    assert config_from_dict({"node": {"chunk_size": "2MiB"}}).node.chunk_size == 2 * MiB
    assert "chunk_size" not in config_to_dict(config_from_dict({}))["node"]  # (TOML: no null)
    with pytest.raises(ConfigError, match="chunk_size"):
        config_from_dict({"node": {"chunk_size": "3MiB"}})
