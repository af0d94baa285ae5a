"""``serve_node``: run a provider inside an existing trio nursery (CLI, demo and tests)."""

from __future__ import annotations

from typing import Any

import trio

from node.receipt import DEFAULT_PRICE_PER_GIB, ReceiptDomain
from node.store import Store
from node.transport import AdmissionLimits, LocalPeer, serve_peers

from ._acceptance import DEFAULT_MAX_SKEW
from ._observer import NULL_OBSERVER, TransferObserver
from ._provider import Provider
from ._receipts import ReceiptBox
from ._shaper import Shaper

#: Chain id of the embedded py-evm chain (eth-tester), the project's default chain.
EMBEDDED_CHAIN_ID = 131277322940537
_ZERO = "0x" + "00" * 20


def default_receipt_domain(chain: Any = None) -> ReceiptDomain:
    """The EIP-712 domain from a ``node.config.ChainConfig`` (or defaults without one).

    Uses ``chain.chain_id`` and ``chain.contracts["TransferReceipts"]`` when set; otherwise the
    embedded chain's id and the zero address (receipts stay verifiable by both parties; the
    chain client re-checks the domain before it submits).
    """
    chain_id = getattr(chain, "chain_id", None) or EMBEDDED_CHAIN_ID
    contracts = getattr(chain, "contracts", None) or {}
    contract = contracts.get("TransferReceipts") or contracts.get("transfer_receipts") or _ZERO
    return ReceiptDomain(chain_id=int(chain_id), verifying_contract=contract)


async def serve_node(
    store: Store,
    identity: Any,
    *,
    listen: tuple[str, int] = ("127.0.0.1", 0),
    receipt_box: ReceiptBox | None = None,
    receipt_domain: ReceiptDomain | None = None,
    workers: int = 4,
    max_queued: int = 1024,
    max_queued_per_peer: int = 256,
    upload_buffers: int | None = None,
    price_per_gib: int = DEFAULT_PRICE_PER_GIB,
    max_receipt_skew: float = DEFAULT_MAX_SKEW,
    provider: Provider | None = None,
    limits: AdmissionLimits | None = None,
    observer: TransferObserver = NULL_OBSERVER,
    compress: bool = True,
    upload: Shaper | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``store`` to peers on ``listen`` until cancelled.

    ``task_status.started`` gets the bound ``(host, port)``. ``identity`` is a
    ``node.identity.Identity`` or a ``node.transport.LocalPeer``. ``price_per_gib`` (wei) is
    stated to every receiver before it fetches; receipts paying less are refused. ``limits``
    is the admission policy (``AdmissionLimits.from_config(cfg.network)``; defaults if None).
    The node advertises ``Provider.capabilities`` (RECEIPTS only with a ``receipt_box``) unless
    ``identity`` is a ready ``LocalPeer``, whose own capabilities are used.
    ``compress=False``: never send zstd frames, even to peers that ask (``Provider``).
    ``observer`` is told of every connection and chunk served (``Provider``); with a given
    ``provider`` it replaces that provider's observer unless it is ``NULL_OBSERVER``.
    ``upload`` (a ``Shaper``): chunks sent are paced by its upload cap (``Provider``).
    ``max_queued``, ``max_queued_per_peer``, ``upload_buffers``: the provider's queue caps
    and chunk-buffer budget (``[network] upload_queue``, ``upload_queue_per_peer``,
    ``upload_buffers``; ``Provider``).
    """
    prov = provider or Provider(
        store,
        identity.address,
        receipt_box=receipt_box,
        receipt_domain=receipt_domain or default_receipt_domain(),
        workers=workers,
        max_queued=max_queued,
        max_queued_per_peer=max_queued_per_peer,
        budget=upload_buffers,
        price_per_gib=price_per_gib,
        max_receipt_skew=max_receipt_skew,
        observer=observer,
        upload=upload,
        compress=compress,
    )
    if provider is not None and upload is not None:
        prov.upload = upload
    if provider is not None and observer is not NULL_OBSERVER:
        prov.observer = observer
    me = (
        identity
        if isinstance(identity, LocalPeer)
        else LocalPeer.from_identity(identity, prov.capabilities)
    )

    async def run(task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_peers(
            prov.handle, listen[1], me, host=listen[0], limits=limits, task_status=task_status
        )

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(run)
        host, port = listeners[0].socket.getsockname()[:2]
        task_status.started((host, port))
