"""Helpers for in-process transfer tests: identities, stores, a served node."""

from __future__ import annotations

import os
from pathlib import Path

from eth_account import Account

from node.identity import Identity
from node.noise import KeyPair
from node.store import Store


def make_identity() -> Identity:
    account = Account.create()
    kp = KeyPair.generate()
    return Identity(
        account=account, address=account.address, noise_private=kp.private, noise_public=kp.public
    )


def store_with(
    path: Path, size: int, *, chunk_size: int = 256 * 1024
) -> tuple[Store, bytes, bytes]:
    data = os.urandom(size)
    path.mkdir(parents=True, exist_ok=True)
    src = path / "src.bin"
    src.write_bytes(data)
    store = Store.open(path / "store", durable=False)
    manifest = store.add_file(src, chunk_size=chunk_size)
    return store, manifest.root, data


def read_all(store: Store, root: bytes) -> bytes:
    return b"".join(store.iter_verified(root))
