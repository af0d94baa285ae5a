"""A misbehaving provider, run as its own process beside real `bcai serve` nodes.

    python -m tests.adversarial.evil_provider KIND STORE_DIR

Serves the store at ``STORE_DIR`` (a node's ``<data dir>/store``, filled with `bcai add`) with
the project's own ``serve_node`` and a ``Provider`` patched to misbehave one way (``KIND``):

- ``lying``: answers Want with a manifest claiming three more chunks than the content has;
- ``stalling``: offers the content honestly, accepts Requests, never sends a chunk;
- ``corrupting``: flips a byte in every chunk it sends (and never admits it when told);
- ``silent``: completes the handshake and Hello, never answers Want.

Prints one JSON line ``{"listen": "host:port", "address": "0x…"}`` once listening (the same
shape as `bcai --json serve`), then serves until SIGTERM. A fresh identity each run: the
receiver's ledger must learn about this peer from its conduct alone.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
from eth_account import Account

from node.content import Manifest
from node.identity import Identity
from node.noise import KeyPair
from node.store import Store
from node.transfer import Provider, serve_node
from node.transport import PeerConnection
from node.wire import HaveAll, ManifestMsg, Price, Want


class Lying(Provider):
    """A manifest for the right root that lies about the size."""

    async def _on_want(self, conn: PeerConnection, msg: Want) -> None:
        root = bytes(msg.root)
        real = self.store.get_manifest(root)
        d = real.to_dict()
        d["size"] = real.size + 3 * real.chunk_size
        forged = Manifest.from_dict(d).to_bytes()
        await conn.send(
            ManifestMsg(root, forged), Price(root, self.policy.price_per_gib), HaveAll(root)
        )


class Stalling(Provider):
    async def _sender(self, conn: PeerConnection, queue: Any) -> None:
        await trio.sleep_forever()


class Corrupting(Provider):
    async def _read(self, root: bytes, index: int, after: Sequence[int] = ()) -> bytes | Exception:
        got = await super()._read(root, index, after)
        if isinstance(got, Exception) or not got:
            return got
        raw = bytearray(got)
        raw[len(raw) // 2] ^= 0xFF
        return bytes(raw)

    def _verify_chunk(self, root: bytes, index: int) -> None:
        """Its own copy verifies: keeps serving the bad bytes after a BAD_CHUNK report."""


class Silent(Provider):
    async def _on_want(self, conn: PeerConnection, msg: Want) -> None:
        await trio.sleep_forever()


KINDS: dict[str, type[Provider]] = {
    "lying": Lying,
    "stalling": Stalling,
    "corrupting": Corrupting,
    "silent": Silent,
}


def _identity() -> Identity:
    account = Account.create()
    kp = KeyPair.generate()
    return Identity(
        account=account, address=account.address, noise_private=kp.private, noise_public=kp.public
    )


async def _serve(kind: str, store: Store) -> None:
    ident = _identity()
    prov = KINDS[kind](store, ident.address)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(
            lambda task_status: serve_node(store, ident, provider=prov, task_status=task_status)
        )
        print(json.dumps({"listen": f"{host}:{port}", "address": ident.address}), flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()


def main(argv: list[str]) -> int:
    kind, store_dir = argv
    if kind not in KINDS:
        print(f"unknown kind {kind!r}; one of {sorted(KINDS)}", file=sys.stderr)
        return 2
    with Store.open(Path(store_dir)) as store:
        trio.run(_serve, kind, store)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
