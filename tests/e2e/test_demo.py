"""The README's main job as a test: the whole product end to end (embedded chain and anvil)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.anvil import anvil_binary, start_anvil
from node.service.demo import run_demo

SIZE = 6 * 1024 * 1024 + 4097  # 7 chunks, the last one short


def _assert_consistent(summary: dict) -> None:
    # What the nodes moved is exactly what the chain credited, and every byte was paid for.
    moved: dict[str, int] = {}
    for t in summary["transfers"]:
        assert t["bytes"] == SIZE
        for name, p in t["providers"].items():
            moved[name] = moved.get(name, 0) + p["bytes"]
            # A source that ended up serving nothing (multi-source) signs no receipt.
            assert (p["receipts"] > 0) == (p["bytes"] > 0)
            assert p["billed_bytes"] == p["bytes"]
            assert p["paid"] * 2**30 >= p["bytes"] * summary["chain"]["params"]["min_price_per_gib"]
    on_chain = summary["receipts"]["on_chain"]
    moved = {k: v for k, v in moved.items() if v}
    assert {k: v["served_bytes"] for k, v in on_chain.items() if v["served_bytes"]} == moved
    for row in on_chain.values():
        assert row["earnings"] == row["payments"] - row["fees"]
        # receiptFeeBps = 10%, floored per receipt
        assert row["payments"] // 10 - row["receipts"] <= row["fees"] <= row["payments"] // 10
    hosting = summary["hosting"]
    stake = 10**18 // 2
    assert hosting["alice"]["stake_wei"] == stake and hosting["alice"]["outcome"] == "passed"
    assert hosting["bob"]["slashed_wei"] == stake * 100 // 10_000  # a fault: faultSlashBps
    assert hosting["carol"]["slashed_wei"] == stake * 5000 // 10_000  # deletion evidence
    assert hosting["carol"]["terminated"] and hosting["available"]
    assert [f["verdict"] for f in summary["forged_receipts"]] == [
        "RootNotRegistered",
        "ExceedsSize",
    ]
    rewards = summary["rewards"]
    assert sum(rewards["claimed_wei"].values()) == rewards["paid_wei"] <= rewards["funded_wei"]
    assert "carol" not in rewards["allocation_wei"]
    for name, amount in rewards["allocation_wei"].items():
        assert 0 < amount <= rewards["fee_cap_wei"][name]
    assert rewards["reputation"]["carol"]["disqualified"]


async def test_demo_on_embedded_chain(tmp_path: Path) -> None:
    result = await run_demo(tmp_path, size=SIZE)
    assert result.ok, [c for c in result.checks if not c[1]]
    assert len(result.checks) >= 29
    assert result.summary["elapsed_s"] < 120
    _assert_consistent(result.summary)


@pytest.mark.anvil
@pytest.mark.skipif(anvil_binary() is None, reason="anvil binary not installed (npm ci)")
async def test_demo_on_anvil(tmp_path: Path) -> None:
    proc = start_anvil(log_dir=tmp_path / "anvil")
    try:
        result = await run_demo(tmp_path / "nodes", size=SIZE, rpc=proc.url)
    finally:
        proc.stop()
    assert result.ok, [c for c in result.checks if not c[1]]
    assert result.summary["chain"]["chain_id"] == 31337
    _assert_consistent(result.summary)
