"""Regenerate slot-roots.json and samples.json without the code under test.

Written from docs/incentives.md section 2 alone: zfec one row at a time, RFC 6962 as the RFC
states it (recursive split), Keccak-256 from pycryptodome. Nothing from ``node`` is imported,
so tests/content/test_slots.py compares two independent implementations, and the chain
tests can check the Solidity side against the same files.

    .venv/bin/python tests/content/vectors/slots/generate.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import zfec
from Crypto.Hash import keccak

HERE = Path(__file__).resolve().parent
SEG = 4096
K, N = 4, 8
SIZES = [1, 4095, 4096, 4097, 16384, 16385, 40000, 13 * SEG + 5, 33 * SEG]


def content(size: int) -> bytes:
    """content[i] = (i * 31 + (i >> 12) * 101 + 7) mod 256 (segments differ from each other)."""
    return bytes((i * 31 + (i >> 12) * 101 + 7) & 0xFF for i in range(size))


def sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return sha(b"")
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return sha(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def path(leaves: list[bytes], m: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1, bottom-up."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*path(leaves[:k], m), mth(leaves[k:])]
    return [*path(leaves[k:], m - k), mth(leaves[:k])]


def segments(data: bytes) -> list[bytes]:
    return [data[i : i + SEG] for i in range(0, len(data), SEG)]


def slot_case(size: int) -> dict[str, object]:
    data = content(size)
    n = -(-size // SEG)
    rows = -(-n // K)
    padded = data + bytes(rows * K * SEG - size)
    enc = zfec.Encoder(K, K + N)
    slots: list[list[bytes]] = [[] for _ in range(N)]
    for r in range(rows):
        shares = enc.encode([padded[(r * K + i) * SEG : (r * K + i + 1) * SEG] for i in range(K)])
        for j in range(N):
            slots[j].append(shares[K + j])
    slot_roots = [mth([sha(b"\x00" + s) for s in slots[j]]) for j in range(N)]
    slot_leaves = [sha(b"\x00" + r) for r in slot_roots]
    leaves = [sha(b"\x00" + s) for s in segments(data)]
    sample_slot, sample_row = 1, rows - 1
    sample_leaves = [sha(b"\x00" + s) for s in slots[sample_slot]]
    return {
        "size": size,
        "data_shards": K,
        "slot_count": N,
        "segments": n,
        "rows": rows,
        "content_sha256": sha(data).hex(),
        "root": mth(leaves).hex(),
        "slot_roots": [r.hex() for r in slot_roots],
        "slots_root": mth(slot_leaves).hex(),
        "slot_proofs": [[p.hex() for p in path(slot_leaves, j)] for j in range(N)],
        "last_segment": segments(data)[-1].hex(),
        "last_proof": [p.hex() for p in path(leaves, n - 1)],
        "sample": {
            "slot": sample_slot,
            "index": sample_row,
            "segment": slots[sample_slot][sample_row].hex(),
            "proof": [p.hex() for p in path(sample_leaves, sample_row)],
        },
    }


def keccak256(b: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=b).digest()


SAMPLE_CASES = [
    (bytes(32), 0, 5, 1),
    (bytes(32), 0, 20, 1000),
    (bytes([0x11]) * 32, 7, 20, 4),
    (keccak256(b"bcai slots"), 1, 20, 2**20),
    (keccak256(b"seed block"), 2**256 - 1, 8, 2**64 - 1),
    (bytes(range(32)), 123456789, 20, 3),
]


def sample_case(seed: bytes, cid: int, samples: int, rows: int) -> dict[str, object]:
    indices = [
        int.from_bytes(keccak256(seed + cid.to_bytes(32, "big") + k.to_bytes(32, "big")), "big")
        % rows
        for k in range(samples)
    ]
    return {
        "seed": seed.hex(),
        "challenge_id": str(cid),
        "samples": samples,
        "rows": str(rows),
        "indices": [str(i) for i in indices],
    }


def main() -> None:
    slot_doc = {
        "description": "docs/incentives.md section 2; content[i] = (i*31 + (i>>12)*101 + 7) "
        "mod 256; hashes hex without 0x; proofs bottom-up RFC 6962 audit paths",
        "cases": [slot_case(s) for s in SIZES],
    }
    (HERE / "slot-roots.json").write_text(json.dumps(slot_doc, indent=1) + "\n")
    sample_doc = {
        "description": "index[k] = uint256(keccak256(abi.encode(bytes32 seed, uint256 id, "
        "uint256 k))) % rows; big integers as decimal strings",
        "cases": [sample_case(*c) for c in SAMPLE_CASES],
    }
    (HERE / "samples.json").write_text(json.dumps(sample_doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
