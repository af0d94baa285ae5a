"""Measure the gas of the contracts' main transactions from transaction receipts on py-evm.

    .venv/bin/python contracts/tools/measure_gas.py [--fork cancun|prague|both]

Scenarios, on one deployment per fork with the ``chain.deploy.DeployParams`` defaults:
  commitRegistration, then register for contents of 1 MiB, 1 GiB and 1 TiB (K = 4, N = 8, empty
  metadata URI). The contents are synthetic: every full segment is the same 4096 bytes and the
  last one differs, so the spine size proof is cheap to build (the edge hash j of every spine
  subtree is the root of 2^j equal leaves, like contracts/test/utils/Fixture.sol
  ``_uniformSpine``). Each proof is checked with ``node.content.verify_size_proof`` against a
  root computed independently (the RFC 6962 recursion) before it is sent;
  commit (slot proof over 8 slots) and challenge on the 1 TiB root; respond with 20 samples on
  its 2^26-row slot (26-hash paths); submitBatch of 100 receipts of 64 KiB from one receiver
  for one root, fresh (nonces 0-99) and in steady state (nonces 100-199, nonce word exists);
  HostDirectory.announce of a 16-byte endpoint (first record, then a new one), and of 128 bytes.
Prints one markdown table: gasUsed under Cancun and Prague, calldata bytes, the calldata part of
the gas (EIP-2028: 16 per non-zero byte, 4 per zero byte) and the EIP-7623 floor that applies
from Prague (21000 + 10 * (zero bytes + 4 * non-zero bytes)). Inputs are deterministic, so the
calldata is the same under both forks except the receipts' issuedAt and signatures; the calldata
columns are those of the first fork measured. Takes about 20 s.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth.vm.forks import CancunVM, PragueVM
from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from chain.contracts import load_artifact
from chain.deploy import DeployParams
from node.content import (
    SEGMENT_SIZE,
    SizeProof,
    leaf_hash,
    node_hash,
    segment_count,
    size_proof_shape,
    slot_root_proof,
    slots_root_of,
    verify_size_proof,
)

FORKS: dict[str, Any] = {"cancun": CancunVM, "prague": PragueVM}
GAS = 29_000_000
KIB, MIB, GIB, TIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
K, N = 4, 8  #: data shards, slots
SAMPLES = 20
RECEIPT_BYTES = 64 * KIB
SIZES = (("1 MiB", MIB), ("1 GiB", GIB), ("1 TiB", TIB))


# ------------------------------------------------------------------ synthetic content


@dataclass(frozen=True)
class Uniform:
    """A content of ``size`` bytes whose full segments all equal ``full`` and whose last segment
    (``size - (n-1) * 4096`` bytes) is ``last``."""

    size: int
    full: bytes
    last: bytes

    @property
    def n(self) -> int:
        return segment_count(self.size)

    @cache  # noqa: B019 - a handful of instances, kept for the script's lifetime
    def pow2_root(self, height: int) -> bytes:
        """Root of 2^height leaves that are all ``full``."""
        h = leaf_hash(self.full)
        for _ in range(height):
            h = node_hash(h, h)
        return h

    def root(self, n: int | None = None) -> bytes:
        """MTH of the first n-1 full segments and the last one, by the RFC 6962 recursion (the
        left part of every split is a perfect subtree of full segments)."""
        n = self.n if n is None else n
        if n == 1:
            return leaf_hash(self.last)
        k = 1 << ((n - 1).bit_length() - 1)  # largest power of two < n
        return node_hash(self.pow2_root(k.bit_length() - 1), self.root(n - k))

    def size_proof(self) -> SizeProof:
        """The spine proof: for each one bit a of n-1, lowest first, the subtree's leftmost
        segment and its a left-edge siblings (roots of 1, 2, ..., 2^(a-1) full leaves)."""
        segments: list[bytes] = []
        edges: list[bytes] = []
        rest, a = self.n - 1, 0
        while rest:
            if rest & 1:
                segments.append(self.full)
                edges.extend(self.pow2_root(j) for j in range(a))
            rest >>= 1
            a += 1
        return SizeProof(tuple(segments), tuple(edges), self.last)


def uniform(size: int, rng: random.Random) -> Uniform:
    last_len = size - (segment_count(size) - 1) * SEGMENT_SIZE
    return Uniform(size, rng.randbytes(SEGMENT_SIZE), rng.randbytes(last_len))


# ------------------------------------------------------------------ chain


class Chain:
    """A fresh py-evm chain running one fork from genesis, auto-mining one block per tx."""

    def __init__(self, fork: str) -> None:
        backend = PyEVMBackend(vm_configuration=((0, FORKS[fork]),))
        self.tester = EthereumTester(backend)
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        self.me = self.w3.eth.accounts[0]

    def deploy(self, name: str, *args: Any) -> Any:
        art = load_artifact(name)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        tx = factory.constructor(*args).transact({"from": self.me, "gas": GAS})
        address = self.w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
        return self.w3.eth.contract(address=address, abi=art.abi)

    def send(self, fn: Any, value: int = 0) -> tuple[int, bytes]:
        """(gasUsed, calldata) of the mined transaction; it must succeed."""
        tx_hash = fn.transact({"from": self.me, "value": value, "gas": GAS})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise RuntimeError(f"{fn.fn_name} reverted")
        return receipt["gasUsed"], bytes(self.w3.eth.get_transaction(tx_hash)["input"])


@dataclass(frozen=True)
class Measured:
    label: str
    gas: int
    calldata: bytes
    per: int = 1  #: items in the transaction (gas per item is shown when > 1)


def measure(fork: str) -> list[Measured]:
    rng = random.Random(0xB5CA1)
    p = DeployParams()
    chain = Chain(fork)
    registry = chain.deploy("ContentRegistry")
    receipts = chain.deploy(
        "TransferReceipts",
        registry.address,
        p.epoch_length,
        p.min_price_per_gib,
        p.receipt_fee_bps,
        p.escrow_withdraw_delay,
    )
    da = chain.deploy("DataAvailability", registry.address, receipts.address, p.da_params())
    directory = chain.deploy("HostDirectory", da.address)
    out: list[Measured] = []

    tib: Uniform | None = None
    slot_roots: list[bytes] = []
    for name, size in SIZES:
        content = uniform(size, rng)
        root = content.root()
        proof = content.size_proof()
        if not verify_size_proof(root, size, proof):
            raise AssertionError(f"synthetic size proof of {name} does not verify")
        segs, hashes = size_proof_shape(size)
        if (len(proof.left_segments) + 1, len(proof.edge_hashes)) != (segs, hashes):
            raise AssertionError(f"synthetic size proof of {name} has the wrong shape")
        rows = -(-content.n // K)
        # Synthetic slots: every slot row is the full segment (a 2^k-row slot of equal rows).
        slot_roots = [content.pow2_root(rows.bit_length() - 1)] * N
        reg = (root, size, MIB, SEGMENT_SIZE, K, N, slots_root_of(slot_roots), "")
        commitment = registry.functions.registrationCommitment(chain.me, reg).call()
        gas, data = chain.send(registry.functions.commitRegistration(commitment))
        if size == SIZES[0][1]:
            out.append(Measured("commitRegistration", gas, data))
        gas, data = chain.send(
            registry.functions.register(
                reg, list(proof.left_segments), list(proof.edge_hashes), proof.last_segment
            )
        )
        label = f"register, {name} (spine proof: {segs} segments, {hashes} hashes)"
        out.append(Measured(label, gas, data))
        tib = content

    assert tib is not None and tib.size == TIB
    root = tib.root()
    rows = tib.n // K  # 2^26
    height = rows.bit_length() - 1
    slot_root = tib.pow2_root(height)
    gas, data = chain.send(
        da.functions.commit(root, 0, slot_root, slot_root_proof(slot_roots, 0)), value=p.min_stake
    )
    out.append(Measured(f"commit (slot proof over {N} slots)", gas, data))
    gas, data = chain.send(da.functions.challenge(root, 0), value=p.challenge_bond)
    out.append(Measured("challenge", gas, data))
    challenge_id = 1
    chain.tester.mine_blocks(1)  # the seed block: respond from the next one
    path = [tib.pow2_root(j) for j in range(height)]  # every row is the full segment
    gas, data = chain.send(
        da.functions.respond(challenge_id, [tib.full] * SAMPLES, [path] * SAMPLES)
    )
    if da.functions.getChallenge(challenge_id).call()[2] != 2:  # ChallengeStatus.Passed
        raise AssertionError("respond must pass")
    out.append(
        Measured(f"respond, {SAMPLES} samples, 2^{height}-row slot (1 TiB, K={K})", gas, data)
    )

    key = rng.randbytes(32)
    receiver = Account.from_key(key).address
    chain.send(receipts.functions.deposit(receiver), value=10**18)
    payment = -(-RECEIPT_BYTES * p.min_price_per_gib // GIB)
    for start, what in ((0, "fresh"), (100, "steady state")):
        now = chain.w3.eth.get_block("latest")["timestamp"]
        batch, sigs = [], []
        for nonce in range(start, start + 100):
            r = (root, chain.me, receiver, RECEIPT_BYTES, 1, payment, nonce, now)
            digest = receipts.functions.hashReceipt(r).call()
            batch.append(r)
            sigs.append(Account.unsafe_sign_hash(digest, key).signature)
        gas, data = chain.send(receipts.functions.submitBatch(batch, sigs))
        label = f"submitBatch, 100 receipts, nonces {start}-{start + 99} ({what})"
        out.append(Measured(label, gas, data, per=100))

    for endpoint, what in (
        ("203.0.113.7:7420", "16 bytes, first record"),
        ("203.0.113.8:7420", "16 bytes, replacing one"),
        ("h" * 128, "128 bytes (the cap), replacing 16"),
    ):
        gas, data = chain.send(directory.functions.announce(endpoint))
        out.append(Measured(f"announce, {what}", gas, data))
    return out


def calldata_costs(data: bytes) -> tuple[int, int]:
    """(EIP-2028 calldata gas, EIP-7623 floor of the whole transaction)."""
    zeros = data.count(0)
    nonzero = len(data) - zeros
    return 16 * nonzero + 4 * zeros, 21_000 + 10 * (zeros + 4 * nonzero)


def table(results: dict[str, list[Measured]]) -> list[str]:
    def gas_cell(m: Measured | None) -> str:
        if m is None:
            return "-"
        return f"{m.gas:,}" + (f" ({m.gas // m.per:,} / item)" if m.per > 1 else "")

    first = next(iter(results.values()))
    lines = [
        "| transaction | Cancun gasUsed | Prague gasUsed | calldata bytes "
        "| calldata gas (16/4) | EIP-7623 floor |",
        "|---|---|---|---|---|---|",
    ]
    for i, m in enumerate(first):
        cancun = results["cancun"][i] if "cancun" in results else None
        prague = results["prague"][i] if "prague" in results else None
        standard, floor = calldata_costs(m.calldata)
        lines.append(
            f"| {m.label} | {gas_cell(cancun)} | {gas_cell(prague)} | {len(m.calldata):,} "
            f"| {standard:,} | {floor:,} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--fork", choices=["cancun", "prague", "both"], default="both")
    args = parser.parse_args(argv)
    forks = ["cancun", "prague"] if args.fork == "both" else [args.fork]
    results = {fork: measure(fork) for fork in forks}
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
