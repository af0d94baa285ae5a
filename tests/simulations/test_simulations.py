"""Simulation tests: small scenarios (a second or so each) asserting outcomes that could go
either way, the product's rules and defaults really being the ones used, and the CLI's files."""

from __future__ import annotations

import dataclasses
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from chain.deploy import DeployParams
from node.content import DEFAULT_DATA_SHARDS, DEFAULT_SLOT_COUNT, draw_sample_indices
from simulations import (
    NAMES,
    Model,
    ScenarioError,
    load_scenario,
    main,
    run_seeds,
    scenario_from_dict,
    summary,
)
from simulations._cli import bundled_scenarios
from simulations._model import CATEGORIES, _lost
from simulations._runner import resolve
from simulations._stats import mean_ci95, t975

SMALL = bundled_scenarios()["small"]


@pytest.fixture(scope="module")
def small_summary() -> dict:
    res = run_seeds(load_scenario(SMALL), seeds=4, workers=1)
    return summary(res)


def test_protocol_is_the_deployment_default() -> None:
    setup = resolve(load_scenario(SMALL))
    deploy = DeployParams()
    for f in dataclasses.fields(deploy):
        if f.name in setup.protocol:
            assert setup.protocol[f.name] == getattr(deploy, f.name), f.name
    assert setup.protocol["data_shards"] == DEFAULT_DATA_SHARDS
    assert setup.protocol["slot_count"] == DEFAULT_SLOT_COUNT
    assert setup.overridden == ()  # the small scenario runs the deployment as is
    over = resolve(scenario_from_dict({"protocol": {"due_bps": 10_000}}))
    assert over.protocol["due_bps"] == 10_000


def test_same_seed_same_numbers_other_seed_differs() -> None:
    sc = load_scenario(SMALL)
    setup = resolve(sc)
    a = Model(sc, setup.protocol, setup.fetch_unit, 5).run()
    b = Model(sc, setup.protocol, setup.fetch_unit, 5).run()
    c = Model(sc, setup.protocol, setup.fetch_unit, 6).run()
    assert np.array_equal(a.money, b.money) and np.array_equal(a.counts, b.counts)
    assert a.network == b.network
    assert not np.array_equal(a.money, c.money)


def test_parallel_equals_serial() -> None:
    sc = load_scenario(SMALL).with_values({"run.epochs": 4})
    one = run_seeds(sc, seeds=2, workers=1)
    two = run_seeds(sc, seeds=2, workers=2)
    assert np.array_equal(one.money(), two.money())


def test_summary_schema_and_intervals(small_summary: dict) -> None:
    strategies = small_summary["strategies"]
    assert set(strategies) == set(NAMES)  # the small scenario has every strategy
    for name, s in strategies.items():
        lo, hi = s["roi_ci95"]
        assert isinstance(s["roi_mean"], float)
        assert lo <= s["roi_mean"] <= hi, name
        assert len(s["roi_per_seed"]) == 4
        assert s["roi_mean"] == pytest.approx(np.mean(s["roi_per_seed"]))
    json.dumps(small_summary)  # plain data


def test_honest_beats_the_attacks_on_a_small_scenario(small_summary: dict) -> None:
    strategies = small_summary["strategies"]
    honest_lo = strategies["honest"]["roi_ci95"][0]
    for name in ("sybil-ring", "outsourcer", "free-rider", "lazy-50"):
        assert strategies[name]["roi_ci95"][1] < honest_lo, name
    # every commitment is due every period at the defaults: its one challenge per period is the
    # scheduled one, so self-challengers and griefers have nothing to challenge (honest hosts)
    assert small_summary["checks"]["inert"] == ["self-challenger", "challenge-griefer"]
    # the ring pays more than it gets back: ROI below 1 (it loses money), whatever the subsidy
    assert strategies["sybil-ring"]["roi_ci95"][1] < 1.0
    assert strategies["free-rider"]["roi_mean"] == 0.0


def test_griefing_loses_when_some_slots_are_not_due() -> None:
    """With a quarter of slots due, the rest can be griefed: the griefer loses its bonds."""
    sc = load_scenario(bundled_scenarios()["challenge-games"]).with_values(
        {"protocol.due_bps": 2500, "run.epochs": 8, "run.hosts": 80}
    )
    summ = summary(run_seeds(sc, seeds=3, workers=1))
    st = summ["strategies"]
    assert summ["checks"]["inert"] == []
    assert st["challenge-griefer"]["roi_ci95"][1] < st["honest"]["roi_ci95"][0]
    assert st["challenge-griefer"]["revenue_usd_per_host_day"]["bonds_received"] == 0.0
    assert st["honest"]["revenue_usd_per_host_day"]["bonds_received"] > 0.0


