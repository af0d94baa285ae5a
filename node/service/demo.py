"""The README's main job: the whole product, end to end, in one process.

Three nodes (alice, bob, carol) with their own data directories, keystores, stores, slot stores
and receipt boxes, on 127.0.0.1 over real TCP and Noise, and a validator, against one chain (the
embedded py-evm chain by default, or any JSON-RPC URL such as a local anvil):

1. deploy the suite with demo parameters (a small slot layout, every commitment due each
   period, 8 samples per proof); fund the nodes from the chain's dev accounts
2. alice adds a file and publishes it: the size is proven by the last segment's audit path,
   with the slot layout (K data shards, N slots) and the root of the slot roots; she funds its
   storage
3. bob and carol deposit escrow; bob fetches from alice, carol from alice and bob at once; each
   receiver pays the provider's price for the bytes delivered in signed receipts; the
   providers' duties submit them (``TransferReceipts``: debited from escrow, a fee burnt, the
   rest the provider's earnings, which they withdraw)
4. each node builds its own slot of the content (checked against the registered slot root) and
   commits stake to host it; an hour passes; bob has lost his slot data; carol kept only the
   root and its chunk roots and plans to fetch on challenge
5. the validator's round (``ValidatorDuty``) challenges every commitment due this period (bond
   paid); the samples are drawn from a block mined after the challenge
6. the hosts' duties answer unattended: alice proves her 8 sampled segments and passes (bond
   back, reward and storage payment owed); bob's duty cannot prove and sends nothing; carol
   fetches the content from alice again (paying for it) and answers with what she can build,
   which is not her slot: deletion evidence, slashed and forced out
7. the response window passes; the validator slashes bob's expired challenge (a fault: a
   smaller slash, bob stays); owed payments are withdrawn
8. alice tries to cash forged self-dealt receipts (an unregistered root, 2^64-1 bytes): the
   chain rejects each and credits nothing
9. the validator indexes the chain, computes the epoch's allocation from the reputation ledger,
   signs it (quorum 1) and posts it; the hosts claim, each within its fee cap

Every claim the summary makes is checked against the chain (``checks``); a failed check makes
the command exit non-zero.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import plyvel
import trio
from eth_account import Account

from chain import ChainBackend, ChainClient, DeployParams, EmbeddedChain, RpcChain, deploy_suite
from chain.eip712 import ZERO_ADDRESS
from chain.port import ClientPort
from chain.tx import send_value
from node.app import Node, open_node
from node.config import Config, save_config
from node.content import (
    SlotLayout,
    encode_slot_roots,
    root_hex,
    slot_root_proof,
)
from node.identity import Identity, create_identity
from node.log import get_logger
from node.receipt import Receipt, sign_receipt
from node.store import SlotStore, Store
from node.transfer import FetchResult, PeerAddr, ReceiptBox, fetch, serve_node

from ._allocation import compute_allocation, sign_and_post
from ._answers import AnswerQueue
from ._availability import prove_segment
from ._duties import ChainDuties
from ._validator import ValidatorDuty

log = get_logger("node.demo")

ETH = 10**18
PASSPHRASE = "bcai-demo"  # local demo identities; never use for real keys
#: Demo slot layout: K data shards, N slots (one per host; any K of them rebuild the content).
DEMO_DATA_SHARDS, DEMO_SLOT_COUNT = 2, 3
STAKE = ETH // 2
ESCROW = ETH // 10
STORAGE_BUDGET = ETH // 100
REWARD_POOL = ETH // 100


def demo_params(validator: str) -> DeployParams:
    """Deployment defaults, except what makes the demo run in seconds on a dev chain."""
    return DeployParams(
        min_stake=ETH // 10,
        exit_delay=3600,
        period_blocks=200,  # the whole demo fits in one proof period (< 256 blocks)
        due_bps=10_000,  # every commitment is due every period
        samples=8,
        storage_rate_per_gib_day=10**17,  # visible storage payments after seconds
        validators=(validator,),
        quorum=1,
    )


@dataclass
class DemoNode:
    """One of the demo's three nodes: a :class:`node.app.Node` plus its chain wiring."""

    name: str
    node: Node
    duties_db: plyvel.DB
    client: ChainClient | None = None
    duties: ChainDuties | None = None
    endpoint: tuple[str, int] | None = None

    @property
    def data_dir(self) -> Path:
        return self.node.data_dir

    @property
    def identity(self) -> Identity:
        return self.node.identity

    @property
    def store(self) -> Store:
        return self.node.store

    @property
    def slots(self) -> SlotStore:
        return self.node.slots

    @property
    def box(self) -> ReceiptBox:
        return self.node.receipts

    @property
    def address(self) -> str:
        return self.identity.address

    @property
    def c(self) -> ChainClient:
        assert self.client is not None
        return self.client

    @property
    def d(self) -> ChainDuties:
        assert self.duties is not None
        return self.duties

    def peer(self) -> PeerAddr:
        assert self.endpoint is not None
        return PeerAddr(self.endpoint[0], self.endpoint[1], self.address)

    def close(self) -> None:
        self.duties_db.close()
        self.node.close()


