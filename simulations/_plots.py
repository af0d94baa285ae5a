"""Matplotlib figures (Agg backend, no display needed), one PNG per question.

- ``profit.png``: cumulative profit per host, by strategy.
- ``share.png``: share of each epoch's rewards, by strategy (stacked).
- ``availability.png``: roots with >= k whole, online, serving replicas vs what the chain's
  committed-host count suggests, and unmet demand.
- ``slashing.png``: cumulative stake slashed, by strategy.
- ``sweep.png``: heat map of the swept strategy's profit advantage over honest (2-D sweep) or
  a line of it (1-D sweep).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm

from ._params import STRATEGIES
from ._runner import RunResult, SweepResult

COLORS = {
    "honest": "#1b9e77",
    "deleter": "#d95f02",
    "free_rider": "#7570b3",
    "sybil": "#e7298a",
    "intermittent": "#66a61e",
}
LABELS = {
    "honest": "honest",
    "deleter": "deleter (lazy)",
    "free_rider": "free-rider",
    "sybil": "sybil receipt farmer",
    "intermittent": "intermittent",
}
DPI = 90


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _cumulative_lines(res: RunResult, metric: str, per_strategy: str) -> tuple[Any, Any]:
    """A figure with one line per strategy: the cumulative ``metric`` over epochs, averaged
    (``per_strategy="mean"``, per host) or summed (``"sum"``) over that strategy's hosts."""
    cum = np.cumsum(res.matrix(metric), axis=0)
    epochs = np.arange(1, cum.shape[0] + 1)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i in res.present:
        name = STRATEGIES[i]
        ax.plot(
            epochs,
            getattr(cum[:, res.strategy == i], per_strategy)(axis=1),
            label=LABELS[name],
            color=COLORS[name],
            lw=2,
        )
    return fig, ax


def plot_profit(res: RunResult, path: Path) -> Path:
    fig, ax = _cumulative_lines(res, "profit", "mean")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("epoch (day)")
    ax.set_ylabel("cumulative profit per host (USD)")
    ax.set_title(f"{res.scenario.run.name}: cumulative profit per host by strategy")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_share(res: RunResult, path: Path) -> Path:
    rewards = res.matrix("reward")
    totals = rewards.sum(axis=1)
    totals[totals == 0] = 1.0
    epochs = np.arange(1, rewards.shape[0] + 1)
    names = [STRATEGIES[i] for i in res.present]
    shares = [rewards[:, res.strategy == i].sum(axis=1) / totals for i in res.present]
    hosts = [int((res.strategy == i).sum()) for i in res.present]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.stackplot(
        epochs,
        shares,
        colors=[COLORS[n] for n in names],
        labels=[f"{LABELS[n]} ({h} hosts)" for n, h in zip(names, hosts, strict=True)],
    )
    ax.set_ylim(0, 1)
    ax.set_xlim(epochs[0], epochs[-1])
    ax.set_xlabel("epoch (day)")
    ax.set_ylabel("share of epoch rewards")
    ax.set_title(f"{res.scenario.run.name}: who the allocation pays")
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    return _save(fig, path)


def plot_availability(res: RunResult, path: Path) -> Path:
    k = res.scenario.network.k_available
    epochs = np.arange(1, len(res.records) + 1)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(
        epochs,
        [r.claimed_available for r in res.records],
        color="grey",
        ls="--",
        label=f">= {k} committed hosts (what the chain counts)",
    )
    ax.plot(
        epochs,
        [r.available for r in res.records],
        color="#1b9e77",
        lw=2,
        label=f">= {k} online hosts holding the whole root",
    )
    ax.plot(
        epochs,
        [r.unmet for r in res.records],
        color="#d95f02",
        label="requested bytes no host could serve",
    )
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("epoch (day)")
    ax.set_ylabel("fraction of roots / of demand")
    ax.set_title(f"{res.scenario.run.name}: content availability")
    ax.legend(loc="center right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_slashing(res: RunResult, path: Path) -> Path:
    fig, ax = _cumulative_lines(res, "slashed", "sum")
    ax.set_xlabel("epoch (day)")
    ax.set_ylabel("cumulative stake slashed (USD)")
    ax.set_title(f"{res.scenario.run.name}: slashing by strategy")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_sweep(sw: SweepResult, title: str, path: Path) -> Path:
    adv = np.array(sw.advantage)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    who = LABELS[sw.strategy]
    if sw.y_param is None:
        ax.plot(
            sw.x_values,
            adv[0],
            marker="o",
            color=COLORS[sw.strategy],
            lw=2,
            label=f"{who} minus honest",
        )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel(sw.x_param)
        ax.set_ylabel("profit per host-epoch minus honest (USD)")
        if min(sw.x_values) > 0 and max(sw.x_values) / min(sw.x_values) > 50:
            ax.set_xscale("log")
        share_ax = ax.twinx()
        share_ax.plot(
            sw.x_values,
            sw.strategy_share[0],
            color="black",
            ls=":",
            marker=".",
            label=f"{who} share of rewards",
        )
        share_ax.set_ylabel("share of rewards")
        share_ax.set_ylim(0, 1)
        lines = ax.get_legend_handles_labels()
        lines2 = share_ax.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    else:
        lim = float(np.nanmax(np.abs(adv))) or 1.0
        im = ax.imshow(
            adv,
            origin="lower",
            aspect="auto",
            cmap="RdBu_r",
            norm=TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim),
        )
        ax.set_xticks(range(len(sw.x_values)), [f"{v:g}" for v in sw.x_values])
        ax.set_yticks(range(len(sw.y_values)), [f"{v:g}" for v in sw.y_values])
        ax.set_xlabel(sw.x_param)
        ax.set_ylabel(sw.y_param)
        for iy in range(adv.shape[0]):
            for ix in range(adv.shape[1]):
                ax.text(
                    ix,
                    iy,
                    f"{adv[iy, ix]:+.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if abs(adv[iy, ix]) > 0.6 * lim else "black",
                )
        bar = fig.colorbar(im, ax=ax)
        bar.set_label("profit minus honest, USD per host-epoch")
    ax.set_title(title)
    return _save(fig, path)


def write_plots(res: RunResult, sweep: SweepResult | None, out: Path) -> list[Path]:
    """Write every figure for a run into ``out``; return their paths."""
    paths = [
        plot_profit(res, out / "profit.png"),
        plot_share(res, out / "share.png"),
        plot_availability(res, out / "availability.png"),
        plot_slashing(res, out / "slashing.png"),
    ]
    if sweep is not None:
        paths.append(
            plot_sweep(
                sweep,
                f"{res.scenario.run.name}: {LABELS[sweep.strategy]} minus honest (red: it pays)",
                out / "sweep.png",
            )
        )
    return paths