def test_lazy5_loses_more_than_it_saves(small_summary: dict) -> None:
    lazy = small_summary["checks"]["lazy5"]
    assert lazy["storage_saved_usd_per_host_day"] > 0
    assert lazy["lost_usd_per_host_day"] > lazy["storage_saved_usd_per_host_day"]


def test_subsidy_never_exceeds_the_fee_rebate_nor_the_budget() -> None:
    sc = load_scenario(SMALL).with_values({"market.rewards_eth_per_host_day": 1.0})
    res = run_seeds(sc, seeds=2, workers=1)
    money = res.money()  # (seeds, epochs, strategies, categories)
    rebate = res.setup.protocol["rebate_bps"] / 10_000
    subsidy = money[..., CATEGORIES.index("subsidy")]
    fees = money[..., CATEGORIES.index("fees")]
    assert (subsidy <= rebate * fees * (1 + 1e-9) + 1e-12).all()
    assert subsidy.sum() > 0
    for r in res.results:
        assert r.network["allocated_eth"] <= r.network["budget_eth"]


def test_detection_uses_the_products_draw() -> None:
    """Rows lost with the model's hole pattern, sampled with the product's draw: the failure
    rate matches 1 - (1 - x)^S (the figure the summary and docs report)."""
    rng = np.random.default_rng(3)
    rows, S, x, trials = 40_000, 20, 0.05, 3000
    salt = np.uint64(12345)
    lost_fraction = _lost(salt, np.arange(rows, dtype=np.uint64), x).mean()
    assert lost_fraction == pytest.approx(x, abs=0.005)
    fails = 0
    for cid in range(trials):
        idx = draw_sample_indices(rng.bytes(32), cid, S, rows)
        fails += bool(_lost(salt, np.asarray(idx, dtype=np.uint64), x).any())
    expected = 1 - (1 - x) ** S
    sd = (expected * (1 - expected) / trials) ** 0.5
    assert abs(fails / trials - expected) < 4 * sd


def test_detection_table_meets_the_per_proof_target(small_summary: dict) -> None:
    det = small_summary["detection"]
    assert det["samples"] == DeployParams().samples
    assert det["per_proof_at_half_lost"] == pytest.approx(1 - 0.5 ** det["samples"])
    assert det["per_proof_meets_1e-6"] is True
    # a slot is challenged only when due: per period it is caught with dueBps/10^4 of that
    assert det["per_period_at_half_lost"] == pytest.approx(
        det["due_bps"] / 10_000 * det["per_proof_at_half_lost"]
    )
    # at the defaults (every slot due every period) that is met within one period, and the
    # model's own challenges agree: a host missing half its rows fails every period it is up
    assert det["per_period_meets_1e-6"] is True
    lazy50 = small_summary["strategies"]["lazy-50"]
    assert lazy50["detection_per_period_observed"] == 1.0
    lazy5 = small_summary["strategies"]["lazy-5"]
    assert lazy5["detection_per_period_observed"] == pytest.approx(1 - 0.95**20, abs=0.1)


@pytest.mark.parametrize(
    ("fetch_unit", "serving_copy", "outsourcer_wins"),
    [(0, 0, False), (0, 1, True), (4096, 0, True)],
)
def test_storage_only_market_and_the_outsourcer(
    fetch_unit: int, serving_copy: int, outsourcer_wins: bool
) -> None:
    """The model can say no: with no downloads, rebuilding sampled rows on demand beats storing
    when one host's plain copy serves a row in one 1 MiB chunk, or when 4 KiB segments can be
    fetched; with hosts keeping only their slots and 1 MiB chunks (K per row) it does not."""
    sc = load_scenario(bundled_scenarios()["storage-only"]).with_values(
        {
            "run.epochs": 8,
            "run.hosts": 80,
            "market.fetch_unit_bytes": fetch_unit,
            "market.serving_copy": serving_copy,
            "mix.lazy-5-cold": 0,
            "mix.free-rider": 0,
            "mix.outsourcer": 0.25,
        }
    )
    s = summary(run_seeds(sc, seeds=3, workers=1))["strategies"]
    assert (s["outsourcer"]["roi_mean"] > s["honest"]["roi_mean"]) is outsourcer_wins


def test_t_interval() -> None:
    assert t975(9) == pytest.approx(2.262)
    assert t975(200) == pytest.approx(1.972, abs=1e-3)
    mean, lo, hi = mean_ci95([1.0, 2.0, 3.0, 4.0])
    assert mean - lo == pytest.approx(hi - mean)
    assert mean == 2.5
    assert hi - mean == pytest.approx(3.182 * np.std([1, 2, 3, 4], ddof=1) / 2)
    assert mean_ci95([5.0]) == (5.0, 5.0, 5.0)


