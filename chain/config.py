"""The ``[chain]`` table of the node's config file (``<data_dir>/config.toml``).

The store owns the file; this module only adds or replaces its own ``[chain]`` table and leaves
every other table as it found it. Writes go to a temporary file then ``os.replace``.

Keys (compatible with ``node.config.ChainConfig``: ``rpc``, ``chain_id`` and ``contracts`` are
its fields; the rest it keeps verbatim in ``extra``)::

    [chain]
    rpc = "embedded" | "http://127.0.0.1:8545"
    chain_id = 31337
    hardfork = "prague"
    anvil_pid = 1234                       # when `bcai chain up --anvil` started it
    anvil_log = "/path/anvil.log"
    anvil_state = "/path/anvil/state.json"  # the chain between `chain down` and `chain up --anvil`
    block_time = 1                         # seconds between anvil's blocks (0: on demand)
    [chain.contracts]                      # name = address
    ContentRegistry = "0x..."  TransferReceipts = "0x..."  DataAvailability = "0x..."
    HostingRewards = "0x..."  HostDirectory = "0x..."
    [chain.deployment]                     # chain.deploy.Deployment.to_dict()
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from node._fs import atomic_write

from .deploy import Deployment
from .errors import ChainUsageError, DeploymentMissing

__all__ = [
    "CONFIG_NAME",
    "chain_table",
    "load_deployment",
    "read_chain_config",
    "write_chain_config",
]

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
    atomic_write(path, tomli_w.dumps(data).encode())
    return path


def chain_table(deployment: Deployment, rpc: str, **extra: Any) -> dict[str, Any]:
    """The ``[chain]`` table describing ``deployment`` reached through ``rpc``."""
    table: dict[str, Any] = {
        "rpc": rpc,
        "chain_id": deployment.chain_id,
        "contracts": deployment.contracts(),
        "deployment": deployment.to_dict(),
    }
    table.update({k: v for k, v in extra.items() if v is not None})
    return table


def load_deployment(data_dir: Path) -> tuple[Deployment, dict[str, Any]]:
    """The configured deployment and the whole ``[chain]`` table."""
    table = read_chain_config(data_dir)
    if not table or "deployment" not in table:
        raise DeploymentMissing(
            f"no deployment in {_path(data_dir)}; run `bcai chain up` or `bcai chain deploy`"
        )
    return Deployment.from_dict(table["deployment"]), table
