"""One seed of the hosting market under the product's rules (vectorised over slots with numpy).

Time advances in proof periods (``periodBlocks * block_seconds``; 4 days at the defaults, one
period per epoch). Market quantities are per day and scaled to the period (demand, fake
traffic) or the epoch (the subsidy budget). Per period:

1. **Who is online.** Each host is offline for the whole period with its strategy's
   probability (honest hosts: ``market.honest_offline``).
2. **Downloads.** Each root's requests (Poisson, popularity by Zipf, ``request_gib`` each) are
   served by the online, serving hosts of its slots in proportion to the rows they hold. The
   receiver pays ``price`` per GiB; ``receiptFeeBps`` of it is burnt, the provider
   keeps the rest (docs/incentives.md §3.2). The sybil ring's receivers pay its providers for
   fake downloads on top.
3. **Challenges.** Every active slot is due with probability ``dueBps / 10000`` (the chain's
   ``blockhash % 10000 < dueBps``) and a validator challenges it (``challengeBond`` posted,
   returned with ``challengeReward`` on a pass). Self-challengers add ad-hoc challenges of
   their own slots; griefers add ad-hoc challenges of honest hosts' slots (their bond goes to
   the host on a pass). A challenged host passes iff it is online and all ``S`` sampled rows
   drawn by the product's :func:`node.content.draw_sample_indices` (from a fresh random seed
   hash per challenge) are rows it holds; for a host missing a fraction ``x`` of its rows this
   happens with probability ``(1 - x) ** S`` (the summary compares the two). The outsourcer holds
   nothing and instead rebuilds each sampled row from other hosts of the root: one fetch unit
   (a chunk, ``node.content.DEFAULT_CHUNK_SIZE``) per distinct sampled row from one host's plain
   copy when hosts keep one (``market.serving_copy = 1``, as ``bcai serve`` does), else from K
   other slots; it passes iff it is online, enough sources are online with their data, and the
   download fits in ``responseWindow``; it pays them the receiver price for what it fetches.
   A pass pays storage: ``storageRatePerGiBDay * slot GiB * days since the last payment``
   (``storageFeeBps`` of it burnt). A miss expires: a *fault* (``faultSlashBps`` of the stake,
   and the storage accrued since the last payment is forfeited), and at ``maxFaults``
   consecutive faults ``proofSlashBps`` and termination (the slot is lost; the rest of the
   stake is returned). Half
   of a slash goes to the challenger of record.
4. **Reputation.** Every proof outcome goes through ``node.ledger.update_reputation`` in order.
5. **Epoch end.** ``node.ledger.allocate_amounts`` splits the epoch's HostingRewards budget by
   fee-weighted reputation, each host capped at ``rebateBps`` of the fees it burnt.

Every flow is booked to the host (or ring owner) that pays or receives it; ROI is revenue over
cost per strategy. Costs: storage of the bytes held, bandwidth of the bytes served, gas of every
transaction sent (at ``market.gas_price_gwei``), the capital cost of the stake, slashes, bonds
lost, fees burnt on payments received, payments made. Revenue: payments received (gross),
storage payments (gross), the subsidy, bonds received, the challenger's share of slashes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import ScenarioError
from ._params import Scenario
from ._product import ledger_rules, sample_draw
from ._strategies import STRATEGIES

GIB = 2**30
SEGMENT = 4096
DAY = 86400.0

REVENUE = ("payments", "storage_pay", "subsidy", "bonds_received", "bounties")
COSTS = (
    "storage",
    "bandwidth",
    "gas",
    "capital",
    "slashed",
    "bonds_lost",
    "fees",
    "payments_made",
)
CATEGORIES = REVENUE + COSTS
COUNTS = (
    "challenges",
    "passes",
    "faults",
    "terminations",
    "served_gib",
    "fake_gib",
    "missing_challenges",  # challenges of slots missing rows (lazy) ...
    "missing_failures",  # ... and how many of them failed: the empirical detection rate
    # proof periods in which a slot missing rows was active with its host online: failures over
    # these are the observed detection *per proof period* (scheduled challenges only)
    "missing_periods",
)


@dataclass(frozen=True)
class SeedResult:
    """Everything one seed produced (plain numpy arrays, picklable)."""

    seed: int
    strategies: tuple[str, ...]  #: strategies present, in NAMES order
    hosts: npt.NDArray[np.int64]  #: hosts per strategy
    #: (epochs, strategies, categories) ETH booked per epoch, in CATEGORIES order
    money: npt.NDArray[np.float64]
    #: (strategies, counts) totals, COUNTS order
    counts: npt.NDArray[np.float64]
    #: network figures: budget, allocated, unmet demand, validator income ...
    network: dict[str, float]


def _interleave(counts: list[int], rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Strategy index per position, each strategy spread evenly over the positions (so every
    strategy is dealt the same mix of hot and cold roots: stratified, not luck of the draw)."""
    keys: list[tuple[float, float, int]] = []
    for s, n in enumerate(counts):
        jitter = rng.random(n)
        keys.extend(((i + j) / n, float(j), s) for i, j in zip(range(n), jitter, strict=True))
    keys.sort()
    return np.array([s for _, _, s in keys], dtype=np.int64)


