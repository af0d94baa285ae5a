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

#: The deployment defaults agreed for issue 8 (docs/incentives.md, /tmp interface list). Used
#: only for a field ``DeployParams`` does not have yet; every such use is listed in the
#: summary's ``parameters.protocol_fallbacks`` so a result never hides it.
DOCUMENTED_DEFAULTS: dict[str, int] = {
    "epoch_length": 86400,
    "min_price_per_gib": 10**15,
    "receipt_fee_bps": 1000,
    "escrow_withdraw_delay": 3 * 86400,
    "min_stake": 10**16,
    "challenge_bond": 10**15,
    "challenge_reward": 5 * 10**14,
    "response_window": 600,
    "exit_delay": 3 * 86400,
    "period_blocks": 7200,
    "due_bps": 2500,
    "samples": 20,
    "fault_slash_bps": 100,
    "proof_slash_bps": 5000,
    "max_faults": 3,
    "storage_rate_per_gib_day": 10**13,
    "storage_fee_bps": 1000,
    "rebate_bps": 5000,
    "claim_window": 30 * 86400,
    "data_shards": 4,
    "slot_count": 8,
}

PROTOCOL_KEYS: tuple[str, ...] = tuple(DOCUMENTED_DEFAULTS)


def protocol_defaults() -> tuple[dict[str, int], list[str]]:
    """``(params, fallbacks)``: the deployment defaults from the product, and the names that
    had to come from :data:`DOCUMENTED_DEFAULTS` because the product does not define them."""
    import node.content as content
    from chain.deploy import DeployParams

    deploy = DeployParams()
    have = {f.name for f in dataclasses.fields(deploy)}
    out: dict[str, int] = {}
    fallbacks: list[str] = []
    for key, documented in DOCUMENTED_DEFAULTS.items():
        if key == "data_shards":
            value: Any = getattr(content, "DEFAULT_DATA_SHARDS", None)
        elif key == "slot_count":
            value = getattr(content, "DEFAULT_SLOT_COUNT", None)
        else:
            value = getattr(deploy, key) if key in have else None
        if value is None:
            fallbacks.append(key)
            value = documented
        out[key] = int(value)
    return out, fallbacks


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
