"""Matplotlib figures (Agg backend), each saying exactly what its title claims.

- ``roi.png``: ROI per strategy, the mean over seeds with its 95% t-interval as an error bar,
  the honest interval as a shaded band (a deviant "wins" only if its bar reaches the band).
- ``profit.png``: cumulative profit per host by strategy, mean line with a 95% band.
- ``detection.png``: probability that a proof (and a proof period) catches a host missing a
  fraction of its slot, S and dueBps from the deployment.

Every line or bar takes its colour from :data:`~simulations._strategies.COLORS` and its legend
label from the strategy's title, so the legend, the title and the data agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from ._runner import MultiResult, cumulative_bands
from ._strategies import COLORS, STRATEGIES

DPI = 90


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_roi(summ: dict[str, Any], path: Path) -> Path:
    return _save(roi_figure(summ), path)


def roi_figure(summ: dict[str, Any]) -> Any:
    """The ROI figure (not saved): one error bar and one tick label per strategy, both in the
    strategy's colour."""
    names = list(summ["strategies"])
    strat = summ["strategies"]
    means = np.array([strat[n]["roi_mean"] for n in names])
    lo = np.array([strat[n]["roi_ci95"][0] for n in names])
    hi = np.array([strat[n]["roi_ci95"][1] for n in names])
    fig, ax = plt.subplots(figsize=(8, 5.0))
    y = np.arange(len(names))[::-1]
    h = strat["honest"]["roi_ci95"]
    ax.axvspan(h[0], h[1], color=COLORS["honest"], alpha=0.12, label="honest 95% CI")
    for yi, n, m, a, b in zip(y, names, means, lo, hi, strict=True):
        ax.errorbar(m, yi, xerr=[[m - a], [b - m]], fmt="o", color=COLORS[n], capsize=4, lw=2, ms=6)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--", label="ROI = 1 (break-even)")
    ax.set_yticks(y, [f"{STRATEGIES[n].title} ({strat[n]['hosts']})" for n in names])
    for tick, n in zip(ax.get_yticklabels(), names, strict=True):
        tick.set_color(COLORS[n])
    ax.set_xlabel("ROI = revenue / cost over the run (mean, 95% CI across seeds)")
    ax.set_title(
        f"{summ['name']}: ROI per strategy, {len(summ['seeds'])} seeds x "
        f"{summ['epochs']} epochs x {summ['hosts']} hosts"
    )
    # below the axes, so it never hides a point
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)
    ax.grid(alpha=0.3, axis="x")
    return fig


def plot_profit(res: MultiResult, path: Path) -> Path:
    return _save(profit_figure(res), path)


def profit_figure(res: MultiResult) -> Any:
    """The cumulative-profit figure (not saved): per strategy a mean line and its 95% band, in
    the strategy's colour, labelled with the strategy's title."""
    bands = cumulative_bands(res)
    fig, ax = plt.subplots(figsize=(10, 4.8))
    for name, (mean, lo, hi) in bands.items():
        x = np.arange(1, len(mean) + 1)
        ax.plot(x, mean, color=COLORS[name], lw=2, label=STRATEGIES[name].title)
        ax.fill_between(x, lo, hi, color=COLORS[name], alpha=0.2, lw=0)
    ax.axhline(0, color="grey", lw=0.8)
    days = res.setup.protocol["epoch_length"] / 86400
    ax.set_xlabel(f"epoch ({days:g} days each)")
    ax.set_ylabel("cumulative profit per host (USD)")
    ax.set_title(
        f"{res.scenario.run.name}: cumulative profit per host, mean and 95% band "
        f"({len(res.seeds)} seeds)"
    )
    # outside the axes, so it never hides a line
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return fig


def plot_detection(summ: dict[str, Any], path: Path) -> Path:
    detection = summ["detection"]
    S, due = detection["samples"], detection["due_bps"] / 10_000
    x = np.linspace(0.0, 1.0, 401)
    per_proof = 1.0 - (1.0 - x) ** S
    fig, (ax, lg) = plt.subplots(1, 2, figsize=(10, 4.2))
    ax.plot(x, per_proof, color="#0072b2", lw=2, label=f"per proof: 1 - (1 - x)^{S}")
    ax.plot(x, due * per_proof, color="#d55e00", lw=2, ls="--", label=f"per period: {due:g} x that")
    for name, s in summ["strategies"].items():
        st = STRATEGIES[name]
        if "detection_observed" in s and st.drop_order == "random" and 0 < st.drop < 1:
            ax.plot(
                st.drop,
                s["detection_observed"],
                "o",
                color=COLORS[name],
                ms=8,
                label=f"observed, {st.title} (product's draw)",
            )
    ax.set_xlabel("fraction x of its slot a host cannot produce")
    ax.set_ylabel("probability the host is caught")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title("caught")
    xs = np.linspace(0.01, 1.0, 400)
    lg.semilogy(xs, (1.0 - xs) ** S, color="#0072b2", lw=2, label="per proof: (1 - x)^S")
    lg.semilogy(
        xs,
        1.0 - due * (1.0 - (1.0 - xs) ** S),
        color="#d55e00",
        lw=2,
        ls="--",
        label="per period",
    )
    lg.axhline(1e-6, color="grey", lw=1, ls=":", label="10^-6")
    lg.axvline(0.5, color="grey", lw=0.8)
    lg.set_ylim(1e-12, 1.5)
    lg.set_xlabel("fraction x of its slot a host cannot produce")
    lg.set_ylabel("probability it escapes (log)")
    lg.legend(loc="lower left", fontsize=7)
    lg.grid(alpha=0.3, which="both")
    lg.set_title("escapes")
    fig.suptitle(f"Detection vs fraction lost (S = {S} samples, dueBps = {detection['due_bps']})")
    return _save(fig, path)


def write_plots(res: MultiResult, summ: dict[str, Any], out: Path) -> list[Path]:
    """Write every figure of a run into ``out``; return their paths."""
    return [
        plot_roi(summ, out / "roi.png"),
        plot_profit(res, out / "profit.png"),
        plot_detection(summ, out / "detection.png"),
    ]
