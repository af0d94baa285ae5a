"""Host strategies: what each kind of host stores, when it is online, whether it serves, and
how much a receipt farmer fakes.

Every function is pure (numpy in, numpy out; randomness only through the Generator passed in),
so the model stays deterministic for a seed.

- honest: stores every committed root, serves, answers every challenge.
- deleter (lazy): drops up to ``deleter_drop`` of its committed bytes, taken from the roots
  whose expected serving margin per GiB is below the storage cost, coldest first; a challenge
  on root r fails with probability = the fraction of r's segments it dropped (segment indices
  are uniform on chain).
- free_rider: commits stake, keeps ``free_rider_keep`` of the bytes, never serves.
- sybil: an honest host that also farms self-signed receipts through fake receivers.
- intermittent: honest, but offline with probability ``intermittent_offline`` each epoch
  (misses the challenges of that epoch and times out on requests).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ._params import STRATEGIES, Behaviour, Mix, Sybil

HONEST, DELETER, FREE_RIDER, SYBIL, INTERMITTENT = range(len(STRATEGIES))

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def assign_strategies(rng: np.random.Generator, hosts: int, mix: Mix) -> IntArray:
    """Exact head counts by largest remainder, shuffled over host ids."""
    fractions = np.array(list(mix.fractions().values()))
    raw = fractions * hosts
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: hosts - int(counts.sum())]] += 1
    return rng.permutation(np.repeat(np.arange(len(fractions), dtype=np.int64), counts))


def deal_commitments(
    rng: np.random.Generator, strategy: IntArray, pick: FloatArray, per_host: int
) -> IntArray:
    """Commitments, shape (hosts, per_host): root r gets ~ hosts*per_host*pick[r] replicas.

    Replicas are dealt hottest root first; each replica goes to the strategy group furthest
    behind its share of slots, and within a group to the next host in a shuffled cycle. So
    every strategy holds the same mix of hot and cold roots and differences between strategies
    come from behaviour, not from which group happened to draw the hot roots (stratified
    sampling: a variance reduction).
    """
    hosts = strategy.shape[0]
    slots = hosts * per_host
    raw = pick / pick.sum() * slots
    reps = np.floor(raw).astype(np.int64)
    reps[np.argsort(-(raw - reps), kind="stable")[: slots - int(reps.sum())]] += 1
    reps = np.minimum(reps, hosts)
    groups = [rng.permutation(np.flatnonzero(strategy == i)) for i in range(len(STRATEGIES))]
    share = np.array([len(g) for g in groups], dtype=np.float64) / hosts
    cursor = [0] * len(groups)
    dealt = np.zeros(len(groups))
    held: list[list[int]] = [[] for _ in range(hosts)]
    for r in np.argsort(-pick, kind="stable"):
        for _ in range(int(reps[r])):
            deficit = np.where(share > 0, share * (dealt.sum() + 1) - dealt, -np.inf)
            for i in np.argsort(-(deficit + 1e-9 * rng.random(len(groups))), kind="stable"):
                g = groups[i]
                if len(g) == 0:
                    continue
                for step in range(len(g)):  # next host in the cycle without r and with room
                    h = int(g[(cursor[i] + step) % len(g)])
                    if len(held[h]) < per_host and r not in held[h]:
                        cursor[i] = (cursor[i] + step + 1) % len(g)
                        break
                else:
                    continue
                held[h].append(int(r))
                dealt[i] += 1
                break
    # Any host left short (rounding) tops up with random roots it does not hold.
    for h in range(hosts):
        while len(held[h]) < per_host:
            r = int(rng.choice(pick.shape[0], p=pick / pick.sum()))
            if r not in held[h]:
                held[h].append(r)
    return np.array(held, dtype=np.int64)


def drop_fractions(
    strategy: IntArray,
    commitments: IntArray,
    sizes: FloatArray,
    margin_per_gib: FloatArray,
    storage_per_gib: float,
    behaviour: Behaviour,
) -> FloatArray:
    """Fraction of each commitment's segments the host does not hold, shape (hosts, per_host).

    A deleter is rational about it: it drops only roots whose expected serving margin per GiB
    stored (``margin_per_gib``: reward minus bandwidth, per holder, per epoch) is below the
    storage cost, coldest first, until it has dropped ``deleter_drop`` of its committed bytes;
    the root on the boundary is dropped in part.
    """
    drop = np.zeros(commitments.shape, dtype=np.float64)
    drop[strategy == FREE_RIDER] = 1.0 - behaviour.free_rider_keep
    target = behaviour.deleter_drop
    for h in np.flatnonzero(strategy == DELETER):
        roots = commitments[h]
        order = np.argsort(margin_per_gib[roots], kind="stable")
        budget = target * float(sizes[roots].sum())
        for j in order:
            if budget <= 0 or margin_per_gib[roots[j]] >= storage_per_gib:
                break
            size = float(sizes[roots[j]])
            part = min(1.0, budget / size)
            drop[h, j] = part
            budget -= part * size
    return drop


def online(
    rng: np.random.Generator, strategy: IntArray, behaviour: Behaviour
) -> npt.NDArray[np.bool_]:
    """Which hosts are online this epoch (one draw per host, every epoch, for determinism)."""
    draws = rng.random(strategy.shape[0])
    return ~((strategy == INTERMITTENT) & (draws < behaviour.intermittent_offline))


def serves(strategy: IntArray) -> npt.NDArray[np.bool_]:
    """Whether a host answers download requests at all."""
    return strategy != FREE_RIDER


def fake_cost_per_gib(sybil: Sybil, receipt_gas_usd: float) -> tuple[float, float]:
    """(cost per faked GiB in USD, GiB per fake receipt) under the scenario's counter-measures.

    The farmer pays gas per receipt, the minimum fee per GiB (if any) and, when validators cap
    the bytes they count per receiver, one identity per ``receiver_cap_gib``.
    """
    per_receipt = sybil.max_receipt_gib
    if sybil.receiver_cap_gib > 0:
        per_receipt = min(per_receipt, sybil.receiver_cap_gib)
    cost = sybil.fee_usd_per_gib + receipt_gas_usd / per_receipt
    if sybil.receiver_cap_gib > 0:
        cost += sybil.identity_usd / sybil.receiver_cap_gib
    return cost, per_receipt


def farm_best_response(
    budget_usd: float, others_weight: float, own_weight: float, cost_per_gib: float, cap_gib: float
) -> float:
    """GiB of fake receipts that maximise ``B*(own+x)/(others+own+x) - c*x`` (x in [0, cap]).

    Weights are reliability-weighted GiB as in the allocation rule; the farmer sees last
    epoch's on-chain totals. First-order condition: (others+own+x)^2 = B*others/c.
    """
    if others_weight <= 0:
        return 0.0  # alone in the pool: its real bytes already take the whole budget
    if cost_per_gib <= 0:
        return cap_gib
    x = math.sqrt(budget_usd * others_weight / cost_per_gib) - others_weight - own_weight
    return float(min(max(x, 0.0), cap_gib))