def _lost(salt: np.uint64, rows: npt.NDArray[np.uint64], x: float) -> npt.NDArray[np.bool_]:
    """Whether each row is lost from a slot missing the fraction ``x`` (splitmix64 of
    salt + row, compared with x * 2**64)."""
    with np.errstate(over="ignore"):
        z = rows + salt * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z < np.uint64(min(x, 1.0) * 2.0**64 - 1)


def epoch_budget_wei(rewards_eth_per_host_day: float, hosts: int, epoch_length: int) -> int:
    """HostingRewards budget of one epoch: the market's funding per host-day times the hosts and
    the epoch's days (the model and ``--evm`` use this one formula, so their allocations match)."""
    return int(rewards_eth_per_host_day * hosts * epoch_length / DAY * 1e18)


class Model:
    """One seed; :meth:`run` returns a :class:`SeedResult`."""

    def __init__(
        self, scenario: Scenario, protocol: dict[str, int], fetch_unit: int, seed: int
    ) -> None:
        self.sc = scenario
        self.p = protocol
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.ledger = ledger_rules()
        self.rep_params = self.ledger.ReputationParams()
        self.reward_params = self.ledger.RewardParams(rebate_bps=protocol["rebate_bps"])
        self.fetch_unit = fetch_unit
        self._setup()

    # -- setup -----------------------------------------------------------------------------

    def _setup(self) -> None:
        sc, p, rng, m = self.sc, self.p, self.rng, self.sc.market
        counts = sc.host_counts()
        self.strategies = tuple(counts)
        self.n_strat = len(self.strategies)
        host_strat = _interleave([counts[s] for s in self.strategies], rng)
        H = len(host_strat)
        self.H = H
        self.host_strat = host_strat
        self.K, self.N = p["data_shards"], p["slot_count"]
        N = self.N
        if H < N:
            raise ScenarioError(f"{H} hosts cannot hold the {N} slots of a root on distinct hosts")
        R = max(1, (H * sc.run.slots_per_host) // N)
        self.R = R
        C = R * N
        self.C = C
        # Roots: size log-normal (independent of popularity), popularity Zipf by rank.
        sizes = np.exp(rng.normal(math.log(m.root_gib_median), m.root_gib_sigma, R))
        sizes = np.clip(sizes, m.root_gib_min, m.root_gib_max)
        rows = np.ceil(sizes * GIB / SEGMENT / self.K)
        self.rows = rows
        self.slot_gib = rows * SEGMENT / GIB  # per root
        pop = 1.0 / np.arange(1, R + 1) ** m.zipf_s
        self.pop = pop / pop.sum()
        self.size_gib = sizes
        # Commitments: (root r, slot j) is c = r * N + j; dealt cyclically over the stratified
        # host order, hottest root first, so one root's N slots go to N distinct hosts.
        c = np.arange(C)
        self.c_host = c % H
        self.c_root = c // N
        self.c_gib = self.slot_gib[self.c_root]  # what the storage payment is for
        # what an honest host keeps: its slot, plus the plain content it serves from (bcai
        # serve keeps the root in its Store next to the slot in its SlotStore) if serving_copy
        self.c_store_gib = self.c_gib + m.serving_copy * self.size_gib[self.c_root]
        flags = [STRATEGIES[s] for s in self.strategies]
        hs = host_strat
        self.h_offline = np.array(
            [flags[s].offline if flags[s].offline is not None else m.honest_offline for s in hs]
        )
        self.h_serves = np.array([flags[s].serves for s in hs])
        self.h_outsources = np.array([flags[s].outsources for s in hs])
        self.h_self = np.array([flags[s].self_challenges for s in hs])
        self.h_griefs = np.array([flags[s].griefs for s in hs])
        self.h_ring = np.array([flags[s].ring for s in hs])
        self.h_honest = np.array([self.strategies[s] == "honest" for s in hs])
        # Missing fraction per slot.
        x = np.zeros(C)
        for h in range(H):
            st = flags[hs[h]]
            if st.drop <= 0:
                continue
            mine = np.flatnonzero(self.c_host == h)
            if st.drop_order == "random" or st.drop >= 1:
                x[mine] = st.drop
            else:  # coldest first: whole slots of the least-downloaded roots
                order = mine[np.argsort(self.pop[self.c_root[mine]], kind="stable")]
                budget = st.drop * self.c_store_gib[mine].sum()
                for ci in order:
                    take = min(self.c_store_gib[ci], budget)
                    x[ci] = take / self.c_store_gib[ci]
                    budget -= take
                    if budget <= 0:
                        break
        self.x = x
        # Which rows a partial slot lost: row i is lost iff mix(salt, i) < x (a pseudo-random
        # subset of exactly the expected size, decided once per slot, so repeated challenges
        # see the same holes).
        self.salt = rng.integers(0, 2**63, C, dtype=np.int64).astype(np.uint64)
        self.draw = sample_draw()
        self._challenge_id = 0
        self.active = np.ones(C, dtype=bool)
        self.stake = np.full(C, float(p["min_stake"]))  # wei
        self.faults = np.zeros(C, dtype=np.int64)
        self.last_paid = np.zeros(C)  # days since commit
        self.reps = [self.ledger.Reputation.initial(self.rep_params)] * H
        self.addr = [f"0x{h + 1:040x}" for h in range(H)]

    # -- helpers ---------------------------------------------------------------------------

    def _book(self, cat: str, per_host: npt.NDArray[Any]) -> None:
        """Add a per-host ETH amount to the current epoch's per-strategy category."""
        self._money[:, CATEGORIES.index(cat)] += np.bincount(
            self.host_strat, weights=per_host, minlength=self.n_strat
        )

    def _book_host(self, cat: str, hosts: npt.NDArray[np.int64], amounts: Any) -> None:
        per = np.bincount(hosts, weights=np.broadcast_to(amounts, hosts.shape), minlength=self.H)
        self._book(cat, per)

    def _count(self, name: str, hosts: npt.NDArray[np.int64], n: Any = 1.0) -> None:
        per = np.bincount(
            self.host_strat[hosts],
            weights=np.broadcast_to(np.asarray(n, dtype=np.float64), hosts.shape),
            minlength=self.n_strat,
        )
        self.counts[:, COUNTS.index(name)] += per

    def _proves(self, c: int, samples: int) -> bool:
        """Draw a challenge's indices with ``node.content.draw_sample_indices`` (a fresh
        random seed hash per challenge) and check them against the rows slot ``c`` lost."""
        self._challenge_id += 1
        rows = int(self.rows[self.c_root[c]])
        drawn = np.asarray(
            self.draw(self.rng.bytes(32), self._challenge_id, samples, rows), dtype=np.uint64
        )
        return not bool(_lost(self.salt[c], drawn, self.x[c]).any())

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> SeedResult:
        sc, p, m, rng = self.sc, self.p, self.sc.market, self.rng
        period_s = p["period_blocks"] * m.block_seconds
        epoch_s = float(p["epoch_length"])
        epochs = sc.run.epochs
        periods = max(1, math.ceil(epochs * epoch_s / period_s))
        gwei = m.gas_price_gwei * 1e-9  # ETH per gas
        usd = 1.0 / m.eth_usd  # ETH per USD
        price = p["min_price_per_gib"] * m.price_multiple / 1e18  # ETH per GiB
        fee_r = p["receipt_fee_bps"] / 10_000
        fee_s = p["storage_fee_bps"] / 10_000
        rate = p["storage_rate_per_gib_day"] / 1e18  # ETH per GiB-day
        S, K = p["samples"], self.K
        bond = p["challenge_bond"] / 1e18
        reward = p["challenge_reward"] / 1e18
        g = sc.gas
        levels = np.ceil(np.log2(np.maximum(self.rows, 1)))  # audit path length per root
        respond_gas = g.respond_base + S * (g.respond_per_sample + g.respond_per_level * levels)
        money = np.zeros((epochs, self.n_strat, len(CATEGORIES)))
        self.counts = np.zeros((self.n_strat, len(COUNTS)))
        net = {
            "budget_eth": 0.0,
            "allocated_eth": 0.0,
            "demand_gib": 0.0,
            "unmet_gib": 0.0,
            "validator_challenges": 0.0,
            "validator_gas_eth": 0.0,
            "validator_rewards_eth": 0.0,
            "validator_bounties_eth": 0.0,
            "burnt_eth": 0.0,
        }
        demand_period = m.demand_gib_per_slot_day * self.C * self.pop * period_s / DAY  # per root
        budget_wei = epoch_budget_wei(m.rewards_eth_per_host_day, self.H, p["epoch_length"])
        fees_wei = np.zeros(self.H, dtype=object)  # exact ints for the allocation
        # an outsourcer rebuilds each sampled row: from one host's plain copy (one fetch unit
        # holds the row's K segments) if hosts keep one, else from K other slots
        sources = 1 if m.serving_copy else K
        fetch_bytes = S * sources * self.fetch_unit
        fetch_s = fetch_bytes * 8 / (m.fetch_mbps * 1e6)
        fetch_ok = fetch_s <= p["response_window"]
        due_p = p["due_bps"] / 10_000
        honest_c = np.flatnonzero(self.h_honest[self.c_host])
        grief_hosts = np.flatnonzero(self.h_griefs)
        ring_hosts = np.flatnonzero(self.h_ring)
        epoch_of = [min(epochs - 1, int(k * period_s // epoch_s)) for k in range(periods)]
        self._money = money[0]
        self._book("gas", np.bincount(self.c_host, minlength=self.H) * g.commit * gwei)
        for k in range(periods):
            e = epoch_of[k]
            self._money = money[e]
            t_days = (k + 1) * period_s / DAY
            online = rng.random(self.H) >= self.h_offline
            c_online = online[self.c_host]
            act = self.active
            # -- downloads
            w = ((1.0 - self.x) * c_online * act * self.h_serves[self.c_host]).reshape(
                self.R, self.N
            )
            wsum = w.sum(axis=1)
            unit = np.minimum(self.size_gib, m.request_gib)
            gib = rng.poisson(demand_period / unit) * unit
            net["demand_gib"] += float(gib.sum())
            net["unmet_gib"] += float(gib[wsum <= 0].sum())
            share = np.divide(w, wsum[:, None], out=np.zeros_like(w), where=wsum[:, None] > 0)
            served_c = (share * gib[:, None]).ravel()
            served = np.bincount(self.c_host, weights=served_c, minlength=self.H)
            fake = np.zeros(self.H)
            fake[ring_hosts] = sc.behaviour.ring_fake_gib_per_host_day * period_s / DAY
            pay = (served + fake) * price
            self._book("payments", pay)
            self._book("fees", pay * fee_r)
            self._book("payments_made", fake * price)  # the ring's receivers pay it
            self._book("bandwidth", served * m.bandwidth_usd_per_gib * usd)
            receipts = np.ceil((served + fake) / m.receipt_gib)
            self._book("gas", (receipts * g.receipt + (receipts > 0) * g.receipt_batch) * gwei)
            fees_wei += np.round(pay * fee_r * 1e18).astype(np.int64).astype(object)
            net["burnt_eth"] += float((pay * fee_r).sum())
            self._count("served_gib", np.arange(self.H), served)
            self._count("fake_gib", np.arange(self.H), fake)
            # -- storage and capital (bytes held, stake locked, while the slot is active)
            held_gib = np.bincount(
                self.c_host, weights=self.c_store_gib * (1.0 - self.x) * act, minlength=self.H
            )
            self._book("storage", held_gib * m.storage_usd_per_gib_day * usd * period_s / DAY)
            staked = np.bincount(self.c_host, weights=self.stake * act, minlength=self.H) / 1e18
            self._book("capital", staked * m.capital_apr * period_s / (365 * DAY))
            # -- challenges: scheduled (validators), self, grief
            due = act & (rng.random(self.C) < due_p)
            selfc = act & ~due & self.h_self[self.c_host] & c_online
            grief = np.zeros(self.C, dtype=bool)
            griefer_of = np.full(self.C, -1, dtype=np.int64)
            if grief_hosts.size:
                n_each = rng.poisson(sc.behaviour.grief_per_host_period, grief_hosts.size)
                cand = honest_c[act[honest_c] & ~due[honest_c]]
                total = min(int(n_each.sum()), cand.size)
                if total:
                    targets = rng.choice(cand, size=total, replace=False)
                    who = np.repeat(grief_hosts, n_each)[:total]
                    grief[targets] = True
                    griefer_of[targets] = who
                    self._book_host("gas", who, g.challenge * gwei)
            partial_c = act & c_online & (self.x > 0) & (self.x < 1)
            partial_c &= ~self.h_outsources[self.c_host]
            self._count("missing_periods", self.c_host[partial_c])
            challenged = due | selfc | grief
            idx = np.flatnonzero(challenged)
            if idx.size == 0:
                self._end_period(k, periods, epoch_of, fees_wei, budget_wei, net, g, gwei)
                continue
            hosts = self.c_host[idx]
            on = c_online[idx]
            ok = on.copy()
            out_mask = self.h_outsources[hosts]
            # ordinary hosts: every sampled row must be one they hold. Whole slots are all or
            # nothing; a partial slot is sampled with the product's draw over its rows.
            plain = ~out_mask
            xs = self.x[idx]
            ok[plain & (xs >= 1.0)] = False
            for pos in np.flatnonzero(plain & on & (xs > 0) & (xs < 1)):
                ok[pos] = self._proves(int(idx[pos]), S)
            # outsourcers: K other hosts of the root online with their whole slot, in time
            fetch_pay = np.zeros(self.H)
            fetch_gas = np.zeros(self.H)
            src_pay = np.zeros(self.H)
            for pos in np.flatnonzero(out_mask):
                ci = int(idx[pos])
                r = int(self.c_root[ci])
                others = np.arange(r * self.N, (r + 1) * self.N)
                others = others[others != ci]
                good = others[
                    self.active[others]
                    & c_online[others]
                    & (self.x[others] == 0)
                    & self.h_serves[self.c_host[others]]
                ]
                if not (on[pos] and fetch_ok and good.size >= sources):
                    ok[pos] = False
                    continue
                rows = self.rows[r]
                distinct = rows * (1.0 - (1.0 - 1.0 / rows) ** S)
                # never more than the whole content (or slot) a source holds
                whole = self.size_gib[r] if sources == 1 else self.slot_gib[r]
                cost = min(distinct * self.fetch_unit / GIB, whole) * sources * price
                fetch_pay[self.c_host[ci]] += cost
                src = self.c_host[good[:sources]]
                np.add.at(src_pay, src, cost / sources)
                # each source submits the outsourcer's receipt (a batch of one)
                np.add.at(fetch_gas, src, float(g.receipt_batch + g.receipt))
            if fetch_pay.any():
                self._book("payments_made", fetch_pay)
                self._book("gas", fetch_gas * gwei)
                self._book("payments", src_pay)
                self._book("fees", src_pay * fee_r)
                fees_wei += np.round(src_pay * fee_r * 1e18).astype(np.int64).astype(object)
            # missing-row detection statistics (lazy hosts that were online)
            miss = plain & (self.x[idx] > 0) & (self.x[idx] < 1) & on
            self._count("missing_challenges", hosts[miss])
            self._count("missing_failures", hosts[miss & ~ok])
            self._count("challenges", hosts)
            sched = due[idx]
            self_ = selfc[idx]
            griefed = grief[idx]
            # challenge gas: validators for scheduled ones (network), the host for its own
            n_sched = int(sched.sum())
            net["validator_challenges"] += n_sched
            net["validator_gas_eth"] += n_sched * g.challenge * gwei
            self._book_host("gas", hosts[self_], g.challenge * gwei)
            # -- passes
            pidx, phost = idx[ok], hosts[ok]
            self._book_host("gas", phost, respond_gas[self.c_root[pidx]] * gwei)
            amount = rate * self.c_gib[pidx] * (t_days - self.last_paid[pidx])
            self.last_paid[pidx] = t_days
            self.faults[pidx] = 0
            self._book_host("storage_pay", phost, amount)
            self._book_host("fees", phost, amount * fee_s)
            net["burnt_eth"] += float((amount * fee_s).sum())
            np.add.at(
                fees_wei, phost, np.round(amount * fee_s * 1e18).astype(np.int64).astype(object)
            )
            # the scheduled reward is paid on every resolution of a scheduled challenge (pass or
            # expiry; DataAvailability), from the pool the protocol funds
            net["validator_rewards_eth"] += float(sched.sum()) * reward
            # ad-hoc bonds of griefers go to the host that answered
            g_ok = griefed & ok
            self._book_host("bonds_received", hosts[g_ok], bond)
            self._book_host("bonds_lost", griefer_of[idx[g_ok]], bond)
            self._count("passes", phost)
            # -- faults (expired)
            fidx, fhost = idx[~ok], hosts[~ok]
            self.faults[fidx] += 1
            self.last_paid[fidx] = t_days  # a fault forfeits the storage accrued so far
            term = self.faults[fidx] >= p["max_faults"]
            bps = np.where(term, p["proof_slash_bps"], p["fault_slash_bps"])
            slashed = self.stake[fidx] * bps / 10_000 / 1e18
            self.stake[fidx] -= slashed * 1e18
            self._book_host("slashed", fhost, slashed)
            self._count("faults", fhost)
            self._count("terminations", fhost[term])
            self.active[fidx[term]] = False
            # the challenger of record calls slashExpired and is owed half the slash
            f_grief = griefed[~ok]
            gr = griefer_of[fidx[f_grief]]
            self._book_host("gas", gr, g.slash_expired * gwei)
            self._book_host("bounties", gr, slashed[f_grief] / 2)
            f_val = sched[~ok]
            net["validator_gas_eth"] += float(f_val.sum()) * g.slash_expired * gwei
            net["validator_bounties_eth"] += float(slashed[f_val].sum()) / 2
            # -- reputation, in chain order (slot order within the period)
            upd = self.ledger.update_reputation
            rp = self.rep_params
            reps = self.reps
            for h, passed in zip(hosts.tolist(), ok.tolist(), strict=True):
                reps[h] = upd(reps[h], "pass" if passed else "expired", rp)
            self._end_period(k, periods, epoch_of, fees_wei, budget_wei, net, g, gwei)
        hosts_per = np.bincount(self.host_strat, minlength=self.n_strat).astype(np.int64)
        return SeedResult(self.seed, self.strategies, hosts_per, money, self.counts, net)

    def _end_period(
        self,
        k: int,
        periods: int,
        epoch_of: list[int],
        fees_wei: npt.NDArray[Any],
        budget_wei: int,
        net: dict[str, float],
        g: Any,
        gwei: float,
    ) -> None:
        """At the last period of an epoch: the allocation, claims and withdrawals."""
        if k + 1 < periods and epoch_of[k + 1] == epoch_of[k]:
            return
        fees = {self.addr[h]: int(f) for h, f in enumerate(fees_wei.tolist()) if f > 0}
        reps = {a: self.reps[h] for h, a in enumerate(self.addr) if a in fees}
        amounts = self.ledger.allocate_amounts(
            fees, reps, budget_wei, self.reward_params, self.rep_params
        )
        sub = np.zeros(self.H)
        paid = np.zeros(self.H)
        for a, amt in amounts.items():
            h = int(a, 16) - 1
            sub[h] = amt / 1e18
            paid[h] = 1.0
        self._book("subsidy", sub)
        self._book("gas", paid * g.claim * gwei)
        # one withdrawal per host and epoch that earned anything
        earned = np.asarray(fees_wei > 0, dtype=np.float64)
        self._book("gas", earned * g.withdraw * gwei)
        net["budget_eth"] += budget_wei / 1e18
        net["allocated_eth"] += float(sub.sum())
        fees_wei[:] = 0
