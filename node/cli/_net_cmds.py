"""Network commands: ``serve`` (provide the store to peers), ``get`` (fetch), ``status``.

Exit codes: NOT_FOUND when no peer has the content; VERIFY_FAILED when a peer sent data that
failed verification (nothing of it was written) or a chunk-root list/manifest that does not
match the root; PEER_ERROR when peers failed or went away (re-run the same command to resume);
INTERRUPTED on Ctrl-C (state is saved: re-run to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import plyvel
import trio

from node._fs import STDOUT, output_target
from node.content import parse_root, root_hex
from node.identity import Identity, load_identity, resolve_passphrase
from node.ledger import LocalLedger
from node.log import get_logger
from node.store import CorruptStoredChunk, SlotStore, Store, StoreLocked
from node.transfer import (
    ChunkRootsMismatch,
    ContentNotFound,
    CorruptChunk,
    FetchResult,
    InvalidArgument,
    ManifestMismatch,
    PeerAddr,
    Progress,
    ReceiptBox,
    RemoteTransferError,
    TransferError,
    default_receipt_domain,
    fetch,
    parse_rate,
    serve_node,
)
from node.transport import AdmissionLimits

from ._main import Context, ExitStatus
from ._store_cmds import Handler, _config, _leaf, write_stdout
from ._store_cmds import _guard as _store_guard

log = get_logger("bcai.net")

RECEIPTS_DIR = "receipts"
PEERS_DIR = "peers"  #: LevelDB of the local peer ledger
SLOTS_DIR = "slots"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add serve, get and status to the ``bcai`` parser."""
    p = sub.add_parser("serve", help="serve the store to peers until Ctrl-C / SIGTERM")
    p.add_argument("--listen", help="HOST:PORT to listen on (default: [network] listen)")
    p.add_argument("--passphrase-file", type=Path, help="keystore passphrase file")
    p.add_argument("--workers", type=int, default=4, help="concurrent chunk reads (default 4)")
    p.add_argument(
        "--rpc", help="JSON-RPC URL for chain duties (default: [chain] rpc of config.toml)"
    )
    p.add_argument(
        "--chain-interval",
        type=float,
        default=5.0,
        help="seconds between chain duty rounds: receipt batches, challenge answers (default 5)",
    )
    p.add_argument("--no-chain", action="store_true", help="serve only; no chain duties")
    p.add_argument(
        "--validator",
        action="store_true",
        help="also run the validator's round: challenge due commitments (bond paid), slash "
        "expired challenges (default: [validator] enabled in config.toml)",
    )
    p.set_defaults(handler=_guard(cmd_serve))

    p = sub.add_parser("get", help="fetch content from peers (resumable), verify, write a file")
    p.add_argument("root", help="content root (0x...)")
    p.add_argument(
        "--peer",
        action="append",
        required=True,
        metavar="HOST:PORT[/0xADDRESS]",
        help="a peer to fetch from (repeat for several; pin its address after /)",
    )
    p.add_argument(
        "-o",
        "--output",
        help="write the content to this file (replaced atomically at the end; a device or "
        "FIFO is written in place; a symlink is followed), or - for standard output",
    )
    p.add_argument("--limit-rate", help="cap the download rate, e.g. 500K, 50M, 1G (bytes/s)")
    p.add_argument("--window", type=int, default=16, help="initial requests in flight per peer")
    p.add_argument("--no-receipts", action="store_true", help="do not sign transfer receipts")
    p.add_argument(
        "--no-fsync",
        action="store_true",
        help="skip per-chunk fsync of chunk files (resume still survives a killed process, "
        "not a power cut; scp and curl never fsync either)",
    )
    p.add_argument("--passphrase-file", type=Path, help="keystore passphrase file")
    p.set_defaults(handler=_guard(cmd_get))

    p = sub.add_parser("status", help="local node status: contents, partial transfers, receipts")
    p.set_defaults(handler=_guard(cmd_status))


def _guard(handler: Handler) -> Handler:
    """Transfer errors -> exit codes; store/identity/config errors as the store commands do."""
    return _store_guard(handler, classify=_classify_transfer)


