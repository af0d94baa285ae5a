"""Incentive model tests: small scenarios (a second or so each) that assert outcomes that
could go either way, including one where the contract parameters fail to deter cheating."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations import (
    STRATEGIES,
    ScenarioError,
    load_scenario,
    main,
    run_scenario,
    scenario_from_dict,
)
from simulations._cli import bundled_scenarios
from simulations._ledger import SimLedger
from simulations._strategies import farm_best_response

HONEST, DELETER, FREE_RIDER, SYBIL, INTERMITTENT = range(5)

SMALL = {
    "run": {"name": "small", "seed": 7, "epochs": 12},
    "network": {
        "hosts": 100,
        "roots": 120,
        "roots_per_host": 10,
        "clients": 10,
        "requests_per_epoch": 300,
    },
    "sybil": {"fee_usd_per_gib": 1.0},
}


def small(**sections: dict) -> dict:
    out = {k: dict(v) for k, v in SMALL.items()}
    for name, values in sections.items():
        out.setdefault(name, {}).update(values)
    return out


def test_same_seed_same_result_and_other_seed_differs() -> None:
    s = scenario_from_dict(small())
    a, b = run_scenario(s), run_scenario(s)
    assert np.array_equal(a.strategy, b.strategy)
    for m in ("profit", "reward", "slashed", "real_gib"):
        assert np.array_equal(a.matrix(m), b.matrix(m)), m
    c = run_scenario(s.with_values({"run.seed": 8}))
    assert not np.array_equal(a.matrix("reward"), c.matrix("reward"))


def test_baseline_parameters_make_honesty_pay_best() -> None:
    base = load_scenario(bundled_scenarios()["baseline"])
    s = base.with_values(
        {
            "run.epochs": 15,
            "network.hosts": 120,
            "network.clients": 10,
            "network.requests_per_epoch": 400,
        }
    )
    res = run_scenario(s)
    honest = res.per_host_profit(HONEST)
    assert honest > 0
    assert honest > res.per_host_profit(DELETER)
    assert honest > res.per_host_profit(FREE_RIDER)


def test_without_challenges_deleting_pays() -> None:
    """The model can say no: with no challenges, dropping cold content beats storing it."""
    mix = {"honest": 0.5, "deleter": 0.5, "free_rider": 0, "sybil": 0, "intermittent": 0}
    econ = {"challenge_rate": 0.0, "storage_usd_per_gib_epoch": 0.003, "epoch_budget_usd": 150.0}
    res = run_scenario(
        scenario_from_dict(small(mix=mix, economics=econ, behaviour={"deleter_drop": 0.8}))
    )
    assert res.per_host_profit(DELETER) > res.per_host_profit(HONEST)
    assert res.matrix("slashed").sum() == 0
    # ... and the same cheat under challenges loses.
    res2 = run_scenario(
        scenario_from_dict(
            small(
                mix=mix, economics={**econ, "challenge_rate": 0.1}, behaviour={"deleter_drop": 0.8}
            )
        )
    )
    assert res2.per_host_profit(DELETER) < res2.per_host_profit(HONEST)


def test_unpriced_receipts_let_a_farmer_take_the_budget_and_a_fee_stops_it() -> None:
    mix = {"honest": 0.9, "deleter": 0, "free_rider": 0, "sybil": 0.1, "intermittent": 0}
    free = run_scenario(scenario_from_dict(small(mix=mix, sybil={"fee_usd_per_gib": 0.0})))
    assert free.reward_share(SYBIL) > 0.8
    assert free.per_host_profit(SYBIL) > free.per_host_profit(HONEST)
    fee = run_scenario(scenario_from_dict(small(mix=mix, sybil={"fee_usd_per_gib": 1.0})))
    assert fee.matrix("fake_gib").sum() == 0
    assert fee.reward_share(SYBIL) < 0.2


def test_allocation_never_exceeds_budget_and_spends_it() -> None:
    res = run_scenario(scenario_from_dict(small(sybil={"fee_usd_per_gib": 0.0})))
    for rec in res.records:
        assert 0 < rec.allocated_wei <= rec.budget_wei
        assert rec.budget_wei - rec.allocated_wei < res.scenario.network.hosts  # dust only


@settings(max_examples=25, deadline=None)
@given(
    budget=st.floats(0, 1e6),
    others=st.floats(0, 1e9),
    own=st.floats(0, 1e6),
    cost=st.floats(0, 10),
    cap=st.floats(0, 1e9),
)
def test_farm_best_response_is_a_maximum(budget, others, own, cost, cap) -> None:
    x = farm_best_response(budget, others, own, cost, cap)
    assert 0 <= x <= cap

    def profit(v: float) -> float:
        return budget * (own + v) / (others + own + v) - cost * v if others + own + v else 0.0

    if others > 0:
        for v in (0.0, cap, x * 0.5, min(cap, x * 1.5 + 1)):
            assert profit(x) >= profit(v) - 1e-6 * max(1.0, budget)


def test_ledger_is_the_products(tmp_path: Path) -> None:
    with SimLedger() as led:
        real = np.array([100, 300, 0], dtype=np.int64)
        zero = np.zeros(3, dtype=np.int64)
        led.record_epoch(5, real, zero, np.array([1, 0, 0]), np.array([0, 1, 0]))
        alloc, dense = led.allocate(5, 1000, 3)
        # weights: 100 * 2/2 = 100 and 300 * 1/3 = 100 -> an even split
        assert dense == [500, 500, 0]
        assert alloc.total == 1000


def test_cli_writes_csv_json_and_valid_pngs(tmp_path: Path) -> None:
    scen = tmp_path / "s.toml"
    scen.write_text(
        "[run]\nname='cli'\nepochs=4\n[network]\nhosts=40\nroots=40\nroots_per_host=5\n"
        "clients=5\nrequests_per_epoch=80\n"
        "[sweep]\nx={param='economics.slash_bps', values=[0, 1000]}\n"
        "y={param='economics.challenge_rate', values=[0, 0.2]}\n"
        "[sweep.overrides]\n'run.epochs'=3\n"
    )
    out = tmp_path / "out"
    assert main(["run", str(scen), "--out", str(out)], stdout=io.StringIO()) == 0
    for name in ("epochs.csv", "network.csv", "hosts.csv", "sweep.csv", "summary.json"):
        assert (out / name).stat().st_size > 0
    for name in ("profit", "share", "availability", "slashing", "sweep"):
        data = (out / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert width > 300 and height > 200
    assert (out / "sweep.csv").read_text().count("\n") == 5


def test_bad_scenarios_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="unknown key"):
        scenario_from_dict({"economics": {"slash_bp": 10}})
    with pytest.raises(ScenarioError, match="slash_bps"):
        scenario_from_dict({"economics": {"slash_bps": 20_000}})
    with pytest.raises(ScenarioError, match="unknown table"):
        scenario_from_dict({"economy": {}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\n")
    assert main(["run", str(bad), "--out", str(tmp_path)], stderr=io.StringIO()) == 2


def test_bundled_scenarios_load() -> None:
    names = bundled_scenarios()
    assert {"baseline", "high-cheaters", "low-stake", "sybil"} <= set(names)
    for path in names.values():
        assert load_scenario(path).run.epochs >= 1
    assert len(STRATEGIES) == 5
