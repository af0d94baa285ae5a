"""The product's rules and deployment defaults, imported (never re-implemented here).

- Protocol parameters: ``chain.deploy.DeployParams()`` (what ``bcai chain deploy`` deploys) and
  ``node.content.DEFAULT_DATA_SHARDS`` / ``DEFAULT_SLOT_COUNT`` (K and N of every root).
- Reputation and allocation: ``node.ledger.update_reputation``, ``allocate_amounts``,
  ``Reputation``, ``ReputationParams``, ``RewardParams`` (docs/incentives.md §4).
- Sample draw: ``node.content.draw_sample_indices`` draws the rows of every proof of a host
  that lost part of its slot (``S`` indices uniform over the slot's rows, with repetition, so it
  survives with probability ``(1 - x) ** S``; the summary reports the observed rate next to it).

Imports are lazy: ``chain.deploy`` pulls in web3 (about a second), and worker processes only
need the plain numbers, which :func:`protocol_defaults` reads once in the parent.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ._errors import SimulationError


class ProductMismatch(SimulationError):
    """The product does not define a rule or parameter the model imports."""


#: The protocol parameters the model reads, by their ``DeployParams`` field names (plus K and N
#: from ``node.content``). Values come only from the product; a missing one is an error.
PROTOCOL_KEYS: tuple[str, ...] = (
    "epoch_length",
    "min_price_per_gib",
    "receipt_fee_bps",
    "escrow_withdraw_delay",
    "min_stake",
    "challenge_bond",
    "challenge_reward",
    "response_window",
    "exit_delay",
    "period_blocks",
    "due_bps",
    "samples",
    "fault_slash_bps",
    "proof_slash_bps",
    "max_faults",
    "storage_rate_per_gib_day",
    "storage_fee_bps",
    "rebate_bps",
    "claim_window",
    "data_shards",
    "slot_count",
)


def protocol_defaults() -> dict[str, int]:
    """The deployment defaults, read from the product (``chain.deploy.DeployParams()`` and
    ``node.content``); :class:`ProductMismatch` if the product lacks one the model needs."""
    import node.content as content
    from chain.deploy import DeployParams

    deploy = DeployParams()
    have = {f.name for f in dataclasses.fields(deploy)}
    out: dict[str, int] = {}
    for key in PROTOCOL_KEYS:
        if key == "data_shards":
            value: Any = getattr(content, "DEFAULT_DATA_SHARDS", None)
        elif key == "slot_count":
            value = getattr(content, "DEFAULT_SLOT_COUNT", None)
        else:
            value = getattr(deploy, key) if key in have else None
        if value is None:
            raise ProductMismatch(f"the product defines no default for {key!r}")
        out[key] = int(value)
    return out


def chunk_size_default() -> int:
    """The transfer protocol's default chunk size (the unit a receiver fetches and pays for)."""
    from node.content import DEFAULT_CHUNK_SIZE

    return int(DEFAULT_CHUNK_SIZE)


def sample_draw() -> Any:
    """``node.content.draw_sample_indices``: the contract's draw of a proof's sample rows."""
    from node.content import draw_sample_indices

    return draw_sample_indices


def ledger_rules() -> Any:
    """The ``node.ledger`` module (reputation and allocation functions)."""
    import node.ledger as ledger

    return ledger
