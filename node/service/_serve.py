"""What ``bcai serve`` adds to serving: chain duties and a status file.

``open_chain_duties`` builds :class:`ChainDuties` from the node's ``[chain]`` config (a JSON-RPC
URL such as a local anvil; an embedded chain lives in one process only, so a standalone serve
does not start one). ``StatusFile`` is how a running node tells ``bcai status`` what it is doing:
LevelDB allows one process per database, so ``status`` cannot open the receipt box while
``serve`` holds it; ``serve`` writes ``<data dir>/run/status.json`` (atomically) every round.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import plyvel

from chain import ChainClient, ChainUnavailable, RpcChain
from chain.config import load_deployment, read_chain_config
from chain.port import ChainPort, ClientPort
from node._fs import atomic_write
from node.identity import Identity
from node.log import get_logger

from ._allocation import EpochAllocator
from ._answers import AnswerQueue
from ._duties import ChainDuties, ReceiptOutbox, SlotProver
from ._validator import ValidatorDuty

log = get_logger("node.service")

DUTIES_DIR = "duties"
STATUS_FILE = Path("run") / "status.json"


@contextlib.contextmanager
def open_chain_duties(
    data_dir: Path,
    identity: Identity,
    outbox: ReceiptOutbox,
    *,
    slots: SlotProver | None = None,
    rpc: str | None = None,
    interval: float = 5.0,
    batch_size: int = 100,
    validator: bool = False,
) -> Iterator[ChainDuties | None]:
    """Chain duties for this node, or ``None`` (with a log line) when no RPC chain is set.

    ``slots`` (the node's ``SlotStore``) makes the node answer challenges on the slots it
    hosts; ``validator`` adds the validator's round (scheduled challenges, slashes, each final
    epoch's allocation), whose records (issued challenges, the index and reputation ledger)
    live in the same LevelDB as the answer queue.
    """
    table = read_chain_config(data_dir) or {}
    url = rpc or table.get("rpc")
    if not url or url == "embedded":
        log.info(
            "chain duties off: no JSON-RPC chain configured "
            "(bcai chain up --anvil, or serve --rpc URL)"
        )
        yield None
        return
    deployment, _ = load_deployment(data_dir)
    backend = RpcChain(str(url))
    db = plyvel.DB(str(data_dir / DUTIES_DIR), create_if_missing=True)
    try:
        clients: list[ChainClient] = []

        def client() -> ChainClient:  # built on first use (see _LazyPort), then shared
            if not clients:
                clients.append(ChainClient(backend, deployment, identity.account))
            return clients[0]

        port = _LazyPort(lambda: ClientPort(client()))
        duty = None
        if validator:
            allocator = EpochAllocator(client, db.prefixed_db(b"ledger/"))
            duty = ValidatorDuty(port, db.prefixed_db(b"v/"), identity.address, allocator=allocator)
        yield ChainDuties(
            port,
            outbox,
            AnswerQueue(db),
            identity.address,
            slots=slots,
            validator=duty,
            interval=interval,
            batch_size=batch_size,
        )
    finally:
        db.close()
        backend.close()


def validator_enabled(extra: dict[str, Any]) -> bool:
    """``[validator] enabled = true`` in config.toml (kept in ``Config.extra``)."""
    table = extra.get("validator") or {}
    return bool(isinstance(table, dict) and table.get("enabled", False))


class _LazyPort:
    """A ``ChainPort`` whose client is built on first use.

    Building a ``ChainClient`` asks the chain for its id; a node must start (and serve, and
    queue receipts) while its chain is down, so that question waits for the first duty round.
    """

    def __init__(self, factory: Callable[[], ChainPort]) -> None:
        self._factory = factory
        self._port: ChainPort | None = None

    def _get(self) -> ChainPort:
        if self._port is None:
            self._port = self._factory()
        return self._port

    def is_up(self) -> bool:
        try:
            return self._get().is_up()
        except ChainUnavailable:
            return False

    def __getattr__(self, name: str) -> Any:
        # Every other ChainPort method, delegated (a method added to the port needs no edit
        # here). Private names are never delegated, so a half-built object cannot recurse.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._get(), name)


class StatusFile:
    """``<data dir>/run/status.json``: what a running node reports about itself."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / STATUS_FILE

    def write(self, status: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({**status, "updated": time.time(), "pid": os.getpid()})
        atomic_write(self.path, body.encode(), durable=False)  # rewritten every round

    def read(self) -> dict[str, Any] | None:
        """The last status, if the process that wrote it is still alive."""
        try:
            status = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        try:
            os.kill(int(status.get("pid", 0)), 0)
        except (OSError, ValueError):
            return None
        return dict(status)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
