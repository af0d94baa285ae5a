"""The README's main job: the whole product, end to end, in one process.

Three nodes (alice, bob, carol) with their own data directories, keystores, stores and receipt
boxes, on 127.0.0.1 over real TCP and Noise, against one chain (the embedded py-evm chain by
default, or any JSON-RPC URL such as a local anvil):

1. deploy the suite; fund the nodes' accounts from the chain's dev accounts
2. alice adds a file and publishes its root (ContentRegistry)
3. bob fetches it from alice; carol fetches it from alice and bob at once (multi-source); every
   chunk is verified on arrival; each receiver signs an EIP-712 receipt per provider
4. the providers' chain duties submit the receipts in batches (TransferReceipts)
5. alice (honest) and carol commit stake to host the root; carol deletes her copy
6. a validator challenges both; the duties answer from the store unattended: alice proves her
   segment, carol cannot; after the response window carol is slashed
7. the validators index the chain, compute the epoch's allocation from the payout ledger, sign
   it (2 of 3), post it, and the hosts claim

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

from chain import ChainBackend, ChainClient, DeployParams, EmbeddedChain, RpcChain, deploy_suite
from chain.eip712 import ZERO_ADDRESS
from chain.indexer import Indexer
from chain.merkle import AllocationTree
from chain.port import ClientPort
from chain.tx import send_value
from node.content import root_hex
from node.identity import Identity, create_identity
from node.ledger import PayoutLedger
from node.log import get_logger
from node.store import Store
from node.transfer import FetchResult, PeerAddr, ReceiptBox, fetch, serve_node

from ._answers import AnswerQueue
from ._duties import ChainDuties

log = get_logger("node.demo")

ETH = 10**18
PASSPHRASE = "bcai-demo"  # local demo identities; never use for real keys


@dataclass
class DemoNode:
    name: str
    data_dir: Path
    identity: Identity
    store: Store
    box: ReceiptBox
    duties_db: plyvel.DB
    client: ChainClient | None = None
    duties: ChainDuties | None = None
    endpoint: tuple[str, int] | None = None

    @property
    def address(self) -> str:
        return self.identity.address

    def peer(self) -> PeerAddr:
        assert self.endpoint is not None
        return PeerAddr(self.endpoint[0], self.endpoint[1], self.address)

    def close(self) -> None:
        self.box.close()
        self.duties_db.close()
        self.store.close()


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
    identity = create_identity(data_dir, PASSPHRASE, fast_kdf=True, overwrite=True)
    store = Store.open(data_dir / "store")
    box = ReceiptBox.open(data_dir / "receipts")
    duties_db = plyvel.DB(str(data_dir / "duties"), create_if_missing=True)
    return DemoNode(name, data_dir, identity, store, box, duties_db)


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
        await _scenario(backend, workdir, size, result, nodes, say)
    finally:
        for n in nodes:
            n.close()
        backend.close()
        if tmp is not None:
            tmp.cleanup()
    result.summary["elapsed_s"] = round(time.monotonic() - started, 2)
    return result


async def _scenario(
    backend: ChainBackend,
    workdir: Path,
    size: int,
    result: DemoResult,
    nodes: list[DemoNode],
    say: Callable[[str], None],
) -> None:
    summary = result.summary
    txs: list[dict[str, Any]] = []
    summary["transactions"] = txs
    lock = threading.RLock()  # one chain, several nodes: serialise chain calls (re-entrant)

    async def chain(fn: Callable[[], Any]) -> Any:
        def locked() -> Any:
            with lock:
                return fn()

        return await trio.to_thread.run_sync(locked)

    # 1. chain + suite ---------------------------------------------------------------------
    dev = backend.dev_accounts()
    if len(dev) < 9:
        raise RuntimeError("the demo needs a dev chain with 9 funded accounts (py-evm or anvil)")
    deployer, validators = dev[0], dev[6:9]
    params = DeployParams(
        epoch_length=3600,
        min_stake=ETH // 10,
        response_window=600,
        slash_bps=5000,
        exit_delay=3600,
        validators=tuple(v.address for v in validators),
        quorum=2,
    )
    say(f"chain: {backend.kind} (chain id {backend.chain_id}); deploying the suite")
    deployment = await chain(lambda: deploy_suite(backend, deployer, params))
    summary["chain"] = {
        "kind": backend.kind,
        "chain_id": backend.chain_id,
        "contracts": deployment.contracts(),
        "deploy_gas": deployment.gas,
    }
    domain = ChainClient(backend, deployment, deployer).receipt_domain

    # 2. three nodes -----------------------------------------------------------------------
    for name in ("alice", "bob", "carol"):
        node = _make_node(name, workdir)
        node.client = ChainClient(backend, deployment, node.identity.account)
        node.duties = ChainDuties(
            ClientPort(node.client),
            node.store,
            node.box,
            AnswerQueue(node.duties_db),
            node.address,
            chain_lock=lock,
        )
        nodes.append(node)
        fund = await chain(partial(send_value, backend, deployer, node.address, 5 * ETH))
        txs.append(_tx(f"fund {name}", fund))
    alice, bob, carol = nodes
    say("nodes: " + ", ".join(f"{n.name} {n.address}" for n in nodes))
    assert alice.client and bob.client and carol.client
    assert alice.duties and bob.duties and carol.duties
    balances_before = {n.name: await chain(partial(n.client.balance)) for n in nodes if n.client}

    src = workdir / "dataset.bin"
    sha = _write_random_file(src, size)
    manifest = await trio.to_thread.run_sync(
        partial(alice.store.add_file, src, name="dataset.bin", pin=True)
    )
    root = manifest.root
    say(f"alice added {size} bytes: {root_hex(root)} ({manifest.chunk_count} chunks)")
    publish = await chain(lambda: ClientPort(alice.client).publish(manifest))  # type: ignore[arg-type]
    txs.append(_tx("publish (ContentRegistry.register)", publish))
    summary["content"] = {
        "root": root_hex(root),
        "size": size,
        "chunks": manifest.chunk_count,
        "sha256": sha,
    }

    # 3. transfers over Noise ----------------------------------------------------------------
    async with trio.open_nursery() as nursery:
        for node in (alice, bob):
            node.endpoint = await nursery.start(
                partial(
                    serve_node,
                    node.store,
                    node.identity,
                    listen=("127.0.0.1", 0),
                    receipt_box=node.box,
                    receipt_domain=domain,
                )
            )
        transfers: list[dict[str, Any]] = []
        plan = [(bob, [alice]), (carol, [alice, bob])]
        for receiver, sources in plan:
            say(f"{receiver.name} fetches from {', '.join(s.name for s in sources)}")
            out = receiver.data_dir / "dataset.bin"
            res: FetchResult = await fetch(
                receiver.store,
                receiver.identity,
                root,
                [s.peer() for s in sources],
                receipt_domain=domain,
                next_nonce=receiver.box.next_nonce,
                output=out,
            )
            got_sha = await trio.to_thread.run_sync(_file_sha256, out)
            result.check(f"{receiver.name}'s copy has the right sha256", got_sha == sha)
            transfers.append(
                {
                    "receiver": receiver.name,
                    "bytes": res.fetched_bytes,
                    "chunks": res.fetched_chunks,
                    "seconds": round(res.elapsed, 3),
                    "MB_per_s": round(res.throughput / 1e6, 1),
                    "providers": {
                        next(n.name for n in nodes if n.address == a): {
                            "bytes": p.bytes,
                            "chunks": p.chunks,
                            "receipt_acked": p.receipt_acked,
                        }
                        for a, p in res.providers.items()
                    },
                }
            )
        nursery.cancel_scope.cancel()
    summary["transfers"] = transfers
    served: dict[str, int] = {}
    receipts_expected: dict[str, int] = {}
    for t in transfers:
        for name, p in t["providers"].items():
            if p["bytes"]:
                served[name] = served.get(name, 0) + p["bytes"]
                receipts_expected[name] = receipts_expected.get(name, 0) + 1

    # 4. receipts on chain -------------------------------------------------------------------
    say("providers submit the receipts they collected")
    for node in (alice, bob):
        duties = node.duties
        assert duties is not None
        # Receipts younger than the clock-skew slack wait a round (as in `bcai serve`).
        with trio.move_on_after(30):
            while node.box.counts()["pending"]:
                await chain(duties.submit_receipts_once)
                if node.box.counts()["pending"]:
                    await trio.sleep(0.5)
        for t in duties.status.receipt_txs:
            txs.append({"step": f"{node.name}: TransferReceipts.submitBatch", **t})
    epoch = await chain(alice.client.current_epoch)
    on_chain = {}
    for node in (alice, bob):
        c = node.client
        assert c is not None
        nbytes = await chain(partial(c.served_bytes, node.address, epoch))
        count = await chain(partial(c.receipt_count, node.address, epoch))
        on_chain[node.name] = {"served_bytes": nbytes, "receipts": count}
        result.check(
            f"{node.name}: served bytes on chain == bytes transferred",
            nbytes == served.get(node.name, 0),
        )
        result.check(
            f"{node.name}: receipts on chain == receipts signed",
            count == receipts_expected.get(node.name, 0),
        )
    summary["receipts"] = {"epoch": epoch, "on_chain": on_chain, "transferred": served}

    # 5. hosting commitments -----------------------------------------------------------------
    stake = ETH // 2
    for node in (alice, carol):
        res = await chain(partial(node.client.commit, root, stake))  # type: ignore[union-attr]
        txs.append(_tx(f"{node.name}: DataAvailability.commit", res))
    say(f"alice and carol commit {stake / ETH} ETH each; carol deletes her copy")
    await trio.to_thread.run_sync(carol.store.remove, root)
    await trio.to_thread.run_sync(carol.store.gc)

    # 6. challenges ------------------------------------------------------------------------
    validator = ChainClient(backend, deployment, validators[0])
    challenge_ids = {}
    drawn_at_issue = []
    for node in (alice, carol):
        res, ch = await chain(partial(validator.challenge, node.address, root))
        txs.append(_tx(f"validator challenges {node.name} (seed block {ch.seed_block})", res))
        challenge_ids[node.name] = ch.id
        drawn_at_issue.append(ch.ready)
    result.check("challenges fix no segment when issued", not any(drawn_at_issue))
    # The segment comes from the seed block's hash (the block after each challenge). The dev
    # chain mines only on transactions: mine the seed blocks and one more, since calls run in
    # the latest block and BLOCKHASH there reaches only earlier ones.
    await chain(lambda: backend.mine(2))
    say("duties answer open challenges from the store")
    for node in (alice, carol):
        await chain(node.duties.run_once)  # type: ignore[union-attr]
    for t in alice.duties.status.answer_txs:
        txs.append({"step": "alice: DataAvailability.respond", **t})
    alice_ch = await chain(partial(validator.get_challenge, challenge_ids["alice"]))
    result.check("alice's challenge passed", alice_ch.status.name == "PASSED")
    result.check("carol could not answer", carol.duties.status.answers_sent == 0)
    say("response window passes; the validator slashes carol")
    await chain(lambda: backend.time_travel(params.response_window + 1))
    carol_stake_before = await chain(partial(validator.stake_of, carol.address, root))
    slash = await chain(partial(validator.slash_expired, challenge_ids["carol"]))
    txs.append(_tx("validator: DataAvailability.slashExpired(carol)", slash))
    slashed = int(slash.event("HostSlashed").args["amount"])
    carol_stake_after = await chain(partial(validator.stake_of, carol.address, root))
    alice_stake = await chain(partial(validator.stake_of, alice.address, root))
    expected_slash = carol_stake_before * params.slash_bps // 10_000
    result.check(f"carol slashed {params.slash_bps / 100}% of her stake", slashed == expected_slash)
    result.check("carol's stake went down by the slash", carol_stake_after == stake - slashed)
    result.check("alice's stake is untouched", alice_stake == stake)
    availability = await chain(partial(validator.availability, root))
    summary["availability"] = {
        "hosts": availability.hosts,
        "last_proven_at": availability.last_proven_at,
        "alice": {"challenge": "passed", "stake_wei": alice_stake},
        "carol": {"challenge": "missed", "slashed_wei": slashed, "stake_wei": carol_stake_after},
    }

    # 7. rewards -----------------------------------------------------------------------------
    say("validators index the chain, allocate the epoch from the ledger, sign 2 of 3, post")
    budget = ETH
    funder = ChainClient(backend, deployment, deployer)
    for res in await chain(partial(funder.fund_epoch, epoch, budget)):
        txs.append(_tx(f"fund epoch {epoch} (HostingRewards)", res))
    ledger_db = plyvel.DB(str(workdir / "validator-index"), create_if_missing=True)
    try:
        indexer = Indexer(ledger_db, backend, deployment, confirmations=0)
        await chain(indexer.sync)
        ledger = PayoutLedger(ledger_db)
        applied = sum(ledger.apply(ev) for ev in indexer.ledger_events())
        allocation = ledger.allocate(epoch, budget)
    finally:
        ledger_db.close()
    amounts = {h: a for h, a in allocation.amounts}
    tree = AllocationTree(amounts)
    sigs = [
        validator.sign_allocation(epoch, ZERO_ADDRESS, tree.root, tree.total, v)
        for v in validators[:2]
    ]
    post = await chain(
        partial(validator.post_allocation, epoch, ZERO_ADDRESS, tree.root, tree.total, sigs)
    )
    txs.append(_tx("validators: HostingRewards.postAllocation (2 of 3)", post))
    claims = {}
    for node in nodes:
        key = next((h for h in amounts if h.lower() == node.address.lower()), None)
        if key is None:
            continue
        c = node.client
        assert c is not None
        res = await chain(
            partial(c.claim, epoch, ZERO_ADDRESS, key, amounts[key], tree.proof_for(key))
        )
        txs.append(_tx(f"{node.name}: HostingRewards.claim", res))
        claims[node.name] = amounts[key]
    result.check("alice earned a reward", claims.get("alice", 0) > 0)
    result.check("carol earned nothing (she served nothing)", "carol" not in claims)
    paid = await chain(partial(validator.paid, epoch))
    result.check("paid <= funded", paid <= budget)
    summary["rewards"] = {
        "epoch": epoch,
        "funded_wei": budget,
        "ledger_events": applied,
        "allocation_wei": {
            next(n.name for n in nodes if n.address.lower() == h.lower()): a
            for h, a in amounts.items()
        },
        "claimed_wei": claims,
        "paid_wei": paid,
    }
    summary["balances_wei"] = {
        n.name: {"before": balances_before[n.name], "after": await chain(n.client.balance)}  # type: ignore[union-attr]
        for n in nodes
    }
    summary["gas_total"] = sum(t["gas_used"] for t in txs)
