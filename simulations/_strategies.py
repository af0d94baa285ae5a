"""The host strategies the model compares, as data (the model reads these flags, nothing else).

Every strategy is a host that commits stake to ``slots_per_host`` slots of distinct roots and
pays gas for what it sends. What differs is what it stores, when it is online, what it serves
and which extra transactions it sends. docs/simulations.md has the table with the reasoning.

A host that cannot produce a proof lets the challenge expire rather than send a wrong one: an
expiry is a fault (``faultSlashBps``, reputation weight 1, terminated only at ``maxFaults``
consecutive faults) while a wrong proof is deletion evidence (``proofSlashBps``, terminated at
once, reputation weight ``w_invalid``), so expiring is never worse for it. The model therefore
gives every deviant the cheaper failure; nobody sends an invalid proof.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DropOrder = Literal["random", "cold"]


@dataclass(frozen=True)
class Strategy:
    name: str
    #: fraction of its slot bytes the host deletes (0 keeps everything, 1 keeps nothing)
    drop: float = 0.0
    #: "random": the lost rows are spread over every slot it holds (disk loss, random pruning);
    #: "cold": it deletes whole slots of its least-downloaded roots first (serving revenue kept)
    drop_order: DropOrder = "random"
    #: probability that the host is offline for a whole proof period (no answers, no serving)
    offline: float | None = None  #: None: the scenario's honest downtime
    serves: bool = True  #: answers download requests for what it holds
    #: deletes its slot, keeps the roots, and rebuilds the sampled rows from K other slots'
    #: hosts when challenged (paying them the receiver price); fails if fewer than K are online
    outsources: bool = False
    self_challenges: bool = False  #: sends ad-hoc challenges against its own slots every period
    griefs: bool = False  #: sends ad-hoc challenges against honest hosts' slots
    #: one owner runs these providers and sybil receivers that pay them for fake downloads
    ring: bool = False
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name


STRATEGY_LIST: tuple[Strategy, ...] = (
    Strategy("honest", label="honest"),
    Strategy("lazy-5", drop=0.05, label="lazy 5% (random rows)"),
    Strategy("lazy-5-cold", drop=0.05, drop_order="cold", label="lazy 5% (coldest first)"),
    Strategy("lazy-50", drop=0.5, label="lazy 50% (random rows)"),
    Strategy("lazy-50-cold", drop=0.5, drop_order="cold", label="lazy 50% (coldest first)"),
    Strategy("flaky-5", offline=0.05, label="flaky (offline 5%)"),
    Strategy("flaky-30", offline=0.30, label="flaky (offline 30%)"),
    Strategy("free-rider", drop=1.0, serves=False, label="free-rider"),
    Strategy("sybil-ring", ring=True, label="sybil receipt ring"),
    Strategy("outsourcer", drop=1.0, serves=False, outsources=True, label="outsourcer"),
    Strategy("self-challenger", self_challenges=True, label="self-challenger"),
    Strategy("challenge-griefer", griefs=True, label="challenge griefer"),
)

STRATEGIES: dict[str, Strategy] = {s.name: s for s in STRATEGY_LIST}
NAMES: tuple[str, ...] = tuple(STRATEGIES)

#: Plot colours, one per strategy (a colour-blind-safe qualitative palette; honest is black so
#: it stands out from every deviant).
COLORS: dict[str, str] = {
    "honest": "#000000",
    "lazy-5": "#e69f00",
    "lazy-5-cold": "#b07800",
    "lazy-50": "#d55e00",
    "lazy-50-cold": "#8c3d00",
    "flaky-5": "#56b4e9",
    "flaky-30": "#0072b2",
    "free-rider": "#999999",
    "sybil-ring": "#cc79a7",
    "outsourcer": "#009e73",
    "self-challenger": "#6a3d9a",
    "challenge-griefer": "#b2182b",
}
