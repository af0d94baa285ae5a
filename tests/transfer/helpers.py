"""Helpers for in-process transfer tests: identities, stores, a served node."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import trio
from eth_account import Account

from node.identity import Identity
from node.noise import KeyPair
from node.store import Store
from node.transfer import FetchResult, PeerAddr, fetch, serve_node


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


async def fetch_served(
    src: Store,
    provider_id: Identity,
    dst: Store,
    receiver_id: Identity,
    root: bytes,
    *,
    serve: dict[str, Any] | None = None,
    **kwargs: Any,
) -> FetchResult:
    """``serve_node(src, provider_id, **serve)`` on 127.0.0.1 (real TCP) for as long as one
    ``fetch`` of ``root`` into ``dst`` (``**kwargs``) takes; the fetch's result."""
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(
            lambda task_status: serve_node(
                src, provider_id, **(serve or {}), task_status=task_status
            )
        )
        result = await fetch(
            dst, receiver_id, root, [PeerAddr(host, port, provider_id.address)], **kwargs
        )
        nursery.cancel_scope.cancel()
    return result
