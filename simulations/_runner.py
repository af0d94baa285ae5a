"""Run a scenario (and its sweep), aggregate per strategy, write CSV and JSON.

Files written into the output directory:

- ``epochs.csv``: one row per (epoch, strategy): money flows in USD, per-host profit,
  cumulative per-host profit, share of the epoch's rewards, challenges passed and failed.
- ``network.csv``: one row per epoch: availability (true and as the chain sees it), unmet
  demand, budget and allocated total, challenger net income.
- ``hosts.csv``: one row per host: strategy and run totals.
- ``sweep.csv``: one row per grid point (only when the scenario has a ``[sweep]``).
- ``summary.json``: parameters, per-strategy totals, network means and the sweep grid.
"""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._ledger import WEI_PER_ETH, SimLedger
from ._model import EpochRecord, Model
from ._params import STRATEGIES, Scenario, scenario_to_dict

MONEY = ("reward", "storage", "bandwidth", "gas", "slashed", "capital", "fake_cost")


@dataclass
class RunResult:
    scenario: Scenario
    strategy: np.ndarray  #: strategy index per host
    records: list[EpochRecord]

    @property
    def present(self) -> list[int]:
        return [i for i in range(len(STRATEGIES)) if (self.strategy == i).any()]

    def matrix(self, attr: str) -> np.ndarray:
        """(epochs, hosts) matrix of a per-host quantity (``profit`` included)."""
        return np.stack([np.asarray(getattr(r, attr), dtype=np.float64) for r in self.records])

    def per_host_profit(self, strategy: int) -> float:
        """Mean profit per host per epoch of a strategy, USD (nan if absent)."""
        mask = self.strategy == strategy
        if not mask.any():
            return float("nan")
        return float(self.matrix("profit")[:, mask].mean())

    def reward_share(self, strategy: int) -> float:
        rewards = self.matrix("reward")
        total = rewards.sum()
        return float(rewards[:, self.strategy == strategy].sum() / total) if total > 0 else 0.0


@dataclass
class SweepResult:
    x_param: str
    y_param: str | None
    strategy: str
    x_values: list[float]
    y_values: list[float]
    #: advantage[y][x] = strategy's mean profit per host-epoch minus honest's, USD
    advantage: list[list[float]] = field(default_factory=list)
    strategy_profit: list[list[float]] = field(default_factory=list)
    honest_profit: list[list[float]] = field(default_factory=list)
    strategy_share: list[list[float]] = field(default_factory=list)


def run_scenario(scenario: Scenario) -> RunResult:
    """Run every epoch of ``scenario`` against a fresh PayoutLedger."""
    with SimLedger() as ledger:
        model = Model(scenario, ledger)
        records = model.run()
        return RunResult(scenario, model.strategy.copy(), records)


def run_sweep(scenario: Scenario) -> SweepResult | None:
    """Re-run the scenario (with the sweep's overrides) at every grid point."""
    sw = scenario.sweep
    if sw is None:
        return None
    base = scenario.with_values(sw.overrides)
    ys: list[float | None] = list(sw.y.values) if sw.y else [None]
    target = STRATEGIES.index(sw.strategy)
    out = SweepResult(
        sw.x.param,
        sw.y.param if sw.y else None,
        sw.strategy,
        list(sw.x.values),
        [float(y) for y in ys if y is not None],
    )
    for y in ys:
        rows: dict[str, list[float]] = {"adv": [], "sp": [], "hp": [], "sh": []}
        for x in sw.x.values:
            values: dict[str, Any] = {sw.x.param: x}
            if sw.y is not None and y is not None:
                values[sw.y.param] = y
            res = run_scenario(base.with_values(values))
            sp, hp = res.per_host_profit(target), res.per_host_profit(0)
            rows["adv"].append(sp - hp)
            rows["sp"].append(sp)
            rows["hp"].append(hp)
            rows["sh"].append(res.reward_share(target))
        out.advantage.append(rows["adv"])
        out.strategy_profit.append(rows["sp"])
        out.honest_profit.append(rows["hp"])
        out.strategy_share.append(rows["sh"])
    return out


# -- aggregation and files ---------------------------------------------------------------------


def epoch_rows(res: RunResult) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    profit = res.matrix("profit")
    cum = np.cumsum(profit, axis=0)
    for t, rec in enumerate(res.records):
        total_reward = float(rec.reward.sum())
        for i in res.present:
            mask = res.strategy == i
            n = int(mask.sum())
            row: dict[str, Any] = {"epoch": t, "strategy": STRATEGIES[i], "hosts": n}
            for m in MONEY:
                row[f"{m}_usd"] = round(float(getattr(rec, m)[mask].sum()), 6)
            row["profit_usd"] = round(float(profit[t, mask].sum()), 6)
            row["profit_per_host_usd"] = round(float(profit[t, mask].mean()), 6)
            row["cum_profit_per_host_usd"] = round(float(cum[t, mask].mean()), 6)
            share = float(rec.reward[mask].sum()) / total_reward if total_reward > 0 else 0.0
            row["reward_share"] = round(share, 6)
            row["served_gib"] = round(float(rec.real_gib[mask].sum()), 3)
            row["fake_gib"] = round(float(rec.fake_gib[mask].sum()), 3)
            row["passed"] = int(rec.passed[mask].sum())
            row["failed"] = int(rec.failed[mask].sum())
            rows.append(row)
    return rows