@dataclass
class DemoResult:
    summary: dict[str, Any] = field(default_factory=dict)
    checks: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok in self.checks)

    def check(self, what: str, ok: bool) -> None:
        self.checks.append((what, bool(ok)))
        if not ok:
            log.error("demo check failed", check=what)


def _tx(step: str, res: Any) -> dict[str, Any]:
    return {"step": step, "tx": res.tx_hash, "gas_used": res.gas_used, "block": res.block}


def _make_node(name: str, root_dir: Path) -> DemoNode:
    data_dir = root_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    create_identity(data_dir, PASSPHRASE, fast_kdf=True, overwrite=True)
    save_config(data_dir, Config())
    node = open_node(data_dir, passphrase=PASSPHRASE)
    duties_db = plyvel.DB(str(data_dir / "duties"), create_if_missing=True)
    return DemoNode(name, node, duties_db)


def _write_random_file(path: Path, size: int) -> str:
    sha = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            sha.update(block)
            left -= len(block)
    return sha.hexdigest()


def _file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()


async def run_demo(
    workdir: Path | None = None,
    *,
    size: int = 24 * 1024 * 1024 + 12345,
    rpc: str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the scenario; return the summary and the checks (see module docstring)."""
    started = time.monotonic()
    say = on_step or (lambda _msg: None)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bcai-demo-")
        workdir = Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    result = DemoResult()
    nodes: list[DemoNode] = []
    backend: ChainBackend = RpcChain(rpc) if rpc else EmbeddedChain()
    try:
        await _Scenario(backend, workdir, size, result, nodes, say).run()
    finally:
        for n in nodes:
            n.close()
        backend.close()
        if tmp is not None:
            tmp.cleanup()
    result.summary["elapsed_s"] = round(time.monotonic() - started, 2)
    return result


class _Scenario:
    def __init__(
        self,
        backend: ChainBackend,
        workdir: Path,
        size: int,
        result: DemoResult,
        nodes: list[DemoNode],
        say: Callable[[str], None],
    ) -> None:
        self.backend = backend
        self.workdir = workdir
        self.size = size
        self.result = result
        self.nodes = nodes
        self.say = say
        self.summary = result.summary
        self.txs: list[dict[str, Any]] = []
        self.summary["transactions"] = self.txs
        self.lock = threading.RLock()  # one chain, several nodes: serialise chain calls

    def check(self, what: str, ok: bool) -> None:
        self.result.check(what, ok)

    async def chain(self, fn: Callable[[], Any]) -> Any:
        def locked() -> Any:
            with self.lock:
                return fn()

        return await trio.to_thread.run_sync(locked)

    def name_of(self, address: str) -> str:
        for n in self.nodes:
            if n.address.lower() == address.lower():
                return n.name
        if address.lower() == self.validator.address.lower():
            return "validator"
        return address

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if getattr(self, "val_db", None) is not None:
                self.val_db.close()

    async def _run(self) -> None:
        await self.setup()
        await self.publish()
        await self.transfers()
        await self.commit_slots()
        await self.challenges()
        await self.forged_receipts()
        await self.rewards()
        self.summary["balances_wei"] = {
            n.name: {"before": self.balances_before[n.name], "after": await self.chain(n.c.balance)}
            for n in self.nodes
        }
        self.summary["gas_total"] = sum(t["gas_used"] for t in self.txs)

    # 1. chain, suite, nodes -------------------------------------------------------------------

    async def setup(self) -> None:
        backend = self.backend
        dev = backend.dev_accounts()
        if len(dev) < 8:
            raise RuntimeError("the demo needs a dev chain with 8 funded accounts (py-evm, anvil)")
        deployer, self.validator = dev[0], dev[6]
        self.params = demo_params(self.validator.address)
        self.say(f"chain: {backend.kind} (chain id {backend.chain_id}); deploying the suite")
        self.deployment = await self.chain(partial(deploy_suite, backend, deployer, self.params))
        self.summary["chain"] = {
            "kind": backend.kind,
            "chain_id": backend.chain_id,
            "contracts": self.deployment.contracts(),
            "deploy_gas": self.deployment.gas,
            "params": {
                "slot_layout": f"K={DEMO_DATA_SHARDS} N={DEMO_SLOT_COUNT}",
                "samples": self.params.samples,
                "due_bps": self.params.due_bps,
                "period_blocks": self.params.period_blocks,
                "min_price_per_gib": self.params.min_price_per_gib,
                "receipt_fee_bps": self.params.receipt_fee_bps,
                "rebate_bps": self.params.rebate_bps,
            },
        }
        self.funder = ChainClient(backend, self.deployment, deployer)
        self.domain = self.funder.receipt_domain
        self.val_client = ChainClient(backend, self.deployment, self.validator)
        self.val_db = plyvel.DB(str(self.workdir / "validator"), create_if_missing=True)
        self.val_duty = ValidatorDuty(
            ClientPort(self.val_client),
            self.val_db.prefixed_db(b"v/"),
            self.validator.address,
        )
        for name in ("alice", "bob", "carol"):
            node = _make_node(name, self.workdir)
            node.client = ChainClient(backend, self.deployment, node.identity.account)
            node.duties = ChainDuties(
                ClientPort(node.client),
                node.box,
                AnswerQueue(node.duties_db),
                node.address,
                slots=node.slots,
                chain_lock=self.lock,
                mine_after=0.0,  # the dev chain mines only on transactions: mine when needed
            )
            self.nodes.append(node)
            fund = await self.chain(partial(send_value, backend, deployer, node.address, 5 * ETH))
            self.txs.append(_tx(f"fund {name}", fund))
        self.alice, self.bob, self.carol = self.nodes
        self.say("nodes: " + ", ".join(f"{n.name} {n.address}" for n in self.nodes))
        self.balances_before = {n.name: await self.chain(n.c.balance) for n in self.nodes}
        res = await self.chain(partial(self.funder.fund_rewards, REWARD_POOL))
        self.txs.append(_tx("protocol funds the challenge reward pool", res))

    # 2. publish ---------------------------------------------------------------------------

    async def publish(self) -> None:
        alice, size = self.alice, self.size
        src = self.workdir / "dataset.bin"
        self.sha = _write_random_file(src, size)
        manifest = await trio.to_thread.run_sync(
            partial(alice.store.add_file, src, name="dataset.bin", pin=True)
        )
        self.root = root = manifest.root
        self.layout = layout = SlotLayout(size, DEMO_DATA_SHARDS, DEMO_SLOT_COUNT)
        read = alice.store.reader(root)
        self.slot_roots, slots_root = await trio.to_thread.run_sync(encode_slot_roots, read, layout)
        self.say(
            f"alice added {size} bytes: {root_hex(root)} ({manifest.chunk_count} chunks); "
            f"publishes it with a size proof and {layout.slot_count} slots of {layout.rows} "
            f"segments (K={layout.data_shards})"
        )
        # The client computes the size proof and the slot roots from the content (as
        # `bcai publish` does); the roots above are what each host checks its slot against.
        res = await self.chain(
            partial(
                alice.c.publish_content,
                read,
                size,
                root,
                data_shards=layout.data_shards,
                slot_count=layout.slot_count,
                chunk_size=manifest.chunk_size,
            )
        )
        self.txs.append(_tx("alice: ContentRegistry.register (size proof, slots root)", res))
        on_chain = await self.chain(partial(alice.c.layout_of, root))
        self.check(
            "registered size and slot layout are what alice encoded",
            (on_chain.size, on_chain.data_shards, on_chain.slot_count, on_chain.slots_root)
            == (size, layout.data_shards, layout.slot_count, slots_root),
        )
        res = await self.chain(partial(alice.c.fund_storage, root, STORAGE_BUDGET))
        self.txs.append(_tx("alice: DataAvailability.fundStorage", res))
        self.summary["content"] = {
            "root": root_hex(root),
            "size": size,
            "chunks": manifest.chunk_count,
            "sha256": self.sha,
            "layout": {
                "data_shards": layout.data_shards,
                "slots": layout.slot_count,
                "rows": layout.rows,
                "slot_bytes": layout.slot_bytes,
            },
            "slots_root": "0x" + slots_root.hex(),
        }

    # 3. paid transfers --------------------------------------------------------------------

    async def transfers(self) -> None:
        alice, bob, carol = self.nodes
        for node in (bob, carol):
            res = await self.chain(partial(node.c.deposit, ESCROW))
            self.txs.append(_tx(f"{node.name}: TransferReceipts.deposit (escrow)", res))
        escrow_before = {n.name: (await self.chain(n.c.escrow_of)).balance for n in (bob, carol)}
        transfers: list[dict[str, Any]] = []
        paid_by: dict[str, int] = {}
        async with trio.open_nursery() as nursery:
            await self._serve(nursery, alice, bob)
            # carol fetches from bob alone, so both providers serve (and earn) in every run: with
            # two sources the scheduler may take every chunk from alice on a loaded machine.
            for receiver, sources in [(bob, [alice]), (carol, [bob])]:
                self.say(f"{receiver.name} fetches from {', '.join(s.name for s in sources)}")
                res = await self._fetch(receiver, sources, receiver.data_dir / "dataset.bin")
                got = await trio.to_thread.run_sync(_file_sha256, receiver.data_dir / "dataset.bin")
                self.check(f"{receiver.name}'s copy has the right sha256", got == self.sha)
                transfers.append(self._transfer_row(receiver, res))
                paid_by[receiver.name] = sum(p.paid for p in res.providers.values())
            nursery.cancel_scope.cancel()
        self.summary["transfers"] = transfers
        self.check(
            "every byte delivered is covered by a paid receipt",
            all(
                p["billed_bytes"] == p["bytes"] and (p["paid"] > 0) == (p["bytes"] > 0)
                for t in transfers
                for p in t["providers"].values()
            ),
        )

        self.say("providers submit the receipts they collected (duties, in batches)")
        for node in (alice, bob):
            await self._drain_receipts(node)
        self.epoch = epoch = await self.chain(alice.c.current_epoch)
        served: dict[str, dict[str, int]] = {}
        for t in transfers:
            for name, p in t["providers"].items():
                row = served.setdefault(name, {"bytes": 0, "receipts": 0, "payment": 0, "fee": 0})
                row["bytes"] += p["billed_bytes"]
                row["receipts"] += p["receipts"]
                row["payment"] += p["paid"]
                row["fee"] += p["fee"]
        on_chain: dict[str, dict[str, int]] = {}
        for node in (alice, bob):
            c = node.c
            want = served.get(node.name, {"bytes": 0, "receipts": 0, "payment": 0, "fee": 0})
            row = {
                "served_bytes": await self.chain(partial(c.served_bytes, node.address, epoch)),
                "receipts": await self.chain(partial(c.receipt_count, node.address, epoch)),
                "payments": await self.chain(partial(c.payments_of, node.address, epoch)),
                "fees": await self.chain(partial(c.fees_of, node.address, epoch)),
                "earnings": await self.chain(partial(c.earnings, node.address)),
            }
            on_chain[node.name] = row
            self.check(
                f"{node.name}: bytes credited on chain == bytes delivered and paid for",
                row["served_bytes"] == want["bytes"],
            )
            self.check(
                f"{node.name}: receipts on chain == receipts signed",
                row["receipts"] == want["receipts"],
            )
            self.check(
                f"{node.name}: payments on chain == receipts' payments; fee burnt, rest earned",
                row["payments"] == want["payment"]
                and row["fees"] == want["fee"]
                and row["earnings"] == row["payments"] - row["fees"],
            )
        escrow_after = {n.name: (await self.chain(n.c.escrow_of)).balance for n in (bob, carol)}
        for name in ("bob", "carol"):
            self.check(
                f"{name}'s escrow paid exactly what {name} signed for",
                escrow_before[name] - escrow_after[name] == paid_by[name],
            )
        withdrawn: dict[str, int] = {}
        for node in (alice, bob):
            res = await self.chain(node.c.withdraw_earnings)
            self.txs.append(_tx(f"{node.name}: TransferReceipts.withdrawEarnings", res))
            withdrawn[node.name] = on_chain[node.name]["earnings"]
            left = await self.chain(partial(node.c.earnings, node.address))
            self.check(f"{node.name} pulled all its earnings", left == 0 < withdrawn[node.name])
        self.summary["receipts"] = {
            "epoch": epoch,
            "on_chain": on_chain,
            "transferred": {k: v["bytes"] for k, v in served.items()},
            "escrow_wei": {
                k: {"before": escrow_before[k], "after": escrow_after[k]} for k in escrow_before
            },
            "total_burnt_wei": await self.chain(alice.c.total_burnt),
            "earnings_withdrawn_wei": withdrawn,
        }

    async def _serve(self, nursery: trio.Nursery, *providers: DemoNode) -> None:
        for node in providers:
            node.endpoint = await nursery.start(
                partial(
                    serve_node,
                    node.store,
                    node.identity,
                    listen=("127.0.0.1", 0),
                    receipt_box=node.box,
                    receipt_domain=self.domain,
                    observer=node.node.observer,
                )
            )

    async def _fetch(self, receiver: DemoNode, sources: list[DemoNode], out: Path) -> FetchResult:
        return await fetch(
            receiver.store,
            receiver.identity,
            self.root,
            [s.peer() for s in sources],
            receipt_domain=self.domain,
            next_nonce=receiver.box.next_nonce,
            output=out,
            observer=receiver.node.observer,
        )

    def _transfer_row(self, receiver: DemoNode, res: FetchResult) -> dict[str, Any]:
        fee_bps = self.params.receipt_fee_bps
        return {
            "receiver": receiver.name,
            "bytes": res.fetched_bytes,
            "chunks": res.fetched_chunks,
            "seconds": round(res.elapsed, 3),
            "MB_per_s": round(res.throughput / 1e6, 1),
            "providers": {
                self.name_of(a): {
                    "bytes": p.bytes,
                    "chunks": p.chunks,
                    "billed_bytes": p.billed_bytes,
                    "receipts": len(p.receipts),
                    "receipt_acked": p.receipt_acked,
                    "paid": p.paid,
                    "fee": sum(s.receipt.payment * fee_bps // 10_000 for s in p.receipts),
                    "price_per_gib": p.price_per_gib,
                }
                for a, p in res.providers.items()
            },
        }

    async def _drain_receipts(self, node: DemoNode) -> None:
        # Receipts younger than the chain's clock wait a round (as in `bcai serve`).
        with trio.move_on_after(30):
            while node.box.counts()["pending"] or node.box.counts().get("deferred", 0):
                await self.chain(node.d.submit_receipts_once)
                if node.box.counts()["pending"] or node.box.counts().get("deferred", 0):
                    await trio.sleep(0.5)
        for t in node.d.status.receipt_txs[len(self._seen_txs(node)) :]:
            self.txs.append({"step": f"{node.name}: TransferReceipts.submitBatch", **t})

    def _seen_txs(self, node: DemoNode) -> list[dict[str, Any]]:
        return [t for t in self.txs if t["step"] == f"{node.name}: TransferReceipts.submitBatch"]

    # 4. slots and commitments -------------------------------------------------------------

    async def commit_slots(self) -> None:
        root, layout = self.root, self.layout
        self.host_slot = {"alice": 0, "bob": 1, "carol": 2}
        for node in self.nodes:
            slot = self.host_slot[node.name]
            slot_root = await trio.to_thread.run_sync(
                partial(
                    node.slots.build,
                    root,
                    slot,
                    layout,
                    node.store.reader(root),
                    expected_slot_root=self.slot_roots[slot],
                )
            )
            proof = slot_root_proof(self.slot_roots, slot)
            res = await self.chain(partial(node.c.commit, root, slot, slot_root, proof, STAKE))
            self.txs.append(_tx(f"{node.name}: DataAvailability.commit (slot {slot})", res))
        hosts = await self.chain(partial(self.alice.c.hosts_of, root))
        self.check(
            "each host holds a distinct slot (alice 0, bob 1, carol 2)",
            [h.lower() for h in hosts] == [n.address.lower() for n in self.nodes],
        )
        self.say(
            f"alice, bob and carol build their own slots and commit {STAKE / ETH} ETH each; "
            "an hour later bob has lost his slot data; carol kept only the root and chunk roots"
        )
        # An hour of hosting passes (storage payments accrue by the second since the commit).
        await self.chain(partial(self.backend.time_travel, 3600))
        await trio.to_thread.run_sync(self.bob.slots.remove, root, 1)
        await trio.to_thread.run_sync(self.bob.store.remove, root)
        await trio.to_thread.run_sync(self.carol.slots.remove, root, 2)
        await trio.to_thread.run_sync(self.carol.store.remove, root)
        await trio.to_thread.run_sync(self.carol.store.gc)

    # 5-7. challenges -----------------------------------------------------------------------

    async def challenges(self) -> None:
        alice, bob = self.alice, self.bob
        root = self.root
        self.say("the validator's round: challenge every commitment due this period")
        issued = await self.chain(self.val_duty.challenge_due_once)
        for rec in issued:
            self.txs.append(
                _tx(
                    f"validator: challenge {self.name_of(rec.host)} (slot {rec.slot}, "
                    f"seed block {rec.seed_block})",
                    _Res(rec.tx_hash, rec.gas_used, rec.block),
                )
            )
        by_host = {self.name_of(r.host): r for r in issued}
        self.check(
            "the validator challenged all three commitments, on schedule",
            sorted(by_host) == ["alice", "bob", "carol"] and all(r.scheduled for r in issued),
        )
        self.check(
            "no sample was known when a challenge was sent (seed = the next block)",
            all(r.seed_block == r.block + 1 for r in issued),
        )

        self.say("hosts answer unattended: alice proves her samples; bob cannot; carol fetches")
        for _ in range(4):
            await self.chain(alice.d.answer_challenges_once)
            await self.chain(bob.d.answer_challenges_once)
            if alice.d.status.answers_sent:
                break
        for t in alice.d.status.answer_txs:
            self.txs.append({"step": "alice: DataAvailability.respond (8 samples)", **t})
        cheat = await self._outsource_answer(by_host["carol"].id)
        self.txs.append(_tx("carol: respond with what she could fetch", cheat))

        a_ch = await self.chain(partial(alice.c.get_challenge, by_host["alice"].id))
        c_ch = await self.chain(partial(alice.c.get_challenge, by_host["carol"].id))
        self.check("alice's challenge passed", a_ch.status.name == "PASSED")
        self.check(
            "bob's node sent no answer it could not prove",
            bob.d.status.answers_sent == 0 and bob.d.status.answers_failed == 1,
        )
        failed = cheat.events_named("ChallengeFailed")
        carol_slash = int(failed[0].args["slashed"]) if failed else 0
        self.check(
            "carol's fetched answer is deletion evidence: slashed and forced out",
            c_ch.status.name == "FAILED"
            and bool(failed)
            and bool(failed[0].args["terminated"])
            and carol_slash == STAKE * self.params.proof_slash_bps // 10_000,
        )

        self.say("the response window passes; the validator settles bob's expired challenge")
        await self.chain(partial(self.backend.time_travel, self.params.response_window + 1))
        slashed_ids = await self.chain(self.val_duty.slash_expired_once)
        for t in self.val_duty.status.txs:
            if t["step"] == "slashExpired":
                self.txs.append({**t, "step": f"validator: slashExpired({t['id']}) (bob)"})
        bob_c = await self.chain(partial(alice.c.commitment_of, root, 1))
        alice_c = await self.chain(partial(alice.c.commitment_of, root, 0))
        carol_c = await self.chain(partial(alice.c.commitment_of, root, 2))
        bob_slash = STAKE - bob_c.stake
        self.check(
            "bob's expiry is a fault: a small slash, and he keeps his slot",
            slashed_ids == [by_host["bob"].id]
            and bob_slash == STAKE * self.params.fault_slash_bps // 10_000
            and bob_c.faults == 1
            and not bob_c.terminated,
        )
        self.check(
            "alice's stake is untouched and her slot is proven",
            alice_c.stake == STAKE and alice_c.last_proven_at > 0,
        )
        available = await self.chain(partial(alice.c.is_available, root, 1, 3600))
        self.check("the chain's isAvailable reflects alice's fresh proof", available)

        owed = {
            "alice": await self.chain(partial(alice.c.owed_to, alice.address)),
            "validator": await self.chain(partial(alice.c.owed_to, self.validator.address)),
        }
        self.check(
            "alice is owed a storage payment; the validator its bonds, reward and slash share",
            owed["alice"] > 0 and owed["validator"] > 0,
        )
        alice.d.withdraw_owed_once(force=True)
        for w in alice.d.status.withdrawals:
            self.txs.append({"step": "alice: DataAvailability.withdrawOwed", **w})
        vres = await self.chain(self.val_client.withdraw_owed)
        self.txs.append(_tx("validator: DataAvailability.withdrawOwed", vres))
        self.summary["hosting"] = {
            "challenges": [
                {"id": r.id, "host": self.name_of(r.host), "slot": r.slot, "tx": r.tx_hash}
                for r in issued
            ],
            "alice": {
                "slot": 0,
                "outcome": "passed",
                "stake_wei": alice_c.stake,
                "owed_wei": owed["alice"],
            },
            "bob": {
                "slot": 1,
                "outcome": "expired (fault)",
                "slashed_wei": bob_slash,
                "stake_wei": bob_c.stake,
                "faults": bob_c.faults,
            },
            "carol": {
                "slot": 2,
                "outcome": "invalid proof (deletion evidence)",
                "slashed_wei": carol_slash,
                "stake_wei": carol_c.stake,
                "terminated": carol_c.terminated,
            },
            "validator_owed_wei": owed["validator"],
            "available": available,
        }

    async def _outsource_answer(self, challenge_id: int) -> Any:
        """Carol's strategy: fetch on challenge from another host, answer with that."""
        carol, alice = self.carol, self.alice
        ch = await self.chain(partial(carol.c.get_challenge, challenge_id))
        while ch.indices is None:  # the same wait as an honest host's
            await self.chain(partial(ClientPort(carol.c).mine_if_dev, 2))
            ch = await self.chain(partial(carol.c.get_challenge, challenge_id))
        async with trio.open_nursery() as nursery:
            await self._serve(nursery, alice)
            await self._fetch(carol, [alice], carol.data_dir / "refetched.bin")
            nursery.cancel_scope.cancel()
        # The chunks prove the content, not slot 2 (which exists nowhere she can fetch it from).
        answers = [prove_segment(carol.store, self.root, i) for i in ch.indices]
        return await self.chain(
            partial(
                carol.c.respond,
                challenge_id,
                [seg for seg, _ in answers],
                [path for _, path in answers],
            )
        )

    # 8. forged receipts -------------------------------------------------------------------

    async def forged_receipts(self) -> None:
        alice = self.alice
        self.say("alice forges self-dealt receipts (a sybil receiver key of her own)")
        await self._drain_receipts(alice)  # carol's re-fetch, paid like any other
        sybil = Account.create()
        now = int(await self.chain(self.backend.timestamp)) - 5
        forged = [
            Receipt(os.urandom(32), alice.address, sybil.address, 2**64 - 1, 1, 10**12, 1, now),
            Receipt(self.root, alice.address, sybil.address, 2**64 - 1, 1, 10**12, 2, now),
        ]
        signed = [sign_receipt(sybil, r, self.domain) for r in forged]
        before = await self.chain(partial(alice.c.served_bytes, alice.address, self.epoch))
        for s in signed:
            alice.box.add(s)
        await self.chain(alice.d.submit_receipts_once)  # her node's pre-check refuses them
        reasons = {
            r.receipt.receipt.nonce: r.reason
            for r in alice.box.list("rejected")
            if r.receipt.receipt.receiver == sybil.address
        }
        # An attacker skips the pre-check: the contract judges each receipt itself.
        report = await self.chain(partial(alice.c.submit_receipts, signed, precheck=False))
        for tx in report.txs:
            self.txs.append(_tx("alice: submitBatch(forged receipts), no pre-check", tx))
        on_chain = {r.receipt.receipt.nonce: r.reason for r in report.rejected}
        after = await self.chain(partial(alice.c.served_bytes, alice.address, self.epoch))
        want = {1: "RootNotRegistered", 2: "ExceedsSize"}
        self.check(
            "forged receipts are refused by the node and by the contract "
            "(unregistered root; 2^64-1 bytes > registered size)",
            reasons == want and on_chain == want and not report.accepted,
        )
        self.check("the forged receipts credited nothing", after == before)
        self.summary["forged_receipts"] = [
            {
                "root": root_hex(r.content_root),
                "bytes": r.bytes_served,
                "verdict": on_chain.get(i),
                "tx": report.tx_hash,
            }
            for i, r in zip((1, 2), forged, strict=True)
        ]

    # 9. rewards ---------------------------------------------------------------------------

    async def rewards(self) -> None:
        epoch = self.epoch
        self.say("the validator indexes the chain, allocates the epoch from the ledger, posts")
        caps = {
            n.name: await self.chain(partial(n.c.fee_cap, n.address, epoch)) for n in self.nodes
        }
        # Half of what the caps allow: the shares, not the caps, decide (reputation shows).
        budget = sum(caps.values()) // 2
        for res in await self.chain(partial(self.funder.fund_epoch, epoch, budget)):
            self.txs.append(_tx(f"fund epoch {epoch} (HostingRewards)", res))
        ledger_db = self.val_db.prefixed_db(b"ledger/")
        allocation, ledger, applied = await self.chain(
            partial(
                compute_allocation,
                ledger_db,
                self.backend,
                self.deployment,
                epoch,
                budget,
                rebate_bps=self.params.rebate_bps,
            )
        )
        reps = {n.name: ledger.reputation(n.address.lower()) for n in self.nodes}
        self.check(
            "the ledger remembers: alice > bob (a fault), carol disqualified (deletion evidence)",
            reps["alice"].score > reps["bob"].score and reps["carol"].disqualified,
        )
        amounts = {self.name_of(h): a for h, a in allocation.amounts}
        fees = {
            n.name: sum(
                h.total_fees for h in ledger.epoch_stats(epoch) if h.host == n.address.lower()
            )
            for n in self.nodes
        }
        self.check(
            "rewards follow reputation: bob (a fault) earns less per wei of fees than alice",
            amounts.get("bob", 0) * fees["alice"] < amounts.get("alice", 0) * fees["bob"],
        )
        self.check(
            "every allocated amount is within its host's fee cap",
            all(a <= caps[name] for name, a in amounts.items()),
        )
        posted = await self.chain(
            partial(sign_and_post, self.val_client, allocation, [self.validator])
        )
        if posted.tx is not None:
            self.txs.append(_tx("validator: HostingRewards.postAllocation (quorum 1)", posted.tx))
        claims: dict[str, int] = {}
        for node in self.nodes:
            key = next(
                (h for h, _ in allocation.amounts if h.lower() == node.address.lower()), None
            )
            if key is None or posted.tree is None:
                continue
            amount = posted.tree.amount_for(key)
            res = await self.chain(
                partial(node.c.claim, epoch, ZERO_ADDRESS, key, amount, posted.tree.proof_for(key))
            )
            self.txs.append(_tx(f"{node.name}: HostingRewards.claim", res))
            claims[node.name] = amount
        self.check(
            "alice and bob (both served paid bytes) claimed rewards",
            claims.get("alice", 0) > 0 and claims.get("bob", 0) > 0,
        )
        self.check("carol earned nothing", "carol" not in claims)
        paid = await self.chain(partial(self.val_client.paid, epoch))
        self.check("paid == claimed <= funded", paid == sum(claims.values()) <= budget)
        self.summary["rewards"] = {
            "epoch": epoch,
            "funded_wei": budget,
            "fees_wei": fees,
            "ledger_events": applied,
            "reputation": {
                k: {
                    "score": round(float(r.score), 4),
                    "passes": r.passes,
                    "disqualified": r.disqualified,
                }
                for k, r in reps.items()
            },
            "fee_cap_wei": caps,
            "allocation_wei": amounts,
            "claimed_wei": claims,
            "paid_wei": paid,
        }


@dataclass(frozen=True)
class _Res:
    """A recorded transaction, shaped like ``TxResult`` for :func:`_tx`."""

    tx_hash: str
    gas_used: int
    block: int
