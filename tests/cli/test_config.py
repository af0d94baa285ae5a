"""config.toml: typed tables, sizes, unknown tables and keys survive a save."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import Config, ConfigError, load_config, parse_size, save_config


@pytest.mark.parametrize(
    ("text", "n"),
    [
        (1024, 1024),
        ("1024", 1024),
        ("50GiB", 50 << 30),
        ("512 MiB", 512 << 20),
        ("10M", 10 << 20),
        ("1.5k", 1536),
        ("2GB", 2 * 10**9),
    ],
)
def test_parse_size(text: int | str, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("bad", ["", "ten", "5 XB", -1, True, "1.2.3G"])
def test_parse_size_rejects(bad: int | str) -> None:
    with pytest.raises(ConfigError):
        parse_size(bad)


def test_defaults_when_missing(tmp_path: Path) -> None:
    cfg = load_config(tmp_path)
    assert cfg == Config()
    assert cfg.store_path(tmp_path) == tmp_path / "store"


def test_unknown_tables_and_keys_are_kept(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[node]\ncache_quota = "2GiB"\nfuture_knob = 3\n'
        '[network]\nlimit_rate = "10M"\npeers = ["127.0.0.1:7000"]\n'
        '[chain]\nrpc = "http://127.0.0.1:8545"\nchain_id = 31337\n'
        '[chain.contracts]\nregistry = "0x0000000000000000000000000000000000000001"\n'
        '[ledger]\nhalf_life = "7d"\n'
    )
    cfg = load_config(tmp_path)
    assert cfg.node.cache_quota == 2 << 30 and cfg.node.extra == {"future_knob": 3}
    assert cfg.network.limit_rate == 10 << 20 and cfg.network.peers == ["127.0.0.1:7000"]
    assert cfg.chain.chain_id == 31337 and "registry" in cfg.chain.contracts
    assert cfg.extra == {"ledger": {"half_life": "7d"}}
    cfg.node.chunk_size = 2 << 20
    save_config(tmp_path, cfg)
    again = load_config(tmp_path)
    assert again == cfg


def test_invalid_values(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[node]\nchunk_size = 1000\n")
    with pytest.raises(ConfigError, match="chunk_size"):
        load_config(tmp_path)
    (tmp_path / "config.toml").write_text("[node\n")
    with pytest.raises(ConfigError):
        load_config(tmp_path)
