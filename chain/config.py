"""The ``[chain]`` table of the node's config file (``<data_dir>/config.toml``).

The store owns the file; this module only adds or replaces its own ``[chain]`` table and leaves
every other table as it found it. Writes go to a temporary file then ``os.replace``.

Keys::

    [chain]
    backend = "embedded" | "rpc"
    rpc_url = "http://127.0.0.1:8545"      # rpc only
    chain_id = 31337
    hardfork = "prague"
    anvil_pid = 1234                       # when `bcai chain up --anvil` started it
    [chain.deployment]                     # see chain.deploy.Deployment.to_dict
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from .errors import ChainUsageError

__all__ = ["CONFIG_NAME", "read_chain_config", "write_chain_config"]

CONFIG_NAME = "config.toml"


def _path(data_dir: Path) -> Path:
    return Path(data_dir) / CONFIG_NAME


def _read_all(data_dir: Path) -> dict[str, Any]:
    path = _path(data_dir)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ChainUsageError(f"{path}: not valid TOML: {exc}") from None


def read_chain_config(data_dir: Path) -> dict[str, Any] | None:
    """The ``[chain]`` table, or ``None`` if there is none."""
    table = _read_all(data_dir).get("chain")
    return dict(table) if isinstance(table, dict) else None


def write_chain_config(data_dir: Path, table: dict[str, Any]) -> Path:
    """Replace the ``[chain]`` table, keeping the rest of the file."""
    data = _read_all(data_dir)
    data["chain"] = table
    path = _path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    with open(tmp, "wb") as fh:
        tomli_w.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path