def network_rows(res: RunResult) -> list[dict[str, Any]]:
    usd = res.scenario.economics.eth_usd / WEI_PER_ETH
    return [
        {
            "epoch": t,
            "available": round(r.available, 6),
            "claimed_available": round(r.claimed_available, 6),
            "unmet_demand": round(r.unmet, 6),
            "online_hosts": int(r.online.sum()),
            "budget_usd": round(r.budget_wei * usd, 6),
            "allocated_usd": round(r.allocated_wei * usd, 6),
            "budget_wei": r.budget_wei,
            "allocated_wei": r.allocated_wei,
            "challenger_net_usd": round(r.challenger_net, 6),
        }
        for t, r in enumerate(res.records)
    ]


def host_rows(res: RunResult) -> list[dict[str, Any]]:
    mats = {m: res.matrix(m).sum(axis=0) for m in (*MONEY, "profit", "passed", "failed")}
    return [
        {
            "host": h,
            "strategy": STRATEGIES[int(res.strategy[h])],
            **{f"{m}_usd": round(float(mats[m][h]), 6) for m in (*MONEY, "profit")},
            "passed": int(mats["passed"][h]),
            "failed": int(mats["failed"][h]),
        }
        for h in range(len(res.strategy))
    ]


def summary(res: RunResult, sweep: SweepResult | None) -> dict[str, Any]:
    epochs = len(res.records)
    profit = res.matrix("profit")
    strategies: dict[str, Any] = {}
    for i in res.present:
        mask = res.strategy == i
        strategies[STRATEGIES[i]] = {
            "hosts": int(mask.sum()),
            "profit_per_host_epoch_usd": res.per_host_profit(i),
            "cum_profit_per_host_usd": float(profit[:, mask].sum(axis=0).mean()),
            "reward_share": res.reward_share(i),
            **{f"{m}_usd": float(res.matrix(m)[:, mask].sum()) for m in MONEY},
            "challenges_passed": int(res.matrix("passed")[:, mask].sum()),
            "challenges_failed": int(res.matrix("failed")[:, mask].sum()),
        }
    net = network_rows(res)
    out: dict[str, Any] = {
        "name": res.scenario.run.name,
        "epochs": epochs,
        "parameters": scenario_to_dict(res.scenario),
        "strategies": strategies,
        "network": {
            "availability_mean": float(np.mean([r["available"] for r in net])),
            "availability_final": net[-1]["available"],
            "claimed_availability_mean": float(np.mean([r["claimed_available"] for r in net])),
            "unmet_demand_mean": float(np.mean([r["unmet_demand"] for r in net])),
            "slashed_total_usd": float(res.matrix("slashed").sum()),
            "challenger_net_total_usd": float(sum(r["challenger_net_usd"] for r in net)),
            "budget_total_usd": float(sum(r["budget_usd"] for r in net)),
            "allocated_total_usd": float(sum(r["allocated_usd"] for r in net)),
            "allocation_never_exceeds_budget": all(
                r["allocated_wei"] <= r["budget_wei"] for r in net
            ),
        },
    }
    if sweep is not None:
        out["sweep"] = sweep.__dict__
    return out


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        if not rows:
            return
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def sweep_rows(sw: SweepResult) -> list[dict[str, Any]]:
    ys: list[float | None] = list(sw.y_values) if sw.y_param else [None]
    rows = []
    for (iy, y), (ix, x) in itertools.product(enumerate(ys), enumerate(sw.x_values)):
        row: dict[str, Any] = {sw.x_param: x}
        if sw.y_param:
            row[sw.y_param] = y
        row[f"{sw.strategy}_profit_per_host_epoch_usd"] = round(sw.strategy_profit[iy][ix], 6)
        row["honest_profit_per_host_epoch_usd"] = round(sw.honest_profit[iy][ix], 6)
        row["advantage_usd"] = round(sw.advantage[iy][ix], 6)
        row[f"{sw.strategy}_reward_share"] = round(sw.strategy_share[iy][ix], 6)
        rows.append(row)
    return rows


def write_outputs(res: RunResult, sweep: SweepResult | None, out: Path) -> dict[str, Any]:
    """Write the CSV and JSON files; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "epochs.csv", epoch_rows(res))
    _write_csv(out / "network.csv", network_rows(res))
    _write_csv(out / "hosts.csv", host_rows(res))
    if sweep is not None:
        _write_csv(out / "sweep.csv", sweep_rows(sweep))
    summ = summary(res, sweep)
    (out / "summary.json").write_text(json.dumps(summ, indent=2, sort_keys=True) + "\n")
    return summ
