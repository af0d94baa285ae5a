"""Measure the gas goals of the contracts from transaction receipts on py-evm.

    .venv/bin/python contracts/tools/measure_gas.py [--fork prague|cancun|both]

Scenarios (each on a fresh deployment, so the first write of every slot is paid):
  submitBatch, 100 receipts, one receiver with sequential nonces (shared bitmap word);
  the same again for nonces 100..199 (the receiver's words exist: steady state);
  submitBatch, 100 receipts, 100 distinct receivers (a fresh bitmap word each);
  respond() for a 1 TiB root (2^28 segments, 28-hash proof, a random 4 KiB segment).
Prints gasUsed, gas per receipt, and the calldata part (EIP-2028 16/4 per byte, and the EIP-7623
floor that applies from Prague: 21000 + 10 * (zero bytes + 4 * nonzero bytes)).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from eth.vm.forks import CancunVM, PragueVM
from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

ARTIFACTS = Path(__file__).resolve().parents[2] / "chain" / "artifacts"
FORKS = {"prague": PragueVM, "cancun": CancunVM}


def leaf(segment: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + segment).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Chain:
    def __init__(self, fork: str) -> None:
        backend = PyEVMBackend(vm_configuration=((0, FORKS[fork]),))
        self.w3 = Web3(EthereumTesterProvider(EthereumTester(backend)))
        self.me = self.w3.eth.accounts[0]

    def deploy(self, name: str, *args: Any) -> Any:
        art = json.loads((ARTIFACTS / f"{name}.json").read_text())
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        tx = factory.constructor(*args).transact({"from": self.me})
        address = self.w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
        return self.w3.eth.contract(address=address, abi=art["abi"])

    def send(self, fn: Any, value: int = 0) -> tuple[int, bytes]:
        tx_hash = fn.transact({"from": self.me, "value": value, "gas": 29_000_000})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt["status"] == 1
        return receipt["gasUsed"], bytes(self.w3.eth.get_transaction(tx_hash)["input"])


def calldata_costs(data: bytes) -> tuple[int, int]:
    zeros = data.count(0)
    nonzero = len(data) - zeros
    return 16 * nonzero + 4 * zeros, 21_000 + 10 * (zeros + 4 * nonzero)


def batch(chain: Chain, trc: Any, keys: list[bytes], nonces: range) -> tuple[int, bytes]:
    now = chain.w3.eth.get_block("latest")["timestamp"]
    receipts, sigs = [], []
    for i, nonce in enumerate(nonces):
        key = keys[i % len(keys)]
        r = (os.urandom(32), chain.me, Account.from_key(key).address, 1 << 20, 1, nonce, now)
        digest = trc.functions.hashReceipt(r).call()
        receipts.append(r)
        sigs.append(Account.unsafe_sign_hash(digest, key).signature)
    return chain.send(trc.functions.submitBatch(receipts, sigs))


def row(label: str, gas: int, data: bytes, per: int = 1) -> str:
    standard, floor = calldata_costs(data)
    return f"| {label} | {gas:,} | {gas // per:,} | {len(data):,} | {standard:,} | {floor:,} |"


def measure(fork: str) -> list[str]:
    rows = []
    keys = [os.urandom(32) for _ in range(100)]

    chain = Chain(fork)
    trc = chain.deploy("TransferReceipts", 3600)
    gas, data = batch(chain, trc, keys[:1], range(100))
    rows.append(row("submitBatch 100, 1 receiver, nonces 0-99 (fresh)", gas, data, 100))
    gas, data = batch(chain, trc, keys[:1], range(100, 200))
    rows.append(row("submitBatch 100, 1 receiver, nonces 100-199", gas, data, 100))

    chain = Chain(fork)
    trc = chain.deploy("TransferReceipts", 3600)
    gas, data = batch(chain, trc, keys, range(100))
    rows.append(row("submitBatch 100, 100 receivers (fresh words)", gas, data, 100))
    gas, data = batch(chain, trc, keys, range(1, 101))
    rows.append(row("submitBatch 100, 100 receivers (words exist)", gas, data, 100))

    chain = Chain(fork)
    registry = chain.deploy("ContentRegistry")
    da = chain.deploy("DataAvailability", registry.address, 10**16, 600, 5000, 3600)
    segment = os.urandom(4096)
    proof, acc = [], leaf(segment)
    for _ in range(28):  # 2^28 identical segments: each sibling equals the running hash
        proof.append(acc)
        acc = node(acc, acc)
    chain.send(registry.functions.register(acc, 1 << 40, 1 << 20, 4096, ""))
    chain.send(da.functions.commit(acc), value=10**16)
    chain.send(da.functions.challenge(chain.me, acc))
    chain.w3.provider.ethereum_tester.mine_blocks(1)  # the seed block: respond from the next
    gas, data = chain.send(da.functions.respond(1, segment, proof))
    assert da.functions.getChallenge(1).call()[4] == 2, "challenge must pass"
    rows.append(row("respond, 1 TiB root (2^28 segments, 28-hash proof)", gas, data))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fork", choices=["prague", "cancun", "both"], default="both")
    args = parser.parse_args(argv)
    forks = ["cancun", "prague"] if args.fork == "both" else [args.fork]
    for fork in forks:
        print(f"\n### {fork} (py-evm)\n")
        print("| scenario | gasUsed | per receipt | calldata bytes | calldata gas | 7623 floor |")
        print("|---|---|---|---|---|---|")
        for line in measure(fork):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
