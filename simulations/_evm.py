"""EVM-in-the-loop: the model's world played on the real contracts, then compared with the model.

``python -m simulations run evm-small --evm --out DIR`` deploys the suite on the embedded py-evm
chain (Cancun rules, the project's ``evm_version``) with the deployment defaults
(``chain.deploy.DeployParams``; only ``periodBlocks`` is shortened, with the model's block time
stretched to match, so that a proof period is still one epoch), and plays one seed of the
scenario on it, with the same hosts, strategies, roots and slot assignment as the model's world
for that seed:

- the publisher registers each root (real bytes, size proof, slots root) and funds its storage;
- hosts build their slots with ``node.store.SlotStore`` and commit stake; free-riders and
  outsourcers commit the registered slot roots without keeping the data;
- receivers with escrow pay providers in signed receipts (``node.receipt``) the providers
  submit; the sybil ring's receivers pay the ring's providers for fake downloads;
- the validator challenges what the chain says is due (``due_commitments``); hosts answer with
  ``SlotStore.prove``; a lazy host answers only when none of the drawn rows is one it lost,
  flaky hosts only when online, the outsourcer after paying an online host for the rows it
  needs and rebuilding them; the validator settles expired challenges with ``slashExpired``;
- at the end the chain is indexed (``chain.indexer``), every epoch's allocation is computed by
  ``node.ledger.PayoutLedger``, signed, posted and claimed (each claim within the on-chain fee
  cap).

Checks: (1) the model's rules reproduce the chain's amounts exactly (every slash is
``stake * bps / 10^4`` with the model's fault/termination rule, every storage payment is the
model's formula, every allocation equals ``allocate_amounts`` over the model's own bookkeeping
of fees and reputations); (2) each strategy's ROI on chain lies in the model's prediction
interval for one run (jointly 95% over the strategies, Bonferroni; the model over
:data:`MODEL_SEEDS` seeds). Gas is measured per transaction kind and reported next to the
model's assumptions.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from ._errors import SimulationError
from ._model import CATEGORIES, COSTS, GIB, REVENUE, Model, _lost, epoch_budget_wei
from ._params import Scenario
from ._runner import resolve, run_seeds, summary
from ._strategies import NAMES, STRATEGIES

#: Blocks per proof period on the embedded chain (the deployment's 28,800 would mean mining
#: 28,800 blocks per simulated 4-day epoch); the model gets
#: ``block_seconds = epoch_length / EVM_PERIOD_BLOCKS`` so a period is still one epoch.
EVM_PERIOD_BLOCKS = 120
#: Model seeds behind the prediction intervals (the model is cheap; the chain run is one seed).
MODEL_SEEDS = 40
SUPPORTED = set(NAMES)  #: every strategy of the library plays on the chain too


class EvmModeError(SimulationError):
    """The scenario cannot run on the chain as asked (too large, unsupported strategy)."""


@dataclass
class EvmReport:
    name: str
    seconds: float
    strategies: dict[str, dict[str, Any]]
    gas: dict[str, dict[str, float]]
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return all(c["ok"] for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": self.seconds,
            "agrees": self.agrees,
            "strategies": self.strategies,
            "gas": self.gas,
            "checks": self.checks,
        }

    def text(self) -> str:
        lines = [
            f"{self.name} on py-evm (Cancun) in {self.seconds:.1f} s: "
            + ("AGREES with the model" if self.agrees else "DISAGREES with the model"),
            f"{'strategy':<19}{'hosts':>6}{'ROI chain':>11}{'model, same seed':>18}"
            f"{'model mean':>12}{'joint 95% prediction':>24}",
        ]
        for name, s in self.strategies.items():
            lo, hi = s["model_roi_pi95"]
            same = s["model_roi_same_seed"]
            lines.append(
                f"{name:<19}{s['hosts']:>6}{s['roi_chain']:>11.3f}"
                f"{'' if same is None else f'{same:.3f}':>18}{s['model_roi_mean']:>12.3f}"
                f"   [{lo:>7.3f}, {hi:>7.3f}]" + ("" if s["roi_in_interval"] else "  <- outside")
            )
        for c in self.checks:
            lines.append(f"[{'ok' if c['ok'] else 'FAIL'}] {c['what']}")
        lines.append("gas per call (measured mean, model assumption):")
        for kind, g in self.gas.items():
            lines.append(f"  {kind:<22}{g['mean']:>11.0f}{g.get('model', float('nan')):>11.0f}")
        return "\n".join(lines) + "\n"


def evm_scenario(scenario: Scenario) -> Scenario:
    """The scenario as both sides run it: short periods on chain, the same period in time."""
    bad = set(scenario.fractions()) - SUPPORTED
    if bad:
        raise EvmModeError(f"--evm does not play {', '.join(sorted(bad))}")
    if scenario.run.hosts > 40 or scenario.run.epochs > 10:
        raise EvmModeError("--evm is for small scenarios (<= 40 hosts, <= 10 epochs)")
    epoch = resolve(scenario).protocol["epoch_length"]
    return scenario.with_values(
        {
            "protocol.period_blocks": EVM_PERIOD_BLOCKS,
            "market.block_seconds": epoch / EVM_PERIOD_BLOCKS,
        }
    )


class _Play:
    """One seed of the scenario on the chain (synchronous; the embedded chain is in-process)."""

    def __init__(self, scenario: Scenario, seed: int, workdir: Path) -> None:
        from chain import ChainClient, DeployParams, EmbeddedChain, deploy_suite

        self.sc = scenario
        setup = resolve(scenario)
        self.p = p = setup.protocol
        self.world = Model(scenario, p, setup.fetch_unit, seed)
        self.fetch_unit = setup.fetch_unit
        self.rng = np.random.default_rng(seed + 10_000)
        self.workdir = workdir
        w = self.world
        H = w.H
        self.backend = EmbeddedChain(hardfork="cancun", accounts=H + 4)
        dev = self.backend.dev_accounts()
        self.deployer, self.validator, self.publisher = dev[0], dev[1], dev[2]
        self.host_acct = dev[3 : 3 + H]
        fields_: dict[str, Any] = {f: p[f] for f in DeployParams.__dataclass_fields__ if f in p}
        self.params = replace(
            DeployParams(**fields_), validators=(self.validator.address,), quorum=1
        )
        self.deployment = deploy_suite(self.backend, self.deployer, self.params)
        self.client = ChainClient(self.backend, self.deployment, self.deployer)
        self.val = self.client.as_account(self.validator)
        self.pub = self.client.as_account(self.publisher)
        self.hosts = [self.client.as_account(a) for a in self.host_acct]
        self.addr = [a.address.lower() for a in self.host_acct]
        self.index = {a: h for h, a in enumerate(self.addr)}
        self.genesis = int(self.client._immutable(self.client.receipts, "genesis"))
        self.gwei = scenario.market.gas_price_gwei * 1e-9
        self.money = np.zeros((H, len(CATEGORIES)))
        self.gas: dict[str, list[int]] = defaultdict(list)
        self.checks: list[dict[str, Any]] = []
        self.fees_epoch: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.model_reps: dict[int, dict[str, Any]] = {}
        self.ledger = __import__("node.ledger", fromlist=["x"])
        self.reps = [self.ledger.Reputation.initial(self.ledger.ReputationParams())] * H
        self.nonce: dict[str, int] = defaultdict(int)
        self.pair: dict[tuple[str, int, int, int], int] = defaultdict(int)
        self.rule_errors: list[str] = []
        self.batches: list[tuple[int, int]] = []  #: (receipts, gas) per submitBatch
        self.griefed: dict[int, int] = {}  #: challenge id -> griefer host

    # -- bookkeeping ----------------------------------------------------------------------

    def book(self, h: int, cat: str, eth: float) -> None:
        self.money[h, CATEGORIES.index(cat)] += eth

    def tx(self, kind: str, who: int | None, fn: Callable[[], Any]) -> Any:
        res = fn()
        if hasattr(res, "txs"):  # a SubmitReport
            results = list(res.txs)
        elif isinstance(res, tuple):  # (TxResult, Challenge)
            results = [res[0]]
        else:
            results = res if isinstance(res, list) else [res]
        for r in results:
            gas = getattr(r, "gas_used", None)
            if gas is None:
                continue
            self.gas[kind].append(int(gas))
            if who is not None:
                self.book(who, "gas", gas * self.gwei)
            self._events(r)
        return res

    def _events(self, res: Any) -> None:
        """Book every suite event of a transaction to the host it concerns."""
        for e in res.events:
            a = e.args
            if e.name == "ReceiptAccepted":
                h = self.index.get(str(a["provider"]).lower())
                if h is None:
                    continue
                pay, fee = int(a["payment"]), int(a["fee"])
                self.book(h, "payments", pay / 1e18)
                self.book(h, "fees", fee / 1e18)
                self.fees_epoch[int(a["epoch"]) - 1][self.addr[h]] += fee
                if fee != pay * self.p["receipt_fee_bps"] // 10_000:
                    self.rule_errors.append(f"receipt fee {fee} != payment {pay} x feeBps")
            elif e.name == "StoragePaid":
                h = self.index[str(a["host"]).lower()]
                amount, fee = int(a["amount"]), int(a["fee"])
                self.book(h, "storage_pay", amount / 1e18)
                self.book(h, "fees", fee / 1e18)
                self.fees_epoch[int(a["epoch"]) - 1][self.addr[h]] += fee
                self._check_storage(h, bytes(a["root"]), int(a["slot"]), amount, fee)
            elif e.name == "ChallengePassed":
                h = self.index[str(a["host"]).lower()]
                self.faults[self.c_of[(bytes(a["root"]), int(a["slot"]))]] = 0
                self._rep(h, "pass")
                griefer = self.griefed.get(int(a["id"]))
                if griefer is not None:  # an ad-hoc bond goes to the host that answered
                    self.book(h, "bonds_received", self.p["challenge_bond"] / 1e18)
                    self.book(griefer, "bonds_lost", self.p["challenge_bond"] / 1e18)
            elif e.name == "ChallengeFailed":
                h = self.index[str(a["host"]).lower()]
                self._failed(h, bytes(a["root"]), int(a["slot"]), a)
                griefer = self.griefed.get(int(a["id"]))
                if griefer is not None:  # the challenger of record is owed half the slash
                    self.book(griefer, "bounties", int(a["slashed"]) // 2 / 1e18)

    def _rep(self, h: int, outcome: str) -> None:
        self.reps[h] = self.ledger.update_reputation(self.reps[h], outcome)

    # -- the model's rules, checked against every chain amount ------------------------------

    def _check_storage(self, h: int, root: bytes, slot: int, amount: int, fee: int) -> None:
        c = self.c_of[(root, slot)]
        now = self.backend.timestamp()
        dt = now - self.last_paid[c]
        self.last_paid[c] = now
        slot_bytes = self.layouts[self.world.c_root[c]].slot_bytes
        want = self.p["storage_rate_per_gib_day"] * slot_bytes * dt // (GIB * 86400)
        if amount != want or fee != amount * self.p["storage_fee_bps"] // 10_000:
            self.rule_errors.append(f"storage pay {amount} (fee {fee}) != model {want}")

    def _failed(self, h: int, root: bytes, slot: int, a: dict[str, Any]) -> None:
        c = self.c_of[(root, slot)]
        reason, slashed, terminated = int(a["reason"]), int(a["slashed"]), bool(a["terminated"])
        self.book(h, "slashed", slashed / 1e18)
        if reason != 1:  # only expiries are played: nobody sends a proof it cannot make
            self.rule_errors.append(f"unexpected failure reason {reason}")
        self.faults[c] += 1
        term = self.faults[c] >= self.p["max_faults"]
        bps = self.p["proof_slash_bps"] if term else self.p["fault_slash_bps"]
        want = self.stake[c] * bps // 10_000
        if slashed != want or terminated != term:
            self.rule_errors.append(
                f"slash {slashed} (terminated {terminated}) != model {want} ({term})"
            )
        self.stake[c] -= slashed
        self.last_paid[c] = self.backend.timestamp()  # a fault forfeits the accrued storage
        if terminated:
            self.active[c] = False
        self._rep(h, "expired")

    # -- setup ------------------------------------------------------------------------------

    def setup(self) -> None:
        from node.content import SlotLayout, encode_slot_roots, slot_root_proof
        from node.store import SlotStore

        w, p = self.world, self.p
        K, N = w.K, w.N
        self.content: list[bytes] = []
        self.layouts: list[Any] = []
        self.roots: list[bytes] = []
        self.slot_roots: list[list[bytes]] = []
        for r in range(w.R):
            size = max(4097, round(w.size_gib[r] * GIB))
            data = self.rng.bytes(size)
            self.content.append(data)
            layout = SlotLayout(size, K, N)
            self.layouts.append(layout)
            read = _reader(data)
            register = partial(self.pub.publish_content, read, size, data_shards=K, slot_count=N)
            res = self.tx("register", None, register)
            self.roots.append(bytes(res.event("ContentRegistered").args["root"]))
            self.slot_roots.append(encode_slot_roots(read, layout)[0])
            self.tx("fundStorage", None, partial(self.pub.fund_storage, self.roots[r], 10**21))
        # sizes as registered: the model's world uses the same bytes
        w.size_gib = np.array([len(d) / GIB for d in self.content])
        w.rows = np.array([lay.rows for lay in self.layouts], dtype=np.float64)
        w.slot_gib = w.rows * 4096 / GIB
        w.c_gib = w.slot_gib[w.c_root]
        w.c_store_gib = w.c_gib + self.sc.market.serving_copy * w.size_gib[w.c_root]
        self.tx("fundRewards", None, partial(self.pub.fund_rewards, 10**18))
        self.stores = [SlotStore.open(self.workdir / f"host{h}", durable=False) for h in range(w.H)]
        self.c_of: dict[tuple[bytes, int], int] = {}
        C = w.C
        self.stake = [p["min_stake"]] * C
        self.faults = [0] * C
        self.active = [True] * C
        self.last_paid = [0] * C
        for c in range(C):
            r, j, h = int(w.c_root[c]), int(c % N), int(w.c_host[c])
            root = self.roots[r]
            self.c_of[(root, j)] = c
            strat = STRATEGIES[w.strategies[w.host_strat[h]]]
            if w.x[c] < 1.0 and not strat.outsources:
                self.stores[h].build(
                    root,
                    j,
                    self.layouts[r],
                    _reader(self.content[r]),
                    expected_slot_root=self.slot_roots[r][j],
                )
            proof = slot_root_proof(self.slot_roots[r], j)
            commit = partial(
                self.hosts[h].commit, root, j, self.slot_roots[r][j], proof, p["min_stake"]
            )
            res = self.tx("commit", h, commit)
            self.last_paid[c] = self.backend.w3.eth.get_block(res.block)["timestamp"]
        # receivers: honest ones funded by the publisher, the ring's by the ring's hosts
        from eth_account import Account

        self.receivers = [Account.create() for _ in range(8)]
        for acct in self.receivers:
            self.tx("deposit", None, partial(self.pub.deposit, 10**22, acct.address))
        self.ring_receivers: dict[int, list[Any]] = {}
        for ring in np.flatnonzero(w.h_ring).tolist():
            accts = [Account.create() for _ in range(4)]
            self.ring_receivers[ring] = accts
            for acct in accts:
                self.tx("deposit", None, partial(self.hosts[ring].deposit, 10**22, acct.address))
        for out in np.flatnonzero(w.h_outsources).tolist():
            self.tx("deposit", None, partial(self.hosts[out].deposit, 10**22))

    # -- one epoch --------------------------------------------------------------------------

    def epoch(self, k: int) -> None:
        w, p, m = self.world, self.p, self.sc.market
        # move to the start of chain epoch k + 1 and of the next proof period
        target = self.genesis + (k + 1) * p["epoch_length"] + 60
        now = self.backend.timestamp()
        if target > now:
            self.backend.time_travel(target - now)
        period = self.client.current_period()
        start = self.client.period_start(period + 1)
        self.backend.mine(max(1, start - self.backend.block_number() + 1))
        online = self.rng.random(w.H) >= w.h_offline
        self._downloads(k, online)
        self._challenges(k, online)
        self.model_reps[k] = dict(zip(self.addr, self.reps, strict=True))
        # one withdrawal per host and epoch that earned anything (as the model books it)
        for h in range(w.H):
            if self.fees_epoch[k].get(self.addr[h], 0) <= 0:
                continue
            if self.client.earnings(self.host_acct[h].address) > 0:
                self.tx("withdraw", h, self.hosts[h].withdraw_earnings)
            elif self.client.owed_to(self.host_acct[h].address) > 0:
                self.tx("withdraw", h, self.hosts[h].withdraw_owed)
        # storage and capital: the same off-chain costs as the model, for one period
        usd = 1.0 / m.eth_usd
        period_days = p["period_blocks"] * m.block_seconds / 86400
        for c in range(w.C):
            if not self.active[c]:
                continue
            h = int(w.c_host[c])
            held = w.c_store_gib[c] * (1.0 - w.x[c])
            self.book(h, "storage", held * m.storage_usd_per_gib_day * usd * period_days)
            self.book(h, "capital", self.stake[c] / 1e18 * m.capital_apr * period_days / 365)

    def _sign(self, acct: Any, provider: int, r: int, nbytes: int, payment: int) -> Any:
        from node.receipt import Receipt, sign_receipt

        self.nonce[acct.address] += 1
        rec = Receipt(
            self.roots[r],
            self.host_acct[provider].address,
            acct.address,
            nbytes,
            max(1, -(-nbytes // (1 << 20))),
            payment,
            self.nonce[acct.address],
            self.backend.timestamp() - 1,
        )
        return sign_receipt(acct, rec, self.client.receipt_domain)

    def _downloads(self, k: int, online: np.ndarray) -> None:
        from node.receipt import payment_for

        w, m = self.world, self.sc.market
        price = int(self.p["min_price_per_gib"] * m.price_multiple)
        days = self.p["period_blocks"] * m.block_seconds / 86400  # market quantities are per day
        demand = m.demand_gib_per_slot_day * w.C * w.pop
        batches: dict[int, list[Any]] = defaultdict(list)
        for r in range(w.R):
            size = len(self.content[r])
            unit = min(size, int(m.request_gib * GIB))
            n = int(self.rng.poisson(demand[r] * days / (unit / GIB)))
            cs = np.arange(r * w.N, (r + 1) * w.N)
            wts = np.array(
                [
                    (1 - w.x[c]) * online[w.c_host[c]] * self.active[c] * w.h_serves[w.c_host[c]]
                    for c in cs
                ]
            )
            if n == 0 or wts.sum() <= 0:
                continue
            for _ in range(n):
                c = int(self.rng.choice(cs, p=wts / wts.sum()))
                h = int(w.c_host[c])
                acct = self._receiver(h, r, unit, k, self.receivers)
                batches[h].append(self._sign(acct, h, r, unit, payment_for(unit, price)))
                self.book(h, "bandwidth", unit / GIB * m.bandwidth_usd_per_gib / m.eth_usd)
        for h, accts in self.ring_receivers.items():
            fake = int(self.sc.behaviour.ring_fake_gib_per_host_day * days * GIB)
            mine = [int(w.c_root[c]) for c in np.flatnonzero(w.c_host == h)]
            while fake > 0:
                r = mine[self.nonce["ring"] % len(mine)]
                self.nonce["ring"] += 1
                nbytes = min(fake, len(self.content[r]))
                acct = self._receiver(h, r, nbytes, k, accts)
                pay = payment_for(nbytes, price)
                batches[h].append(self._sign(acct, h, r, nbytes, pay))
                self.book(h, "payments_made", pay / 1e18)
                fake -= nbytes
        for h, batch in sorted(batches.items()):
            report = self.tx("submitBatch", h, partial(self.hosts[h].submit_receipts, batch))
            self.batches.append((len(batch), report.gas_used))
            if report.rejected or report.deferred:
                self.rule_errors.append(
                    "receipts not credited: "
                    + ", ".join(x.reason for x in report.rejected + report.deferred)
                )

    def _receiver(self, h: int, r: int, nbytes: int, k: int, pool: list[Any]) -> Any:
        """A receiver of ``pool`` that may still be credited ``nbytes`` for (provider, root)
        this epoch (the contract caps each receiver-provider-root-epoch at the root's size)."""
        size = len(self.content[r])
        for i, acct in enumerate(pool):
            if self.pair[(acct.address, h, r, k)] + nbytes <= size:
                self.pair[(acct.address, h, r, k)] += nbytes
                return acct
            if i == len(pool) - 1:
                break
        from eth_account import Account

        acct = Account.create()
        pool.append(acct)
        payer = self.pub if pool is self.receivers else self.hosts[h]
        self.tx("deposit", None, partial(payer.deposit, 10**22, acct.address))
        self.pair[(acct.address, h, r, k)] += nbytes
        return acct

    def _challenges(self, k: int, online: np.ndarray) -> None:
        from node.receipt import payment_for

        w, p = self.world, self.p
        due = self.val.due_commitments()
        issued = []
        for root, slot, _host in due:
            _, ch = self.tx("challenge", None, partial(self.val.challenge, root, slot))
            issued.append(ch)
        taken = {(bytes(ch.root), ch.slot) for ch in issued}
        # ad-hoc challenges: self-challengers on their own slots, griefers on honest ones
        for h in np.flatnonzero(w.h_self & online).tolist():
            for c in np.flatnonzero(w.c_host == h).tolist():
                key = (self.roots[int(w.c_root[c])], c % w.N)
                if self.active[c] and key not in taken:
                    _, ch = self.tx("challenge", h, partial(self.hosts[h].challenge, *key))
                    issued.append(ch)
                    taken.add(key)
        for h in np.flatnonzero(w.h_griefs).tolist():
            n = int(self.rng.poisson(self.sc.behaviour.grief_per_host_period))
            cand = [
                c
                for c in np.flatnonzero(w.h_honest[w.c_host]).tolist()
                if self.active[c] and (self.roots[int(w.c_root[c])], c % w.N) not in taken
            ]
            for c in self.rng.permutation(cand)[:n].tolist():
                key = (self.roots[int(w.c_root[c])], c % w.N)
                _, ch = self.tx("challenge", h, partial(self.hosts[h].challenge, *key))
                self.griefed[ch.id] = h
                issued.append(ch)
                taken.add(key)
        self.backend.mine(2)  # the seed block, then one to read the draw in
        price = int(p["min_price_per_gib"] * self.sc.market.price_multiple)
        for ch in issued:
            c = self.c_of[(bytes(ch.root), ch.slot)]
            h, r = int(w.c_host[c]), int(w.c_root[c])
            strat = STRATEGIES[w.strategies[w.host_strat[h]]]
            got = self.client.get_challenge(ch.id)
            idx = list(got.indices or ())
            if not online[h] or not idx or (w.x[c] >= 1.0 and not strat.outsources):
                continue
            store = self.stores[h]
            if strat.outsources:
                sources = [
                    int(w.c_host[o])
                    for o in range(r * w.N, (r + 1) * w.N)
                    if o != c
                    and self.active[o]
                    and online[w.c_host[o]]
                    and w.x[o] == 0
                    and w.h_serves[w.c_host[o]]
                ]
                if not sources:
                    continue
                src = sources[0]
                nbytes = min(len(self.content[r]), len(set(idx)) * self.fetch_unit)
                pay = payment_for(nbytes, price)
                signed = self._sign(self.host_acct[h], src, r, nbytes, pay)
                self.tx(
                    "submitBatch",
                    src,
                    partial(self.hosts[src].submit_receipts, [signed]),
                )
                self.book(h, "payments_made", pay / 1e18)
                store.build(
                    bytes(ch.root),
                    ch.slot,
                    self.layouts[r],
                    _reader(self.content[r]),
                    expected_slot_root=self.slot_roots[r][ch.slot],
                )
            elif (
                0 < w.x[c] < 1 and _lost(w.salt[c], np.asarray(idx, dtype=np.uint64), w.x[c]).any()
            ):
                continue  # a drawn row is one it lost: it cannot prove, and sends nothing
            answers = store.prove(bytes(ch.root), ch.slot, idx)
            self.tx(
                "respond",
                h,
                partial(
                    self.hosts[h].respond,
                    ch.id,
                    [seg for seg, _ in answers],
                    [pth for _, pth in answers],
                ),
            )
            if strat.outsources:
                store.remove(bytes(ch.root), ch.slot)
        self.backend.time_travel(p["response_window"] + 1)
        self.backend.mine(1)
        for cid in self.val.expired_challenges():
            griefer = self.griefed.get(cid)  # a griefer settles its own challenges
            if griefer is None:
                self.tx("slashExpired", None, partial(self.val.slash_expired, cid))
            else:
                self.tx("slashExpired", griefer, partial(self.hosts[griefer].slash_expired, cid))

    # -- the end: index, allocate, post, claim -------------------------------------------------

    def finish(self, epochs: int) -> None:
        import plyvel

        from chain.eip712 import ZERO_ADDRESS
        from chain.indexer import Indexer
        from chain.merkle import AllocationTree
        from node.ledger import PayoutLedger, RewardParams

        w, p, m = self.world, self.p, self.sc.market
        self.backend.time_travel(2 * p["epoch_length"])
        self.backend.mine(2)
        db = plyvel.DB(str(self.workdir / "index"), create_if_missing=True)
        try:
            indexer = Indexer(db, self.backend, self.deployment, confirmations=0)
            indexer.sync()
            ledger = PayoutLedger(db, reward=RewardParams(rebate_bps=p["rebate_bps"]))
            for ev in indexer.ledger_events():
                ledger.apply(ev)
            budget = epoch_budget_wei(m.rewards_eth_per_host_day, w.H, p["epoch_length"])
            mismatches = 0
            for k in range(epochs):
                e = k + 1
                alloc = ledger.allocate(e, budget)
                amounts = dict(alloc.amounts)
                mine = self.ledger.allocate_amounts(
                    dict(self.fees_epoch[k]),
                    self.model_reps[k],
                    budget,
                    self.ledger.RewardParams(rebate_bps=p["rebate_bps"]),
                )
                if mine != amounts:
                    mismatches += 1
                self.tx("fundEpoch", None, partial(self.client.fund_epoch, e, budget))
                if not amounts:
                    continue
                tree = AllocationTree(amounts)
                sig = self.val.sign_allocation(e, ZERO_ADDRESS, tree.root, tree.total)
                self.tx(
                    "postAllocation",
                    None,
                    partial(
                        self.val.post_allocation, e, ZERO_ADDRESS, tree.root, tree.total, [sig]
                    ),
                )
                for host, amount in amounts.items():
                    h = self.index[host.lower()]
                    self.tx(
                        "claim",
                        h,
                        partial(
                            self.hosts[h].claim,
                            e,
                            ZERO_ADDRESS,
                            host,
                            tree.amount_for(host),
                            tree.proof_for(host),
                        ),
                    )
                    self.book(h, "subsidy", amount / 1e18)
            final = {a: ledger.reputation(a) for a in self.addr}
        finally:
            db.close()
        self.check(
            "every allocation of the PayoutLedger (indexer events) equals allocate_amounts over "
            "the model's bookkeeping of the same epoch's fees and reputations",
            mismatches == 0,
            f"{mismatches} of {epochs} epochs differ",
        )
        same = all(
            (final[a].alpha, final[a].beta, final[a].passes)
            == (self.reps[h].alpha, self.reps[h].beta, self.reps[h].passes)
            for h, a in enumerate(self.addr)
        )
        self.check(
            "the model's reputations (update_reputation per proof event, in chain order) equal "
            "the ledger's",
            same,
        )
        self.check(
            "every slash, storage payment and receipt fee on chain is the model's formula",
            not self.rule_errors,
            "; ".join(self.rule_errors[:5]),
        )

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        self.checks.append({"what": what, "ok": bool(ok), "detail": detail})

    def close(self) -> None:
        for s in getattr(self, "stores", []):
            s.close()


def _reader(data: bytes) -> Callable[[int, int], bytes]:
    def read(offset: int, length: int) -> bytes:
        return data[offset : offset + length]

    return read


def run_evm(scenario: Scenario, out: Path, seed: int | None = None) -> EvmReport:
    """Play ``scenario`` (seed ``seed``) on the embedded chain, compare with the model, write
    ``evm.json`` and ``summary.json`` (the model's) into ``out``."""
    sc = evm_scenario(scenario)
    seed = sc.run.seed if seed is None else seed
    start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bcai-sim-evm-"))
    play = _Play(sc, seed, workdir)
    try:
        play.setup()
        for k in range(sc.run.epochs):
            play.epoch(k)
        play.finish(sc.run.epochs)
    finally:
        play.close()
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.perf_counter() - start
    model = summary(run_seeds(sc, seeds=max(sc.run.seeds, MODEL_SEEDS)))
    w = play.world
    rev_i = [CATEGORIES.index(c) for c in REVENUE]
    cost_i = [CATEGORIES.index(c) for c in COSTS]
    strategies: dict[str, dict[str, Any]] = {}
    # one joint 95% statement over all strategies: Bonferroni, two-sided, normal quantile
    z = NormalDist().inv_cdf(1 - 0.05 / (2 * len(w.strategies)))
    for si, name in enumerate(w.strategies):
        mask = w.host_strat == si
        rev = float(play.money[mask][:, rev_i].sum())
        cost = float(play.money[mask][:, cost_i].sum())
        roi = rev / cost if cost > 0 else 0.0
        per_seed = np.asarray(model["strategies"][name]["roi_per_seed"])
        n = per_seed.size
        half = z * float(per_seed.std(ddof=1)) * math.sqrt(1 + 1 / n) if n > 1 else 0.0
        mean = float(per_seed.mean())
        lo, hi = mean - half, mean + half
        same = model["seeds"].index(seed) if seed in model["seeds"] else None
        strategies[name] = {
            "hosts": int(mask.sum()),
            "roi_chain": roi,
            "model_roi_same_seed": None if same is None else float(per_seed[same]),
            "model_roi_mean": mean,
            "model_roi_pi95": [lo, hi],
            "roi_in_interval": lo - 1e-9 <= roi <= hi + 1e-9,
            "chain_usd": {
                c: float(play.money[mask][:, CATEGORIES.index(c)].sum()) * sc.market.eth_usd
                for c in CATEGORIES
            },
        }
    play.check(
        "each strategy's ROI on chain lies in the model's prediction interval (joint 95%, "
        "Bonferroni over the strategies; model over "
        f"{len(model['seeds'])} seeds)",
        all(s["roi_in_interval"] for s in strategies.values()),
        ", ".join(n for n, s in strategies.items() if not s["roi_in_interval"]),
    )
    g = sc.gas
    assumed: dict[str, int] = {
        # at the mean audit-path length of the slots the chain run proved
        "respond": round(
            g.respond_base
            + play.p["samples"]
            * (
                g.respond_per_sample
                + g.respond_per_level * float(np.mean(np.ceil(np.log2(w.rows))))
            )
        ),
        "challenge": g.challenge,
        "slashExpired": g.slash_expired,
        "claim": g.claim,
        "commit": g.commit,
        "withdraw": g.withdraw,
    }
    if len({n for n, _ in play.batches}) >= 2:  # gas = batch + n * receipt, least squares
        n_, g_ = np.array(play.batches, dtype=np.float64).T
        per, base = np.polyfit(n_, g_, 1)
        play.gas["receipt (per receipt)"] = [round(per)]
        play.gas["receipt (per batch)"] = [round(base)]
        assumed["receipt (per receipt)"] = g.receipt
        assumed["receipt (per batch)"] = g.receipt_batch
    gas = {
        kind: {
            "mean": float(np.mean(v)),
            "n": len(v),
            **({"model": assumed[kind]} if kind in assumed else {}),
        }
        for kind, v in sorted(play.gas.items())
    }
    report = EvmReport(sc.run.name, seconds, strategies, gas, play.checks)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evm.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    (out / "summary.json").write_text(json.dumps(model, indent=2) + "\n")
    return report
