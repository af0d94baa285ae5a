"""``Node``: the one place a node is put together (store, identity, queues, chain, API).

Every face builds its node here: the CLI (when no daemon runs), the daemon (``bcai serve``),
the demo, tests and library users (``docs/library.md``)::

    from node.app import open_node

    with open_node("~/.bcai", passphrase="...") as node:
        root = node.add("model.safetensors")["root"]
        result = trio.run(node.fetch, other_root, ["10.0.0.2:7070/0xabc..."])

A node owns, for as long as it is open: the content store and the slot store, the receipt box,
the local peer ledger, the keystore identity (unlocked on first use, once), the metrics
registry, the traffic shaper and the table of transfers. Operations return JSON-ready dicts
(the same the CLI prints with ``--json`` and the HTTP API answers), and raise the library's
typed errors, which :func:`node.app.classify` maps to exit codes.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import plyvel
import trio

from node._fs import output_target, write_output
from node._memory import tune_malloc
from node.config import CONFIG_FILE, Config, load_config
from node.content import Manifest, root_hex
from node.identity import Identity, load_identity, read_address
from node.ledger import LocalLedger, open_ledger_db
from node.log import get_logger
from node.receipt import ReceiptDomain
from node.store import CorruptStoredChunk, SlotStore, Store
from node.transfer import (
    PRIORITY_WEIGHTS,
    ConnectionPool,
    FetchResult,
    InvalidArgument,
    PeerAddr,
    Progress,
    ProviderReport,
    ReceiptBox,
    Shaper,
    default_receipt_domain,
    fetch,
)
from node.transport import LocalPeer, set_congestion
from node.wire import Capabilities, CapFlag

from ._errors import ExitStatus, Failure, NodeError, NotInitialised
from ._metrics import Metrics
from ._tuner import Tuner, watching

if TYPE_CHECKING:
    from node.seal import ContentKey

log = get_logger("node.app")

RECEIPTS_DIR = "receipts"  #: LevelDB of the receipt box
PEERS_DIR = "peers"  #: LevelDB of the local peer ledger
SLOTS_DIR = "slots"  #: the slot store (``bcai host commit``)
VERSION = "0.1.0"

PRIORITIES = tuple(PRIORITY_WEIGHTS)  #: critical, high, normal, bulk (the shaper's weights)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("bcai-transfer")
    except Exception:
        return VERSION


# -- transfers ---------------------------------------------------------------------------------


@dataclass
class TransferInfo:
    """One transfer the node runs or ran; what ``status`` and the dashboard show."""

    id: str
    root: str
    direction: str  #: "in" (fetch) or "out" (serve)
    priority: str = "normal"
    state: str = "running"  #: queued | running | done | failed
    done_bytes: int = 0
    total_bytes: int = 0
    rate: float = 0.0
    peers: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str | None = None
    bottleneck: dict[str, Any] | None = None  #: what bounds it now (``node.app._tuner``)
    #: its receipts' answers: acked | pending (taken in the background, docs/transfer.md) |
    #: refused | unacked; None when no receipt was sent
    receipts: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class TransferTable:
    """Running transfers and the last ``keep`` finished ones, in start order. ``on_change``
    is called with (incoming, outgoing) running counts whenever they change (the metrics)."""

    def __init__(self, keep: int = 50, on_change: Callable[[int, int], None] | None = None) -> None:
        self._on_change = on_change
        self._ids = itertools.count(1)
        self._running: dict[str, TransferInfo] = {}
        self._done: deque[TransferInfo] = deque(maxlen=keep)

    def start(
        self, root: bytes, direction: str, priority: str, peers: Sequence[str]
    ) -> TransferInfo:
        info = TransferInfo(
            id=f"t{next(self._ids)}",
            root=root_hex(root),
            direction=direction,
            priority=priority,
            peers=list(peers),
        )
        self._running[info.id] = info
        self._changed()
        return info

    def _changed(self) -> None:
        if self._on_change is not None:
            running = self._running.values()
            incoming = sum(1 for t in running if t.direction == "in")
            self._on_change(incoming, len(self._running) - incoming)

    def finish(self, info: TransferInfo, error: str | None = None) -> None:
        info.state = "failed" if error else "done"
        info.error = error
        info.finished = time.time()
        info.rate = 0.0
        self._running.pop(info.id, None)
        self._done.append(info)
        self._changed()

    def running(self) -> list[TransferInfo]:
        return list(self._running.values())

    def all(self) -> list[TransferInfo]:
        return [*self._done, *self._running.values()]


# -- the node ----------------------------------------------------------------------------------


class _AdvisoryLedger:
    """The local peer ledger as the fetch sees it: advice, never a reason to fail. A write
    error (a full disk) is logged once and the ledger goes quiet until the node reopens."""

    def __init__(self, ledger: LocalLedger) -> None:
        self._ledger = ledger
        self._broken = False

    def _guard(self, fn: Callable[[], None]) -> None:
        if self._broken:
            return
        try:
            fn()
        except plyvel.Error as exc:
            self._broken = True
            log.warning("peer ledger not written", error=str(exc))

    def score(self, address: str) -> float:
        return self._ledger.score(address)

    def record_chunk(self, address: str, nbytes: int, seconds: float, now: float) -> None:
        self._guard(lambda: self._ledger.record_chunk(address, nbytes, seconds, now))

    def record_bad_chunk(self, address: str, now: float) -> None:
        self._guard(lambda: self._ledger.record_bad_chunk(address, now))

    def record_timeout(self, address: str, now: float) -> None:
        self._guard(lambda: self._ledger.record_timeout(address, now))

    def record_slow(self, address: str, now: float) -> None:
        self._guard(lambda: self._ledger.record_slow(address, now))

    def flush(self) -> None:
        self._guard(self._ledger.flush)


class Node:
    """An open node. Build it with :func:`open_node`; close it (or leave the ``with``)."""

    def __init__(
        self,
        data_dir: Path,
        config: Config,
        *,
        passphrase: Callable[[], str] | str | None = None,
        durable: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.config = config
        self._passphrase = passphrase
        self._identity: Identity | None = None
        self._stack = contextlib.ExitStack()
        self.started = time.time()
        self.metrics = Metrics()
        self.transfers = TransferTable(
            on_change=getattr(self.metrics, "set_active_transfers", None)
        )
        net = config.network
        self.shaper = Shaper(download=net.limit_rate, upload=net.limit_rate)
        #: bottleneck verdicts and the knobs of the next fetch (docs/tuning.md)
        self.tuner = Tuner.from_config(config)
        self.listen: str | None = None
        self.api_url: str | None = None
        self.chain_snapshot: dict[str, Any] | None = None
        self._chain_client: Any = None
        self._chain_lock = threading.Lock()  # one hosting operation at a time
        #: peers learned by peer exchange (newest last); discovery offers them for later roots
        self.learned_peers: deque[str] = deque(maxlen=200)
        #: at most ``[network] max_transfers`` fetches at once; the rest queue (state "queued")
        self._transfer_slots = trio.Semaphore(config.network.max_transfers)
        #: kept provider connections (``keep_connections``: the daemon); None: dial each time
        self.pool: ConnectionPool | None = None
        #: finished fetches whose last receipt answers the pool still awaits
        self._settling: list[tuple[TransferInfo, list[ProviderReport], list[Any]]] = []
        self._local_peers: dict[int, LocalPeer] = {}  #: our Noise identity + Hello, by flags
        self._domain: tuple[tuple[Any, str], ReceiptDomain] | None = None
        try:
            self.store: Store = self._stack.enter_context(
                Store.open(
                    config.store_path(self.data_dir),
                    quota=config.node.cache_quota,
                    durable=durable,
                    memory_cache=config.node.memory_cache,
                    cold_dir=config.cold_path(self.data_dir),
                    hot_limit=config.node.hot_limit,
                    cache_observer=self.metrics,
                    add_cached=config.node.add_cached,
                )
            )
            self._slots: SlotStore | None = None
            self._receipts: ReceiptBox | None = None
            self._ledger: _AdvisoryLedger | None = None
            self._ledger_tried = False
        except BaseException:
            self._stack.close()
            raise

    # -- parts, opened on first use ----------------------------------------------------------

    @property
    def observer(self) -> Metrics:
        """The ``TransferObserver`` the data plane reports to (the metrics)."""
        return self.metrics

    @property
    def identity(self) -> Identity:
        """The keystore identity, unlocked on first use (scrypt: once per node, not per call)."""
        if self._identity is None:
            passphrase = self._passphrase() if callable(self._passphrase) else self._passphrase
            if passphrase is None:
                from node.identity import NoPassphrase

                raise NoPassphrase("this operation signs: the node needs its keystore passphrase")
            self._identity = load_identity(self.data_dir, passphrase)
        return self._identity

    @property
    def address(self) -> str:
        if self._identity is not None:
            return self._identity.address
        return read_address(self.data_dir) or ""

    @property
    def slots(self) -> SlotStore:
        if self._slots is None:
            self._slots = self._stack.enter_context(SlotStore.open(self.data_dir / SLOTS_DIR))
        return self._slots

    @property
    def receipts(self) -> ReceiptBox:
        if self._receipts is None:
            self._receipts = self._stack.enter_context(
                ReceiptBox.open(self.data_dir / RECEIPTS_DIR)
            )
        return self._receipts

    @property
    def peer_ledger(self) -> _AdvisoryLedger | None:
        """The local peer ledger (``None`` if it cannot be opened: a fetch does not need it)."""
        if not self._ledger_tried:
            self._ledger_tried = True
            try:
                db = open_ledger_db(str(self.data_dir / PEERS_DIR))
            except plyvel.Error as exc:
                log.warning("peer ledger unavailable", error=str(exc))
            else:
                self._stack.callback(db.close)
                ledger = LocalLedger(db)
                self._ledger = _AdvisoryLedger(ledger)
                self._stack.callback(self._ledger.flush)  # (before db.close: LIFO)
        return self._ledger

    def close(self) -> None:
        self._stack.close()

    def keep_connections(self, nursery: trio.Nursery, **options: Any) -> ConnectionPool:
        """Keep provider connections open between fetches (``node.transfer._pool``), their
        idle readers running in ``nursery``; and answer a fetch without waiting for its last
        ``ReceiptAck`` (taken later: ``receipt_acked`` is ``"pending"`` in the result, the
        transfer's ``receipts`` state in ``status`` follows). For a long-running process (the
        daemon); a one-shot process leaves it off (it would exit before the answers came)."""
        if self.pool is None:
            self.pool = ConnectionPool(nursery, on_answer=self._receipts_answered, **options)
        return self.pool

    def _receipts_answered(self) -> None:
        """The pool took a late receipt answer (or gave up waiting): update the states."""
        still = []
        for info, reports, leases in self._settling:
            info.receipts = _receipt_state(reports, leases)
            if info.receipts == "pending":
                still.append((info, reports, leases))
        self._settling = still

    def _receipt_domain(self) -> ReceiptDomain:
        """The EIP-712 domain our receipts are signed in (from ``[chain]``; built again only
        when its chain id or contracts change)."""
        chain = self.config.chain
        key = (getattr(chain, "chain_id", None), repr(getattr(chain, "contracts", None)))
        if self._domain is None or self._domain[0] != key:
            self._domain = (key, default_receipt_domain(chain))
        return self._domain[1]

    def _local_peer(self, flags: int) -> LocalPeer:
        """Our transport identity with these Hello flags (signing it costs ~0.3 ms: once)."""
        me = self._local_peers.get(flags)
        if me is None:
            me = LocalPeer.from_identity(self.identity, Capabilities(flags=flags))
            self._local_peers[flags] = me
        return me

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- content -------------------------------------------------------------------------------

    def add(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        *,
        name: str | None = None,
        media_type: str | None = None,
        chunk_size: int | None = None,
        pin: bool = True,
        progress: Callable[[int], None] | None = None,
        encrypt: ContentKey | None = None,
        link: bool = False,
    ) -> dict[str, Any]:
        """Add a file (path) or a binary stream; returns the manifest as JSON (``root``...).

        ``encrypt``: store only its sealed stream under this key (docs/encryption.md).
        ``link``: link to the file's chunks instead of copying them (docs/store.md)."""
        if encrypt is not None and link:
            raise InvalidArgument("--link stores no copy: it cannot be combined with --encrypt")
        if encrypt is not None:
            from ._sealed import add_sealed

            return add_sealed(
                self, source, encrypt, name=name, media_type=media_type,
                chunk_size=chunk_size, pin=pin, progress=progress,
            )  # fmt: skip
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.is_dir():
                raise IsADirectoryError(21, "is a directory", str(path))
            name = name if name is not None else path.name
            src: Any = path
        else:
            src = source
        kwargs: dict[str, Any] = {}
        if media_type is not None:
            kwargs["media_type"] = media_type
        manifest = self.store.add_file(
            src,
            name=name or "",
            chunk_size=chunk_size or self.config.node.chunk_size,
            pin=pin,
            progress_cb=progress,
            link=link,
            **kwargs,
        )
        return manifest_json(manifest, pinned=self.store.info(manifest.root).pinned)

    def ls(self) -> dict[str, Any]:
        items = [info.to_dict() for info in self.store.list_content()]
        return {"content": items, "stats": self.store.stats().to_dict()}

    def iter_content(self, root: bytes, key: ContentKey | None = None) -> Iterator[bytes]:
        """Verified bytes of ``root`` (raises before the first byte if it is not here);
        with ``key``, its decrypted and verified plaintext."""
        if key is not None:
            from ._sealed import iter_opened

            return iter_opened(self, root, key)
        return self.store.iter_verified(root)

    def export(
        self, root: bytes, path: str | os.PathLike[str], key: ContentKey | None = None
    ) -> dict[str, Any]:
        if key is not None:
            from ._sealed import export_opened

            return export_opened(self, root, key, path)
        chunks = self.store.iter_verified(root)  # raises before anything is written
        try:
            size = write_output(path, chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return {"root": root_hex(root), "path": str(path), "size": size}

    def verify(self, root: bytes) -> dict[str, Any]:
        """The verification report (``ok`` false: see ``bad``/``quarantined``/``roots_ok``)."""
        return dict(self.store.verify(root).to_dict())

    def pin(self, root: bytes) -> dict[str, Any]:
        self.store.pin(root)
        return {"root": root_hex(root), "pinned": True}

    def unpin(self, root: bytes) -> dict[str, Any]:
        self.store.unpin(root)
        return {"root": root_hex(root), "pinned": False}

    def hosted_slots(self, root: bytes) -> list[int]:
        """Slots of ``root`` in the slot store (``bcai host commit`` builds them)."""
        if self._slots is None and not (self.data_dir / SLOTS_DIR).exists():
            return []
        return sorted(slot for r, slot in self.slots.slots() if r == root)

    def rm(self, root: bytes, *, force: bool = False) -> dict[str, Any]:
        """Unpin and remove content (a crash-safe store job). Hosted content needs ``force``."""
        self.store.info(root)  # NotFound before looking at slots
        hosted = self.hosted_slots(root)
        if hosted and not force:
            slots = ", ".join(str(s) for s in hosted)
            raise NodeError(
                Failure(
                    ExitStatus.USAGE,
                    f"{root_hex(root)} is hosted (`bcai host commit`, slot {slots}); "
                    "`bcai host exit` first, or pass --force",
                    details={"slots": hosted},
                )
            )
        report = self.store.remove(root)
        return {
            "root": root_hex(root),
            "removed": True,
            "bytes_freed": report.bytes_freed,
            "hosted_slots": hosted,
            "used_bytes": self.store.used_bytes,
        }

    def gc(self, *, unpinned: bool = False) -> dict[str, Any]:
        removed: list[str] = []
        freed = 0
        if unpinned:
            for info in list(self.store.list_content()):
                if not info.pinned:
                    freed += self.store.remove(info.root).bytes_freed
                    removed.append(root_hex(info.root))
        ev = self.store.evict_to_quota()
        removed += [root_hex(r) for r in ev.evicted]
        freed += ev.bytes_freed
        sweep = self.store.gc()
        return {
            "removed": removed,
            "bytes_freed": freed + sweep.bytes_freed,
            "orphan_files_removed": sweep.files_removed,
            "used_bytes": self.store.used_bytes,
        }

    # -- fetch ---------------------------------------------------------------------------------

    def local_copy(self, root: bytes, output: Path | None) -> dict[str, Any] | None:
        """Serve a get from the store when it holds ``root`` complete and verified.

        Otherwise prepare the repair and return None: every damaged chunk (quarantined by our
        provider, or failing verification now) is marked missing, so the fetch that follows
        is the normal resume path and asks the peers for exactly those chunks.
        """
        store = self.store
        if not store.has_content(root, partial=True):
            return None
        if not store.has_content(root) or store.quarantined(root):
            repaired = store.repair(root, check=False)  # quarantined chunks only: no full pass
            if repaired:
                log.warning("re-fetching damaged chunks", root=root_hex(root), chunks=repaired)
            return None
        if output is not None:
            try:
                store.export(root, output)  # verifies every chunk; atomic
            except CorruptStoredChunk:
                repaired = store.repair(root)
                log.warning("re-fetching damaged chunks", root=root_hex(root), chunks=repaired)
                return None
        else:
            repaired = store.repair(root)  # a full verify pass
            if repaired:
                log.warning("re-fetching damaged chunks", root=root_hex(root), chunks=repaired)
                return None
        m = store.get_manifest(root)
        return {
            "root": root_hex(root),
            "size": m.size,
            "chunks": m.chunk_count,
            "fetched_chunks": 0,
            "fetched_bytes": 0,
            "wire_bytes": 0,
            "local_bytes": 0,
            "resumed_chunks": m.chunk_count,
            "duplicate_chunks": 0,
            "local": True,
            "output": str(output) if output else None,
            "providers": [],
        }

    def resolve_peers(self, root: bytes, peers: Iterable[str | PeerAddr]) -> list[PeerAddr]:
        """The peers to ask for ``root``: those given, else the chain's hosts of ``root`` and
        the configured bootstrap peers (``node.app._discovery``)."""
        given = [p if isinstance(p, PeerAddr) else PeerAddr.parse(p) for p in peers]
        if given:
            return given
        from . import _discovery

        found = _discovery.discover(self, root)
        if not found:
            raise InvalidArgument(
                "no peer to ask: give --peer HOST:PORT/0xADDRESS, set [network] bootstrap, or "
                "configure a chain whose hosts announce their endpoints"
            )
        return found

    async def fetch(
        self,
        root: bytes,
        peers: Iterable[str | PeerAddr] = (),
        *,
        output: str | os.PathLike[str] | None = None,
        priority: str = "normal",
        progress: Callable[[Progress], None] | None = None,
        limit_rate: int | None = None,
        window: int = 16,
        receipts: bool = True,
        link: bool = False,
    ) -> dict[str, Any]:
        """Fetch ``root`` into the store (and ``output``); resumable; returns the summary.
        ``link`` (with ``output``): the store refers to ``output`` instead of keeping its own
        copy of each chunk (``node.store._links``).

        Already complete and verified here: no peer is contacted (``"local": true``).
        ``priority`` (critical/high/normal/bulk) weighs this transfer's share of the node's
        download cap against the others'. ``window`` left at 16 (the default) lets the tuner
        choose the initial window (``[tuning]``, docs/tuning.md); any other value is used as is.
        """
        if priority not in PRIORITIES:
            raise InvalidArgument(f"priority must be one of {', '.join(PRIORITIES)}")
        out_path = Path(output) if output is not None else None
        if out_path is not None:  # a directory or a missing parent: fail before network work
            target = output_target(out_path)
            if not target.in_place and not target.path.parent.is_dir():
                raise FileNotFoundError(2, "no such directory", str(target.path.parent))
        started = time.time()
        # Content not here at all (the usual get) is known from one index read: no thread.
        if self.store.has_content(root, partial=True):
            local = await trio.to_thread.run_sync(self.local_copy, root, out_path)
            if local is not None:
                return local
        given = list(peers)
        if given:  # parsing only
            addrs = self.resolve_peers(root, given)
        else:
            addrs = await trio.to_thread.run_sync(self.resolve_peers, root, given)  # chain reads
        identity = self.identity
        domain = self._receipt_domain() if receipts else None
        box = self.receipts
        info = self.transfers.start(root, "in", priority, [str(a) for a in addrs])
        if self._transfer_slots.value == 0:
            info.state = "queued"

        def on_progress(p: Progress) -> None:
            info.done_bytes, info.total_bytes, info.rate = p.done_bytes, p.total_bytes, p.speed
            if progress is not None:
                progress(p)

        def on_verdict(verdict: Any) -> None:
            info.bottleneck = verdict.to_json()

        # The node's shaper paces this transfer (its priority's share of the download cap, and
        # ``limit_rate`` as a per-transfer cap); the tuner picks the next fetch's knobs.
        lane_cm: Any = self.shaper.lane("download", priority=priority, rate=limit_rate)
        kwargs: dict[str, Any] = {
            "observer": self.observer,
            "compress": self.config.network.compress,
            **self.tuner.fetch_kwargs(lambda name: _accepts(fetch, name)),
        }
        window = self.tuner.window_for(window)
        if self.config.network.swarm:
            kwargs["swarm"] = self._swarm_options()
        flags = int(CapFlag.BULK) | (int(CapFlag.RECEIPTS) if domain is not None else 0)
        if "swarm" in kwargs:
            flags |= int(CapFlag.SWARM)
        if kwargs["compress"]:
            flags |= int(CapFlag.COMPRESS)
        kwargs["local_peer"] = self._local_peer(flags)
        pool = self.pool
        leases: list[Any] = []
        fresh = [False]
        if pool is not None:

            async def dial(addr: PeerAddr, me: LocalPeer) -> Any:
                conn = await pool.dial(addr, me, fresh=fresh[0])
                leases.append(conn)
                return conn

            kwargs["dial"] = dial
            kwargs["wait_receipts"] = False

        async def run() -> FetchResult:
            with lane_cm as lane:
                kwargs["lane"] = lane
                async with watching(
                    self.tuner, info.id, shaper=self.shaper, lane=lane, on_verdict=on_verdict
                ) as watch:
                    kwargs["observer"] = watch.observer(self.observer)
                    return await fetch(
                        self.store,
                        identity,
                        root,
                        addrs,
                        receipt_domain=domain,
                        next_nonce=box.next_nonce,
                        progress=on_progress,
                        initial_window=window,
                        output=out_path,
                        link=link and out_path is not None,
                        ledger=self.peer_ledger,
                        **kwargs,
                    )

        try:
            await self._transfer_slots.acquire()
        except BaseException:
            self.transfers.finish(info, error="cancelled while queued")
            raise
        info.state = "running"
        try:
            try:
                result = await run()
            except BaseException as exc:
                # A damaged chunk already on our disk (found when the output is written): mark
                # it missing and fetch once more, which asks the peers for just that chunk.
                # A kept connection the provider closed as we took it: once more, on new ones
                # (the fetch resumes what it verified).
                from ._errors import leaf

                if _stale_pooled(leaf(exc), leases):
                    log.info("kept connection failed: fetching again on new connections")
                    fresh[0] = True
                    result = await run()
                elif not isinstance(leaf(exc), CorruptStoredChunk) or not self.store.repair(root):
                    raise
                else:
                    result = await run()
        except BaseException as exc:
            from ._errors import leaf

            self.transfers.finish(info, error=str(leaf(exc)) or type(leaf(exc)).__name__)
            raise
        finally:
            self._transfer_slots.release()
        self.transfers.finish(info)
        info.done_bytes = info.total_bytes = result.manifest.size
        reports = list(result.providers.values())
        info.receipts = _receipt_state(reports, leases)
        if info.receipts == "pending":
            self._settling.append((info, reports, leases))
        return fetch_summary(result, output=out_path, wall=time.time() - started, leases=leases)

    def _swarm_options(self) -> Any:
        """How this node's fetches join a swarm (node.transfer._swarm): announce the port it
        serves on (0 when no daemon serves), and keep the peers learned by peer exchange in
        ``learned_peers`` (discovery asks them for the next root too)."""
        from node.transfer import SwarmOptions

        public = self.config.network.public_endpoint or self.listen or ""
        port = public.rpartition(":")[2]
        learned = self.learned_peers
        return SwarmOptions(
            listen_port=int(port) if port.isdigit() and self.listen else 0,
            max_peers=self.config.network.swarm_peers,
            on_learned=lambda addr: learned.append(str(addr)),
        )

    # -- chain: publishing and hosting ---------------------------------------------------------

    def chain_client(self) -> Any:
        """A ``chain.ChainClient`` on the configured chain, signing as this node (built once).

        Raises ``chain.ChainUsageError`` for ``rpc = "embedded"`` (a chain that would vanish
        with this process) or a deployment recorded for another chain.
        """
        if self._chain_client is None:
            from chain.backend import RpcChain
            from chain.client import ChainClient
            from chain.config import load_deployment, read_chain_config
            from chain.errors import ChainUsageError

            rpc = (read_chain_config(self.data_dir) or {}).get("rpc", "embedded")
            if not rpc or rpc == "embedded":
                raise ChainUsageError(
                    'the configured chain is rpc = "embedded", a throwaway chain inside one '
                    "process: start one that outlives it (`bcai chain up --anvil`)"
                )
            deployment, _ = load_deployment(self.data_dir)
            backend = RpcChain(str(rpc))
            self._stack.callback(backend.close)
            if deployment.chain_id != backend.chain_id:
                raise ChainUsageError(
                    f"config deployment is for chain {deployment.chain_id}, "
                    f"the node is {backend.chain_id}"
                )
            self._chain_client = ChainClient(backend, deployment, self.identity.account)
        return self._chain_client

    def publish(
        self,
        root: bytes,
        *,
        data_shards: int = 4,
        slots: int = 8,
        metadata_uri: str = "",
        client: Any = None,
    ) -> dict[str, Any]:
        """Register stored content (size proof + slot layout); see ``node.app._hosting``."""
        from . import _hosting

        with self._chain_lock:
            return _hosting.publish(
                self,
                client or self.chain_client(),
                root,
                data_shards=data_shards,
                slots=slots,
                metadata_uri=metadata_uri,
            )

    def host_commit(
        self, root: bytes, *, slot: int, stake: int, client: Any = None
    ) -> dict[str, Any]:
        """Build and check slot ``slot`` of ``root``, pin it, stake, announce the endpoint."""
        from . import _hosting

        with self._chain_lock:
            return _hosting.host_commit(
                self, client or self.chain_client(), root, slot=slot, stake=stake
            )

    # -- status --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What the node is doing (the API's ``GET /api/v1/status``; docs/operations.md)."""
        stats = self.store.stats().to_dict()
        count = sum(1 for _ in self.store.list_content())
        snap = dict(self.metrics.snapshot())
        peers = list(snap.get("peers", []))
        limits = dict(self.shaper.limits())
        receipts: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            receipts = dict(self.receipts.counts())
        return {
            "address": self.address,
            "version": _version(),
            "pid": os.getpid(),
            "data_dir": str(self.data_dir),
            "uptime": round(time.time() - self.started, 3),
            "listen": self.listen,
            "api": self.api_url,
            "metrics": f"{self.api_url}/metrics" if self.api_url else None,
            "transfers": [t.to_json() for t in self.transfers.all()],
            "peers": peers,
            "rates": {k: v for k, v in snap.items() if k != "peers"},
            "contents": {"count": count, "bytes": stats.get("used_bytes", 0)},
            "receipts": receipts,
            "chain": self.chain_snapshot,
            "limits": limits,
            "tuning": self.tuner.status(),
            "connection_pool": (
                {**self.pool.stats.to_json(), "idle": self.pool.idle_count()} if self.pool else None
            ),
        }


@functools.cache
def _accepts(fn: Callable[..., Any], name: str) -> bool:
    import inspect

    return name in inspect.signature(fn).parameters


def manifest_json(m: Manifest, *, pinned: bool) -> dict[str, Any]:
    d = m.to_dict()
    d["chunks"] = m.chunk_count
    d["pinned"] = pinned
    return d


def _unanswered(rep: ProviderReport) -> int:
    return len(rep.receipts) - rep.receipts_acked - len(rep.receipts_refused)


def _receipt_acked(rep: ProviderReport, leases: Sequence[Any]) -> bool | str:
    """``receipt_acked`` of one provider: True/False, or ``"pending"`` while the pool still
    takes the answers to receipts sent on its kept connection (``Node.keep_connections``)."""
    if _unanswered(rep) and any(
        c.address == rep.address and getattr(c, "pending", 0) for c in leases
    ):
        return "pending"
    return rep.receipt_acked


def _receipt_state(reports: Sequence[ProviderReport], leases: Sequence[Any]) -> str | None:
    """One transfer's receipt answers (``TransferInfo.receipts``)."""
    sent = [r for r in reports if r.receipts]
    if not sent:
        return None
    if any(r.receipts_refused for r in sent):
        return "refused"
    states = [_receipt_acked(r, leases) for r in sent]
    if "pending" in states:
        return "pending"
    return "acked" if all(s is True for s in states) else "unacked"


def _stale_pooled(exc: BaseException, leases: Sequence[Any]) -> bool:
    """The fetch failed for want of a peer (transient) and ran on a kept connection."""
    from node.transfer import PeerFailed

    return (
        isinstance(exc, PeerFailed)
        and bool(getattr(exc, "retryable", False))
        and any(getattr(c, "reused", False) for c in leases)
    )


def fetch_summary(
    result: FetchResult,
    *,
    output: Path | None,
    wall: float,
    leases: Sequence[Any] = (),
) -> dict[str, Any]:
    providers = [
        {
            "address": rep.address,
            "endpoint": rep.endpoint,
            "chunks": rep.chunks,
            "bytes": rep.bytes,
            "corrupt_chunks": rep.corrupt_chunks,
            "receipt_nonce": rep.receipt.receipt.nonce if rep.receipt else None,
            "receipt_acked": _receipt_acked(rep, leases),
            "error": rep.error,
        }
        for rep in result.providers.values()
    ]
    m = result.manifest
    return {
        "root": root_hex(result.root),
        "size": m.size,
        "chunks": m.chunk_count,
        "fetched_chunks": result.fetched_chunks,
        "fetched_bytes": result.fetched_bytes,
        # chunk payload bytes received on the wire (after compression), and bytes taken from
        # content already held here (delta): docs/transfer.md
        "wire_bytes": getattr(result, "wire_bytes", result.fetched_bytes),
        "local_chunks": getattr(result, "local_chunks", 0),
        "local_bytes": getattr(result, "local_bytes", 0),
        "resumed_chunks": result.resumed_chunks,
        "duplicate_chunks": result.duplicate_chunks,
        "elapsed": round(result.elapsed, 3),
        "wall": round(wall, 3),
        "throughput": round(result.throughput),
        "output": str(output) if output else None,
        "providers": providers,
    }


def load_node_config(data_dir: Path) -> Config:
    if not (Path(data_dir) / CONFIG_FILE).exists():
        raise NotInitialised(f"{data_dir} is not a bcai data directory; run `bcai init`")
    return load_config(Path(data_dir))


def open_node(
    data_dir: str | os.PathLike[str],
    *,
    passphrase: Callable[[], str] | str | None = None,
    config: Config | None = None,
    durable: bool = True,
) -> Node:
    """Open the node in ``data_dir`` (created by ``bcai init``); use it as a context manager.

    ``passphrase`` (a string or a function returning one) unlocks the keystore the first time
    the node signs; ``config`` overrides ``<data dir>/config.toml``. Raises ``StoreLocked``
    when another process (a running ``bcai serve``) holds the store: talk to that node through
    its API instead (``node.app.connect``).
    """
    tune_malloc()  # buffers reused from the heap, not mmap'd per chunk (node._memory)
    path = Path(data_dir).expanduser()
    config = config or load_node_config(path)
    set_congestion(config.network.congestion)  # the process's peer sockets (node.transport._tcp)
    return Node(path, config, passphrase=passphrase, durable=durable)


__all__ = ["Node", "TransferInfo", "TransferTable", "open_node"]
