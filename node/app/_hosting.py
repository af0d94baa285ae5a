"""Publishing and hosting content: the part of ``publish`` and ``host commit`` that needs the
store, as node operations, so they run in a daemon that holds the store (through its API) as
well as in a CLI process that opens the node itself.

Each takes the node and a ``chain.ChainClient`` signing as the node's account.
"""

from __future__ import annotations

from typing import Any

from chain.client import ChainClient
from chain.errors import ChainError, ChainUsageError
from chain.port import ClientPort
from node.content import (
    SlotLayout,
    encode_slot_roots,
    root_hex,
    size_proof,
    slot_root_proof,
    slots_root_of,
)
from node.log import get_logger

log = get_logger("node.hosting")


def publish(
    node: Any,
    client: ChainClient,
    root: bytes,
    *,
    data_shards: int,
    slots: int,
    metadata_uri: str = "",
) -> dict[str, Any]:
    """Register stored content with its slot layout and spine size proof (ContentRegistry)."""
    store = node.store
    manifest = store.get_manifest(root)
    if manifest.size == 0:
        raise ChainUsageError("empty content has no slots to host; nothing to publish")
    layout = SlotLayout(manifest.size, data_shards, slots)
    read = store.reader(root)
    slot_roots, _ = encode_slot_roots(read, layout)
    proof = size_proof(read, manifest.size)
    res = ClientPort(client).publish(manifest, layout, slot_roots, proof, metadata_uri)
    out: dict[str, Any] = {
        "root": root_hex(root),
        "size": manifest.size,
        "data_shards": layout.data_shards,
        "slots": layout.slot_count,
        "rows": layout.rows,
    }
    if res is None:
        return {**out, "already_registered": True, "owner": client.get_content(root).owner}
    return {**out, **res.to_json()}


def host_commit(
    node: Any, client: ChainClient, root: bytes, *, slot: int, stake: int
) -> dict[str, Any]:
    """Build slot ``slot`` of ``root`` from the store, check it against the registration, pin
    ``root``, stake on it, and announce ``[network] public_endpoint`` if it changed."""
    on_chain = client.layout_of(root)
    if on_chain.slot_count == 0:
        raise ChainUsageError(f"{root_hex(root)} is registered without slots (empty content)")
    layout = SlotLayout(on_chain.size, on_chain.data_shards, on_chain.slot_count)
    layout.check_slot(slot)
    store = node.store
    manifest = store.get_manifest(root)
    if manifest.size != on_chain.size:
        raise ChainUsageError(
            f"the store holds {manifest.size} bytes for {root_hex(root)}, the chain registered "
            f"{on_chain.size}"
        )
    read = store.reader(root)
    slot_roots, slots_root = encode_slot_roots(read, layout)
    if slots_root != on_chain.slots_root:
        raise ChainUsageError(
            f"the slots of the stored content hash to 0x{slots_root.hex()}, the chain "
            f"registered 0x{on_chain.slots_root.hex()}: the registration lies about its "
            "slots; do not host it"
        )
    slot_root = node.slots.build(root, slot, layout, read, expected_slot_root=slot_roots[slot])
    if slot_root != slot_roots[slot]:
        raise ChainUsageError(
            f"slot {slot} built with root 0x{slot_root.hex()}, expected 0x{slot_roots[slot].hex()}"
        )
    store.pin(root)
    proof = slot_root_proof(slot_roots, slot)
    assert slots_root_of(slot_roots) == on_chain.slots_root
    res = client.commit(root, slot, slot_root, proof, stake)
    out: dict[str, Any] = {
        "root": root_hex(root),
        "slot": slot,
        "slot_root": "0x" + slot_root.hex(),
        "slot_bytes": layout.slot_bytes,
        "pinned": True,
        **res.to_json(),
    }
    # Receivers find hosts by their endpoint records: publish ours with the commitment (one
    # transaction, only when it changed). The stake is placed already, so a failure here is a
    # warning with the command to retry, not a failed commit.
    endpoint = node.config.network.public_endpoint
    out["endpoint"] = endpoint
    if endpoint is not None:
        try:
            announced = client.announce_if_changed(endpoint)
        except ChainError as exc:
            log.warning("endpoint not announced", error=str(exc))
            out["announce_error"] = str(exc)
        else:
            out["announced"] = announced.to_json() if announced is not None else None
    return out


__all__ = ["host_commit", "publish"]
