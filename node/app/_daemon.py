"""``run_daemon``: a node as a service (``bcai serve``): peers, chain duties, local API.

Starts, in one trio nursery: the provider on ``[network] listen``; the chain duties when a
JSON-RPC chain is configured (receipt batches, challenge answers, the validator's round); the
local HTTP API on ``[api] listen`` (127.0.0.1). While it runs, ``<data dir>/run/api.json``
names the API's URL and the process id and ``run/api.token`` holds the bearer token; the CLI
finds the daemon there and goes through it instead of opening the store (which the daemon
holds). Both files go when the daemon stops; a stale ``api.json`` (its pid is gone) is ignored.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import secrets
import signal
from pathlib import Path
from typing import Any

import trio

from node._fs import atomic_write
from node.log import get_logger
from node.transfer import CHUNK_BUFFERS, BufferPool, default_receipt_domain, serve_node
from node.transport import AdmissionLimits

from ._client import API_FILE as API_FILE  # defined with the client, which reads them
from ._client import TOKEN_FILE as TOKEN_FILE
from ._node import Node

log = get_logger("node.daemon")

DEFAULT_API_LISTEN = "127.0.0.1:0"


def api_token(data_dir: Path) -> str:
    """The API token (created once, mode 0600); survives restarts so scripts keep working."""
    path = Path(data_dir) / TOKEN_FILE
    try:
        token = path.read_text().strip()
        if len(token) >= 32:
            return token
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def _api_listen(node: Node, override: str | None) -> str:
    if override:
        return override
    table = node.config.extra.get("api") or {}
    listen = table.get("listen") if isinstance(table, dict) else None
    return str(listen) if listen else DEFAULT_API_LISTEN


def _check_loopback(listen: str) -> None:
    host = listen.rpartition(":")[0].strip("[]")
    if host not in ("127.0.0.1", "::1", "localhost"):
        from node.config import ConfigError

        raise ConfigError(
            f"[api] listen = {listen!r}: the local API binds to 127.0.0.1 or ::1 only "
            "(put a reverse proxy with TLS in front to reach it from elsewhere)"
        )


#: The cyclic GC of a serving node (:func:`gc_policy`): objects alive this long are frozen ...
GC_FREEZE_EVERY = 10.0
#: ... and a full collection over everything runs this often (frees cycles frozen meanwhile).
GC_FULL_EVERY = 600.0
#: Allocations between young collections (CPython's default is 700).
GC_THRESHOLD0 = 10_000


async def gc_policy(
    freeze_every: float = GC_FREEZE_EVERY, full_every: float = GC_FULL_EVERY
) -> None:
    """Keep the cyclic garbage collector off the serving path while it runs (restored after).

    With thousands of connections CPython's collector was a quarter of an idle node's CPU and
    each full collection stopped the node for ~0.4 s at 3,000 connections (~1.4 s at 10,000),
    scanning the same long-lived connection objects again and again. So: young collections
    every ``GC_THRESHOLD0`` allocations; every ``freeze_every`` seconds the young generations
    are collected and every survivor is frozen (``gc.freeze``: never scanned again); every
    ``full_every`` seconds everything is unfrozen, collected once and frozen again, which frees
    cyclic garbage frozen meanwhile (memory held by it is bounded by what ``full_every``
    seconds of churn leave). Acyclic garbage is freed by reference counting as always. So
    what holds memory in bulk (a fetch's chunk buffers) is released explicitly when its work
    ends, not left to the cycle it sits in (tests/test_rss.py).
    """
    old = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD0, old[1], old[2])
    gc.collect()
    gc.freeze()
    last_full = trio.current_time()
    try:
        while True:
            await trio.sleep(freeze_every)
            if trio.current_time() - last_full >= full_every:
                gc.unfreeze()
                gc.collect()
                last_full = trio.current_time()
            else:
                gc.collect(1)
            gc.freeze()
    finally:
        gc.unfreeze()
        gc.set_threshold(*old)


#: How often a daemon unmaps the chunk buffers its fetches left unused (:func:`trim_buffers`).
TRIM_BUFFERS_EVERY = 10.0


async def trim_buffers(pool: BufferPool = CHUNK_BUFFERS, every: float = TRIM_BUFFERS_EVERY) -> None:
    """Unmap the pooled chunk buffers idle past the pool's ``idle`` (``node.transfer
    .CHUNK_BUFFERS``): a node keeps them between gets, not while it has none to do."""
    while True:
        await trio.sleep(every)
        pool.trim()


async def run_daemon(
    node: Node,
    *,
    listen: tuple[str, int],
    workers: int = 4,
    rpc: str | None = None,
    chain_interval: float = 5.0,
    validator: bool = False,
    chain: bool = True,
    api: bool = True,
    api_listen: str | None = None,
    on_ready: Any = None,
    stop_on_signals: bool = True,
    task_status: trio.TaskStatus[dict[str, Any]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``node`` as a service until cancelled or SIGINT/SIGTERM.

    ``task_status.started`` (and ``on_ready``) get ``{"listen", "address", "api", "pid",
    "chain_duties"}``.
    """
    from node.service import StatusFile, open_chain_duties

    identity = node.identity  # unlock once, before anything listens
    status_file = StatusFile(node.data_dir)
    api_file = node.data_dir / API_FILE
    with contextlib.ExitStack() as stack:
        duties = None
        if chain:
            duties = stack.enter_context(
                open_chain_duties(
                    node.data_dir,
                    identity,
                    node.receipts,
                    slots=node.slots,
                    rpc=rpc,
                    interval=chain_interval,
                    validator=validator,
                )
            )
        node_status: dict[str, Any] = {"address": identity.address, "chain": None}

        def on_round(snapshot: dict[str, Any]) -> None:
            node.chain_snapshot = snapshot
            node_status["chain"] = snapshot
            with contextlib.suppress(Exception):  # a malformed snapshot must not stop duties
                receipts = snapshot.get("receipts") or {}
                node.metrics.set_chain_queue(int(receipts.get("pending", 0) or 0))
            status_file.write(node_status)

        try:
            async with trio.open_nursery() as nursery:
                host, port = await nursery.start(
                    lambda task_status: serve_node(
                        node.store,
                        identity,
                        listen=listen,
                        receipt_box=node.receipts,
                        receipt_domain=default_receipt_domain(node.config.chain),
                        workers=workers,
                        limits=AdmissionLimits.from_config(node.config.network),
                        max_queued=node.config.network.upload_queue,
                        max_queued_per_peer=node.config.network.upload_queue_per_peer,
                        upload_buffers=node.config.network.upload_buffers,
                        task_status=task_status,
                        observer=node.observer,
                        upload=node.shaper,
                        compress=node.config.network.compress,
                    )
                )
                node.listen = f"{host}:{port}"
                nursery.start_soon(gc_policy)
                nursery.start_soon(trim_buffers)
                node_status["listen"] = node.listen
                status_file.write(node_status)
                if api:
                    bind = _api_listen(node, api_listen)
                    _check_loopback(bind)
                    token = api_token(node.data_dir)
                    node.api_url = await nursery.start(_serve_api, node, token, bind, nursery)
                    atomic_write(
                        api_file,
                        json.dumps({"url": node.api_url, "pid": os.getpid()}).encode(),
                        durable=False,
                    )
                if duties is not None:
                    await nursery.start(
                        lambda task_status: duties.run(on_round=on_round, task_status=task_status)
                    )
                ready = {
                    "listen": node.listen,
                    "address": identity.address,
                    "api": node.api_url,
                    "metrics": f"{node.api_url}/metrics" if node.api_url else None,
                    "pid": os.getpid(),
                    "chain_duties": duties is not None,
                }
                log.info("serving", **ready)
                task_status.started(ready)
                if on_ready is not None:
                    on_ready(ready)
                if stop_on_signals:
                    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for signum in signals:
                            log.info("shutting down", signal=signal.Signals(signum).name)
                            break
                    nursery.cancel_scope.cancel()
        finally:
            status_file.clear()
            if _ours(api_file):
                with contextlib.suppress(FileNotFoundError):
                    api_file.unlink()


def _ours(api_file: Path) -> bool:
    try:
        return int(json.loads(api_file.read_text()).get("pid", 0)) == os.getpid()
    except (OSError, ValueError, AttributeError):
        return False


async def _serve_api(
    node: Node,
    token: str,
    bind: str,
    nursery: trio.Nursery,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    from hypercorn.config import Config as HyperConfig
    from hypercorn.trio import serve

    from ._api import build_app

    config = HyperConfig()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = None  # hypercorn's own logger would print to stderr; ours logs errors
    config.graceful_timeout = 1.0
    app = build_app(node, token, nursery)

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(app, config, task_status=task_status)  # type: ignore[arg-type]

    # starlette's streamed answers (get's NDJSON) open an anyio task group, which imports
    # anyio's trio backend on first use: load it now, not inside the first get's answer
    import anyio

    await anyio.sleep(0)
    async with trio.open_nursery() as inner:
        binds = await inner.start(run)
        task_status.started(binds[0])


__all__ = ["API_FILE", "TOKEN_FILE", "api_token", "run_daemon"]
