"""`[validator] enabled = true` in config.toml turns the validator round on (serve --validator)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import load_config
from node.service import validator_enabled


@pytest.mark.parametrize(
    ("table", "enabled"),
    [
        ("", False),
        ("[validator]\n", False),
        ("[validator]\nenabled = false\n", False),
        ("[validator]\nenabled = true\n", True),
    ],
)
def test_validator_table(tmp_path: Path, table: str, enabled: bool) -> None:
    (tmp_path / "config.toml").write_text('[node]\nstore_dir = "store"\n' + table)
    assert validator_enabled(load_config(tmp_path).extra) is enabled