def _classify_transfer(ctx: Context, exc: BaseException) -> ExitStatus | None:
    """Exit code and one line for an error of the transfer engine; None: not one of those.

    ``retryable`` comes from the error itself: only where re-running can succeed (a peer went
    away, timed out) does the message say to re-run.
    """
    if isinstance(exc, InvalidArgument):
        return ctx.fail(ExitStatus.USAGE, str(exc))
    if isinstance(exc, ContentNotFound):
        return ctx.fail(ExitStatus.NOT_FOUND, str(exc), retryable=exc.retryable)
    if isinstance(exc, CorruptChunk):
        return ctx.fail(
            ExitStatus.VERIFY_FAILED,
            f"{exc}; nothing of it was written; the peer was dropped",
            bad_chunks=[exc.index],
            peer=str(exc.peer),
        )
    if isinstance(exc, (ChunkRootsMismatch, ManifestMismatch)):
        return ctx.fail(ExitStatus.VERIFY_FAILED, str(exc))
    if isinstance(exc, RemoteTransferError):
        hint = "; re-run the same command to resume" if exc.retryable else ""
        return ctx.fail(ExitStatus.PEER_ERROR, f"{exc}{hint}", retryable=exc.retryable)
    if isinstance(exc, trio.TooSlowError):
        return ctx.fail(
            ExitStatus.PEER_ERROR,
            "a peer stopped answering (timed out); re-run the same command to resume",
            retryable=True,
        )
    if isinstance(exc, TransferError):
        return ctx.fail(ExitStatus.ERROR, str(exc), retryable=exc.retryable)
    return None


def _identity(ctx: Context, args: argparse.Namespace) -> Identity:
    passphrase = resolve_passphrase(ctx.env, args.passphrase_file, stdin=ctx.stdin)
    try:
        return load_identity(ctx.data_dir, passphrase)
    finally:
        del passphrase


