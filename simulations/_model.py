"""The discrete-epoch model.

Each epoch:

1. Intermittent hosts draw whether they are online.
2. Demand: ``requests_per_epoch`` whole-root downloads, root drawn by Zipf popularity, client
   uniform. A client picks among the root's listed hosts in proportion to its local reputation
   score (the formula of node.ledger.LocalLedger.score), mixed with ``explore`` uniform picks.
   Offline hosts and free-riders time out; a deleter serves the part of the root it kept and
   announces the rest as missing (no timeout). What the first host did not serve is fetched
   from hosts that hold the whole root (same weights), or is lost (unmet demand).
3. Clients update their reputation records (chunks ok, a timeout per dead request,
   throughput) and sign a receipt per request served; sybil farmers add fake receipts.
4. Challenges: Poisson(challenge_rate) per commitment. An offline host fails every challenge;
   an online one fails with probability = fraction of the root it dropped. Failure slashes
   ``stake * slash_bps / 10000`` (half to the challenger); the host tops its stake back up.
5. Events go through the product's PayoutLedger, which allocates the epoch budget.
6. Profit = reward - storage - bandwidth - gas (receipts, responses, claims) - slashes -
   capital cost of the stake - cost of fake receipts.

Population and commitments are fixed for the run (no entry or exit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import _strategies as strat
from ._ledger import WEI_PER_ETH, SimLedger, usd_to_wei
from ._params import Scenario

GIB = 1 << 30
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class EpochRecord:
    """Per-host outcome of one epoch (arrays of length ``hosts``), money in USD."""

    reward: FloatArray
    storage: FloatArray
    bandwidth: FloatArray
    gas: FloatArray
    slashed: FloatArray
    capital: FloatArray
    fake_cost: FloatArray
    real_gib: FloatArray
    fake_gib: FloatArray
    passed: IntArray
    failed: IntArray
    online: npt.NDArray[np.bool_]
    available: float  #: fraction of roots with >= k whole, online, serving holders
    claimed_available: float  #: fraction of roots with >= k committed hosts (what chain sees)
    unmet: float  #: fraction of requested bytes no host could serve
    budget_wei: int
    allocated_wei: int
    challenger_net: float  #: bounties (half the slashes) minus challenge/slash gas

    @property
    def profit(self) -> FloatArray:
        return (
            self.reward
            - self.storage
            - self.bandwidth
            - self.gas
            - self.slashed
            - self.capital
            - self.fake_cost
        )


class Model:
    """One run of a scenario. ``step()`` advances an epoch; ``run()`` does them all."""

    def __init__(self, scenario: Scenario, ledger: SimLedger) -> None:
        self.s = scenario
        self.ledger = ledger
        self.rng = np.random.default_rng(scenario.run.seed)
        n, e = scenario.network, scenario.economics
        rng = self.rng
        self.hosts = n.hosts
        ranks = np.arange(1, n.roots + 1, dtype=np.float64)
        pop = ranks ** (-n.zipf_s)
        self.popularity: FloatArray = pop / pop.sum()
        sizes = rng.lognormal(np.log(n.size_median_gib), n.size_sigma, n.roots)
        self.sizes: FloatArray = np.clip(sizes, n.size_min_gib, n.size_max_gib)
        # Hosts pick roots with weight popularity**pick_exponent: 0.5 favours what earns while
        # the tail still gets replicas; 0 is a protocol that assigns replicas uniformly.
        pick = self.popularity**n.pick_exponent
        pick /= pick.sum()
        self.strategy = strat.assign_strategies(rng, n.hosts, scenario.mix)
        self.commitments = strat.deal_commitments(rng, self.strategy, pick, n.roots_per_host)
        # What a host can expect to earn per GiB stored of each root, per epoch: its share of
        # the root's downloads times (reward per GiB served - bandwidth cost per GiB).
        holders = np.maximum(np.bincount(self.commitments.ravel(), minlength=n.roots), 1)
        demand_gib = n.requests_per_epoch * float((self.popularity * self.sizes).sum())
        reward_per_gib = e.epoch_budget_usd / demand_gib if demand_gib > 0 else 0.0
        downloads = n.requests_per_epoch * self.popularity / holders
        self.margin_per_gib: FloatArray = downloads * (reward_per_gib - e.bandwidth_usd_per_gib)
        self.throughput: FloatArray = rng.lognormal(
            np.log(n.throughput_median_mbps * 1e6 / 8), n.throughput_sigma, n.hosts
        )
        self.drop = strat.drop_fractions(
            self.strategy,
            self.commitments,
            self.sizes,
            self.margin_per_gib,
            e.storage_usd_per_gib_epoch,
            scenario.behaviour,
        )
        # holders[r] = (host ids, index into that host's commitments)
        self.holders: list[tuple[IntArray, IntArray]] = []
        for r in range(n.roots):
            hs, js = np.nonzero(self.commitments == r)
            self.holders.append((hs.astype(np.int64), js.astype(np.int64)))
        # Local reputation records of every client about every host (LocalLedger fields).
        shape = (n.clients, n.hosts)
        self.chunks_ok = np.zeros(shape)
        self.bad_chunks = np.zeros(shape)
        self.timeouts = np.zeros(shape)
        self.known_tp = np.zeros(shape)
        self.usd_per_gas = scenario.economics.gas_price_gwei * 1e-9 * e.eth_usd
        receipt_usd = scenario.gas.receipt * self.usd_per_gas
        self.fake_cost_gib, self.fake_receipt_gib = strat.fake_cost_per_gib(
            scenario.sybil, receipt_usd
        )
        self.fake_gib_prev = np.zeros(n.hosts)
        self.weight_prev = np.zeros(n.hosts)
        self.epoch = 0

    # -- scores -------------------------------------------------------------------------------

    def scores(self, clients: IntArray | slice, hosts: IntArray) -> FloatArray:
        """node.ledger.LocalLedger.score, vectorised: throughput (1.0 if unknown) times
        good / (good + 10 * bad_chunks + 2 * timeouts), good = chunks_ok + 1."""
        ok = self.chunks_ok[clients][:, hosts]
        good = ok + 1.0
        penalty = good / (
            good
            + 10.0 * self.bad_chunks[clients][:, hosts]
            + 2.0 * self.timeouts[clients][:, hosts]
        )
        tp = self.known_tp[clients][:, hosts]
        return np.where(tp > 0, tp, 1.0) * penalty

    def _optimistic(self, clients: IntArray, hosts: IntArray, w: FloatArray) -> FloatArray:
        """Score never-tried hosts at the median score of the hosts each client knows."""
        unknown = self.known_tp[clients][:, hosts] == 0
        if not unknown.any():
            return w
        known = np.where(unknown, np.nan, w)
        has_known = ~unknown.all(axis=1)
        med = np.ones(len(clients))
        if has_known.any():
            med[has_known] = np.nanmedian(known[has_known], axis=1)
        # an unknown host that timed out keeps its penalty factor
        return np.where(unknown, med[:, None] * w, w)

    # -- one epoch ------------------------------------------------------------------------------

    def step(self) -> EpochRecord:
        s, n, e, g = self.s, self.s.network, self.s.economics, self.s.gas
        rng = self.rng
        H = self.hosts
        up = strat.online(rng, self.strategy, s.behaviour)
        serving = up & strat.serves(self.strategy)
        chunk_gib = n.chunk_mib / 1024.0

        # Demand: requests per (client, root).
        flat = rng.multinomial(
            n.requests_per_epoch, np.repeat(self.popularity, n.clients) / n.clients
        )
        demand = flat.reshape(n.roots, n.clients)
        real_gib = np.zeros(H)
        receipts = np.zeros(H)
        unmet_gib = 0.0
        asked_gib = 0.0
        d_ok = np.zeros_like(self.chunks_ok)
        d_to = np.zeros_like(self.timeouts)
        for r in range(n.roots):
            want = demand[r]
            hs, js = self.holders[r]
            if want.sum() == 0:
                continue
            size = float(self.sizes[r])
            asked_gib += size * float(want.sum())
            if hs.size == 0:
                unmet_gib += size * float(want.sum())
                continue
            cl = np.flatnonzero(want)
            # A deleter that dropped the whole root says so (have/bitfield): not a candidate.
            listed = ~((self.strategy[hs] == strat.DELETER) & (self.drop[hs, js] >= 1.0))
            w = self.scores(cl, hs)
            if n.unknown_prior == "median":
                w = self._optimistic(cl, hs, w)
            w = w * listed
            if not listed.any():
                unmet_gib += size * float(want.sum())
                continue
            p = (1.0 - n.explore) * w / w.sum(axis=1, keepdims=True) + (
                n.explore * listed / listed.sum()
            )
            p = np.clip(p / p.sum(axis=1, keepdims=True), 0.0, 1.0)
            picks = rng.multinomial(want[cl], p)  # (clients, holders)
            frac = np.where(serving[hs], 1.0 - self.drop[hs, js], 0.0)  # share served
            served = picks * frac  # whole-root equivalents per (client, holder)
            missing = (picks * (1.0 - frac)).sum(axis=1)  # per client
            whole = frac >= 1.0
            q = p * whole
            qs = q.sum(axis=1)
            has_fallback = qs > 0
            fb = np.zeros_like(q)
            fb[has_fallback] = (
                q[has_fallback] / qs[has_fallback, None] * missing[has_fallback, None]
            )
            unmet_gib += size * float(missing[~has_fallback].sum())
            total = served + fb
            real_gib_r = total.sum(axis=0) * size
            np.add.at(real_gib, hs, real_gib_r)
            np.add.at(receipts, hs, (picks * (frac > 0)).sum(axis=0) + fb.sum(axis=0))
            chunks = size / chunk_gib
            # Reputation: chunks served ok; a timeout per request to a host that never answers.
            # A deleter announces what it still has (have/bitfield), so the chunks it dropped
            # are fetched elsewhere without a timeout: dropping costs it no reputation.
            ix = np.ix_(cl, hs)
            d_ok[ix] += total * chunks
            d_to[ix] += picks * ~serving[hs]
        self.chunks_ok += d_ok
        self.timeouts += d_to
        touched = d_ok > 0
        self.known_tp = np.where(touched, self.throughput[None, :], self.known_tp)

        # Challenges.
        counts = rng.poisson(e.challenge_rate, self.commitments.shape)
        p_fail = np.where(up[:, None], self.drop, 1.0)
        failed_c = rng.binomial(counts, p_fail)
        passed = (counts - failed_c).sum(axis=1).astype(np.int64)
        failed = failed_c.sum(axis=1).astype(np.int64)
        stake_usd = e.stake_eth * e.eth_usd
        slash_each = stake_usd * e.slash_bps / 10_000
        slashed = failed * slash_each
        challenger_net = float(
            slashed.sum() / 2
            - counts.sum() * g.challenge * self.usd_per_gas
            - failed.sum() * g.slash_expired * self.usd_per_gas
        )

        # Receipt farming (sybil hosts), best response to last epoch's totals.
        fake_gib = np.zeros(H)
        budget_usd = e.epoch_budget_usd
        total_prev = float(self.weight_prev.sum())
        for h in np.flatnonzero(self.strategy == strat.SYBIL):
            own = float(self.weight_prev[h])
            cap = s.sybil.max_receipts_per_epoch * self.fake_receipt_gib
            target = strat.farm_best_response(
                budget_usd, total_prev - own, own - self.fake_gib_prev[h], self.fake_cost_gib, cap
            )
            # Damped towards the best response so several farmers settle instead of cycling.
            fake_gib[h] = target if self.epoch == 0 else 0.5 * (self.fake_gib_prev[h] + target)
        if self.epoch == 0:
            fake_gib[:] = 0.0  # nothing observed yet
        # Gas per receipt, the minimum fee and receiver identities, all folded into one rate.
        fake_cost = fake_gib * self.fake_cost_gib

        # The product's allocation rule, through the real ledger.
        real_bytes = np.round(real_gib * GIB).astype(np.int64)
        fake_bytes = np.round(fake_gib * GIB).astype(np.int64)
        self.ledger.record_epoch(self.epoch, real_bytes, fake_bytes, passed, failed)
        budget_wei = usd_to_wei(budget_usd, e.eth_usd)
        alloc, amounts = self.ledger.allocate(self.epoch, budget_wei, H)
        wei_usd = e.eth_usd / WEI_PER_ETH
        reward = np.array([a * wei_usd for a in amounts])

        rel = (passed + 1) / (passed + 2 * failed + 1)
        self.weight_prev = (real_gib + fake_gib) * rel
        self.fake_gib_prev = fake_gib

        stored = ((1.0 - self.drop) * self.sizes[self.commitments]).sum(axis=1)
        gas = (
            receipts * g.receipt + passed * g.respond + (reward > 0) * g.claim
        ) * self.usd_per_gas
        capital = np.full(H, n.roots_per_host * stake_usd * e.capital_apr / e.epochs_per_year)

        # Availability.
        holds_whole = (self.drop == 0) & serving[:, None]
        whole_count = np.bincount(self.commitments[holds_whole], minlength=n.roots)
        committed = np.bincount(self.commitments.ravel(), minlength=n.roots)
        rec = EpochRecord(
            reward=reward,
            storage=stored * e.storage_usd_per_gib_epoch,
            bandwidth=real_gib * e.bandwidth_usd_per_gib,
            gas=gas,
            slashed=slashed,
            capital=capital,
            fake_cost=fake_cost,
            real_gib=real_gib,
            fake_gib=fake_gib,
            passed=passed,
            failed=failed,
            online=up,
            available=float((whole_count >= n.k_available).mean()),
            claimed_available=float((committed >= n.k_available).mean()),
            unmet=unmet_gib / asked_gib if asked_gib > 0 else 0.0,
            budget_wei=budget_wei,
            allocated_wei=alloc.total,
            challenger_net=challenger_net,
        )
        self.epoch += 1
        return rec

    def run(self) -> list[EpochRecord]:
        return [self.step() for _ in range(self.s.run.epochs)]