def test_cli_writes_summary_csv_and_pngs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["run", "small", "--seeds", "2", "--epochs", "3", "--workers", "1", "--out", str(out)]
    assert main(argv, stdout=io.StringIO()) == 0
    summ = json.loads((out / "summary.json").read_text())
    assert summ["strategies"]["honest"]["roi_ci95"][0] <= summ["strategies"]["honest"]["roi_mean"]
    assert summ["seeds"] == [1, 2]
    assert (out / "epochs.csv").read_text().count("\n") == 1 + 3 * len(NAMES)
    for name in ("roi", "profit", "detection"):
        data = (out / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert width > 300 and height > 200
    listing = io.StringIO()
    assert main(["list"], stdout=listing) == 0
    assert {"baseline", "scale", "small", "evm-small"} <= {
        line.split("\t")[0] for line in listing.getvalue().splitlines()
    }


def test_bad_scenarios_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="unknown key"):
        scenario_from_dict({"market": {"eth_usdd": 1}})
    with pytest.raises(ScenarioError, match="protocol"):
        scenario_from_dict({"protocol": {"slash_bps": 10}})
    with pytest.raises(ScenarioError, match="unknown strateg"):
        scenario_from_dict({"mix": {"honest": 1, "cheater": 1}})
    with pytest.raises(ScenarioError, match="honest"):
        scenario_from_dict({"mix": {"lazy-5": 1}})
    with pytest.raises(ScenarioError, match="unknown table"):
        scenario_from_dict({"economy": {}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\n")
    err = io.StringIO()
    assert main(["run", str(bad), "--out", str(tmp_path)], stderr=err) == 2
    assert main(["run", "small", "--set", "nonsense", "--out", str(tmp_path)], stderr=err) == 2
    too_few = ["run", "small", "--hosts", "10", "--set", "protocol.slot_count=16", "--workers", "1"]
    assert main([*too_few, "--out", str(tmp_path)], stderr=err) == 2
    assert "distinct hosts" in err.getvalue()


def test_bundled_scenarios_load() -> None:
    names = bundled_scenarios()
    assert {"baseline", "scale", "sybil-ring", "outsourcer", "small"} <= set(names)
    for path in names.values():
        sc = load_scenario(path)
        assert sc.run.epochs >= 1 and "honest" in sc.fractions()
    scale = load_scenario(names["scale"])
    assert (scale.run.hosts, scale.run.epochs) == (1000, 100)


@pytest.mark.slow
def test_evm_in_the_loop_agrees_with_the_model(tmp_path: Path) -> None:
    """A tiny world (8 hosts, one root, 2 epochs, every slot due every period, as deployed) on
    the real contracts: the chain's slashes, storage payments, fees, reputations and
    allocations are the model's, and the free-rider is slashed."""
    from simulations._evm import run_evm

    sc = load_scenario(bundled_scenarios()["evm-small"]).with_values(
        {
            "run.hosts": 8,
            "run.slots_per_host": 1,
            "run.epochs": 2,
            "run.seeds": 4,
            "mix.lazy-50": 0,
            "mix.flaky-30": 0,
            "mix.sybil-ring": 0,
            "mix.outsourcer": 0,
            "mix.self-challenger": 0,
            "mix.challenge-griefer": 0,
            "mix.free-rider": 1,
        }
    )
    report = run_evm(sc, tmp_path, seed=3)
    failed = [c for c in report.checks if not c["ok"]]
    assert not failed, failed
    assert report.strategies["free-rider"]["chain_usd"]["slashed"] > 0
    assert report.strategies["honest"]["chain_usd"]["storage_pay"] > 0
    assert report.strategies["honest"]["chain_usd"]["subsidy"] > 0
    assert report.gas["respond"]["n"] >= 8
    assert json.loads((tmp_path / "evm.json").read_text())["agrees"] is True


def test_plots_say_what_they_claim(small_summary: dict) -> None:
    """Each legend entry, band and tick label has the colour of the strategy it names."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    from simulations._plots import profit_figure, roi_figure
    from simulations._strategies import COLORS, STRATEGIES

    by_title = {st.title: name for name, st in STRATEGIES.items()}
    res = run_seeds(load_scenario(SMALL).with_values({"run.epochs": 3}), seeds=2, workers=1)
    fig = profit_figure(res)
    ax = fig.axes[0]
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert sorted(by_title[t] for t in labels) == sorted(res.strategies)
    for text, handle in zip(labels, legend.legend_handles, strict=True):
        assert to_hex(handle.get_color()) == COLORS[by_title[text]]
    for line, band in zip(ax.get_lines(), ax.collections, strict=False):
        name = by_title[line.get_label()]
        assert to_hex(band.get_facecolor()[0]) == COLORS[name]  # the band is the line's
    plt.close(fig)
    fig = roi_figure(small_summary)
    ticks = fig.axes[0].get_yticklabels()
    assert len(ticks) == len(small_summary["strategies"])
    for tick in ticks:
        name = by_title[tick.get_text().rsplit(" (", 1)[0]]
        assert to_hex(tick.get_color()) == COLORS[name]
    plt.close(fig)