def _parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidArgument(f"bad --listen {text!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


@contextlib.contextmanager
def _receipt_box(ctx: Context) -> Iterator[ReceiptBox]:
    box = ReceiptBox.open(ctx.data_dir / RECEIPTS_DIR)
    try:
        yield box
    finally:
        box.close()


class _AdvisoryLedger:
    """The local peer ledger as the fetch sees it: advice, never a reason to fail. A write
    error (a full disk) is logged once and the ledger goes quiet for the rest of the run."""

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


@contextlib.contextmanager
def _peer_ledger(ctx: Context) -> Iterator[_AdvisoryLedger | None]:
    """The node's local peer ledger (LevelDB ``<data dir>/peers``): bad chunks, lies and timeouts
    per peer address, consulted by the next fetch to order its peers. ``None`` (no ledger) if it
    cannot be opened: a fetch does not need it."""
    from node.ledger import open_ledger_db

    try:
        db = open_ledger_db(str(ctx.data_dir / PEERS_DIR))
    except plyvel.Error as exc:
        log.warning("peer ledger unavailable", error=str(exc))
        yield None
        return
    try:
        yield _AdvisoryLedger(LocalLedger(db))
    finally:
        db.close()


# -- serve ------------------------------------------------------------------------------------


def cmd_serve(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Serve the store until Ctrl-C or SIGTERM.

    Receipts from receivers go to the ReceiptBox; with a JSON-RPC chain configured (``[chain]
    rpc`` or ``--rpc``) the node's chain duties run alongside: receipts are submitted in batches
    and data-availability challenges answered from the store, unattended. Both queues are in
    LevelDB, so a chain outage or a restart delays that work and loses none of it. Challenges
    are answered from the slot store (``<data dir>/slots``, filled by ``bcai host commit``).
    With ``--validator`` (or ``[validator] enabled = true``) the node also challenges due
    commitments and slashes expired challenges.
    """
    from node.service import StatusFile, open_chain_duties, validator_enabled

    cfg = _config(ctx)
    listen = _parse_listen(args.listen or cfg.network.listen)
    identity = _identity(ctx, args)
    domain = default_receipt_domain(cfg.chain)
    status_file = StatusFile(ctx.data_dir)
    with (
        Store.open(cfg.store_path(ctx.data_dir), quota=cfg.node.cache_quota) as store,
        SlotStore.open(ctx.data_dir / SLOTS_DIR) as slots,
        _receipt_box(ctx) as box,
        (
            contextlib.nullcontext(None)
            if args.no_chain
            else open_chain_duties(
                ctx.data_dir,
                identity,
                box,
                slots=slots,
                rpc=args.rpc,
                interval=args.chain_interval,
                validator=args.validator or validator_enabled(cfg.extra),
            )
        ) as duties,
    ):
        node_status: dict[str, Any] = {"address": identity.address, "chain": None}

        def on_round(snapshot: dict[str, Any]) -> None:
            node_status["chain"] = snapshot
            status_file.write(node_status)

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                host, port = await nursery.start(
                    lambda task_status: serve_node(
                        store,
                        identity,
                        listen=listen,
                        receipt_box=box,
                        receipt_domain=domain,
                        workers=args.workers,
                        limits=AdmissionLimits.from_config(cfg.network),
                        task_status=task_status,
                    )
                )
                node_status["listen"] = f"{host}:{port}"
                status_file.write(node_status)
                if duties is not None:
                    await nursery.start(
                        lambda task_status: duties.run(on_round=on_round, task_status=task_status)
                    )
                ctx.emit(
                    {
                        "listen": f"{host}:{port}",
                        "address": identity.address,
                        "pid": _pid(),
                        "chain_duties": duties is not None,
                    },
                    f"listening on {host}:{port}\naddress {identity.address}\n"
                    f"peer string {host}:{port}/{identity.address}\n"
                    f"chain duties {'on' if duties is not None else 'off'}",
                )
                log.info("serving", listen=f"{host}:{port}", address=identity.address)
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        log.info("shutting down", signal=signal.Signals(signum).name)
                        break
                nursery.cancel_scope.cancel()

        try:
            trio.run(main)
        finally:
            status_file.clear()
    log.info("stopped")
    return ExitStatus.OK


def _pid() -> int:
    return os.getpid()


# -- get --------------------------------------------------------------------------------------


class _Bar:
    """rich progress on a terminal (size, speed, ETA), nothing otherwise."""

    def __init__(self, ctx: Context, root: bytes) -> None:
        self.progress: Any = None
        self.task: Any = None
        if ctx.json or not _isatty(ctx.stderr):
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold blue]{task.description}"),
            BarColumn(),
            "[progress.percentage]{task.percentage:>3.1f}%",
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=ctx.stderr),
        )
        self.task = self.progress.add_task(root_hex(root)[:12] + "…", total=None)

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, p: Progress) -> None:
        if self.progress is not None:
            self.progress.update(self.task, total=p.total_bytes, completed=p.done_bytes)


def _isatty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def cmd_get(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Fetch ROOT from the peers into the store (and -o FILE); resumable after any stop."""
    cfg = _config(ctx)
    root = parse_root(args.root)
    peers = [PeerAddr.parse(p) for p in args.peer]
    try:
        limit = parse_rate(args.limit_rate) if args.limit_rate else cfg.network.limit_rate
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    to_stdout = args.output == STDOUT
    output = None if args.output is None or to_stdout else Path(args.output)
    if output is not None:  # a directory or a missing parent: fail before any network work
        target = output_target(output)
        if not target.in_place and not target.path.parent.is_dir():
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(target.path.parent))
    started = time.time()
    if _get_local(ctx, args, root, output, to_stdout):
        return ExitStatus.OK
    identity = _identity(ctx, args)
    domain = None if args.no_receipts else default_receipt_domain(cfg.chain)
    with (
        Store.open(
            cfg.store_path(ctx.data_dir), quota=cfg.node.cache_quota, durable=not args.no_fsync
        ) as store,
        _receipt_box(ctx) as box,
        _peer_ledger(ctx) as ledger,
        _Bar(ctx, root) as bar,
    ):

        async def main() -> FetchResult:
            return await fetch(
                store,
                identity,
                root,
                peers,
                receipt_domain=domain,
                next_nonce=box.next_nonce,
                progress=bar.update,
                limit_rate=limit,
                initial_window=args.window,
                output=output,
                ledger=ledger,
            )

        try:
            result = trio.run(main)
        except BaseException as exc:
            # A damaged chunk already on our disk (found when the output is written): mark it
            # missing and fetch once more, which asks the peers for just that chunk.
            if not isinstance(_leaf(exc), CorruptStoredChunk) or not store.repair(root):
                raise
            result = trio.run(main)
        if to_stdout:
            write_stdout(ctx, store.iter_verified(root))
    wall = time.time() - started
    providers = [
        {
            "address": rep.address,
            "endpoint": rep.endpoint,
            "chunks": rep.chunks,
            "bytes": rep.bytes,
            "corrupt_chunks": rep.corrupt_chunks,
            "receipt_nonce": rep.receipt.receipt.nonce if rep.receipt else None,
            "receipt_acked": rep.receipt_acked,
            "error": rep.error,
        }
        for rep in result.providers.values()
    ]
    m = result.manifest
    out = {
        "root": root_hex(root),
        "size": m.size,
        "chunks": m.chunk_count,
        "fetched_chunks": result.fetched_chunks,
        "fetched_bytes": result.fetched_bytes,
        "resumed_chunks": result.resumed_chunks,
        "duplicate_chunks": result.duplicate_chunks,
        "elapsed": round(result.elapsed, 3),
        "wall": round(wall, 3),
        "throughput": round(result.throughput),
        "output": str(args.output) if args.output else None,
        "providers": providers,
    }
    mbps = result.throughput / 1e6
    if to_stdout:  # standard output carries the content: the summary goes to stderr
        ctx = dataclasses.replace(ctx, stdout=ctx.stderr)
        out["output"] = "-"
    ctx.emit(
        out,
        f"got {root_hex(root)} ({m.size} bytes, {m.chunk_count} chunks; "
        f"{result.fetched_chunks} fetched, {result.resumed_chunks} already here) "
        f"in {result.elapsed:.2f}s, {mbps:.1f} MB/s"
        + (f"\nwrote {args.output}" if args.output else ""),
    )
    return ExitStatus.OK


def _get_local(
    ctx: Context, args: argparse.Namespace, root: bytes, output: Path | None, to_stdout: bool
) -> bool:
    """Serve ``get`` from the store when it holds ROOT complete and verified; no peer needed.

    Otherwise prepare the repair and return False: every damaged chunk (quarantined by our
    provider, or failing verification now) is marked missing, so the fetch that follows is the
    normal resume path and asks the peers for exactly those chunks.
    """
    cfg = _config(ctx)
    with Store.open(
        cfg.store_path(ctx.data_dir), quota=cfg.node.cache_quota, durable=not args.no_fsync
    ) as store:
        if not store.has_content(root, partial=True):
            return False
        if not store.has_content(root) or store.quarantined(root):
            repaired = store.repair(root, check=False)  # quarantined chunks only: no full pass
            if repaired:
                log.warning("re-fetching damaged chunks", root=root_hex(root), chunks=repaired)
            return False
        if output is not None:
            try:
                store.export(root, output)  # verifies every chunk; atomic
            except CorruptStoredChunk:
                repaired = store.repair(root)
                log.warning("re-fetching damaged chunks", root=root_hex(root), chunks=repaired)
                return False
        else:
            repaired = store.repair(root)  # a full verify pass
            if repaired:
                log.warning("re-fetching damaged chunks", root=root_hex(root), chunks=repaired)
                return False
            if to_stdout:
                write_stdout(ctx, store.iter_verified(root))
        m = store.get_manifest(root)
    out = {
        "root": root_hex(root),
        "size": m.size,
        "chunks": m.chunk_count,
        "fetched_chunks": 0,
        "fetched_bytes": 0,
        "resumed_chunks": m.chunk_count,
        "duplicate_chunks": 0,
        "local": True,
        "output": str(args.output) if args.output else None,
        "providers": [],
    }
    if to_stdout:  # standard output carries the content: the summary goes to stderr
        ctx = dataclasses.replace(ctx, stdout=ctx.stderr)
        out["output"] = "-"
    ctx.emit(
        out,
        f"{root_hex(root)} is already complete and verified in the local store "
        f"({m.size} bytes, {m.chunk_count} chunks); no peer contacted"
        + (f"\nwrote {args.output}" if args.output else ""),
    )
    return True


# -- status -----------------------------------------------------------------------------------


def cmd_status(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Contents, partial transfers and pending receipts of the local node."""
    from node.service import StatusFile

    cfg = _config(ctx)
    out: dict[str, Any] = {"data_dir": str(ctx.data_dir)}
    running = StatusFile(ctx.data_dir).read()
    out["node"] = running  # None when no `bcai serve` runs on this data dir
    try:
        with Store.open(cfg.store_path(ctx.data_dir), quota=cfg.node.cache_quota) as store:
            contents: list[dict[str, Any]] = []
            partial: list[dict[str, Any]] = []
            for info in store.list_content():
                m = info.manifest
                item = {
                    "root": root_hex(m.root),
                    "name": m.name,
                    "size": m.size,
                    "chunks": m.chunk_count,
                    "present_chunks": info.present_chunks,
                    "pinned": info.pinned,
                }
                (contents if info.complete else partial).append(item)
            out["contents"] = contents
            out["partial"] = partial
    except StoreLocked:
        out["store"] = "locked: a node (bcai serve/get) is using it"
    try:
        with _receipt_box(ctx) as box:
            out["receipts"] = box.counts()
            out["pending_receipts"] = [
                {
                    "content_root": root_hex(r.receipt.receipt.content_root),
                    "receiver": r.receipt.receipt.receiver,
                    "bytes": r.receipt.receipt.bytes_served,
                    "chunks": r.receipt.receipt.chunks,
                    "nonce": r.receipt.receipt.nonce,
                }
                for r in box.pending_records(100)
            ]
    except Exception as exc:  # plyvel raises IOError for a held lock
        chain = (running or {}).get("chain") or {}
        out["receipts"] = chain.get("receipts") or f"unavailable: {exc}"
    text = [f"data dir {ctx.data_dir}"]
    if running is not None:
        chain = running.get("chain") or {}
        duty = "off"
        if chain:
            duty = f"chain_up={chain.get('chain_up')} answers={chain.get('answers')}"
        text.append(
            f"node running (pid {running.get('pid')}) on {running.get('listen')}; "
            f"chain duties {duty}"
        )
    for item in out.get("contents", []):
        text.append(f"  {item['root']}  {item['size']:>14}  {item['name']}")
    for item in out.get("partial", []):
        text.append(f"  {item['root']}  partial {item['present_chunks']}/{item['chunks']} chunks")
    if isinstance(out.get("receipts"), dict):
        text.append(f"receipts {out['receipts']}")
    ctx.emit(out, "\n".join(text))
    return ExitStatus.OK


__all__ = ["register"]
