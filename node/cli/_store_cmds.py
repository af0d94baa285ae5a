"""Store commands: init, add, ls, cat, export, verify, pin, unpin, rm, gc.

Exit codes (see :class:`ExitStatus`): NOT_FOUND for an unknown root, a missing input file or a
data directory without ``bcai init``; VERIFY_FAILED when stored bytes fail verification;
USAGE for bad arguments, a wrong or missing passphrase; UNAVAILABLE for local conditions (store
in use by another process, disk full, read-only data directory or output). ERROR (1) only for
what nobody expected: a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from node._fs import STDOUT, OutputReplaced, is_no_space, write_output
from node.config import CONFIG_FILE, Config, ConfigError, load_config, parse_size, save_config
from node.content import ContentError, Manifest, check_chunk_size, parse_root, root_hex
from node.identity import (
    IdentityError,
    IdentityExists,
    IdentityNotFound,
    NoPassphrase,
    WrongPassphrase,
    create_identity,
    fast_kdf_requested,
    resolve_passphrase,
)
from node.store import (
    CorruptChunk,
    IncompleteContent,
    NotFound,
    SlotStore,
    Store,
    StoreError,
    StoreFull,
    StoreLocked,
)

from ._main import Context, ExitStatus

Handler = Callable[[Context, argparse.Namespace], ExitStatus]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the store commands to the ``bcai`` parser."""
    p = sub.add_parser("init", help="create the data directory, keystore and config.toml")
    p.add_argument("--passphrase-file", type=Path, help="read the keystore passphrase from a file")
    p.add_argument("--force", action="store_true", help="replace an existing identity")
    p.add_argument("--cache-quota", help="bytes of unpinned content to keep, e.g. '50GiB'")
    p.add_argument("--chunk-size", help="default chunk size for new content, e.g. '1MiB'")
    p.set_defaults(handler=_guard(cmd_init))

    p = sub.add_parser("add", help="add a file (or - for stdin) to the store; print its root")
    p.add_argument("file", help="file to add, or - to read standard input")
    p.add_argument("--name", help="name recorded in the manifest (default: the file name)")
    p.add_argument("--media-type", default="application/octet-stream", help="MIME type")
    p.add_argument("--chunk-size", help="chunk size, a power of two in 256KiB..4MiB")
    p.add_argument("--pin", action="store_true", help="protect the content from eviction")
    p.set_defaults(handler=_guard(cmd_add))

    p = sub.add_parser("ls", help="list stored content")
    p.set_defaults(handler=_guard(cmd_ls))

    p = sub.add_parser("cat", help="write verified content to standard output")
    p.add_argument("root", help="content root (0x...)")
    p.set_defaults(handler=_guard(cmd_cat))

    p = sub.add_parser("export", help="write verified content to a file (atomically)")
    p.add_argument("root", help="content root (0x...)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="destination file (replaced atomically; a device or FIFO is written in place; "
        "a symlink is followed), or - for standard output",
    )
    p.set_defaults(handler=_guard(cmd_export))

    p = sub.add_parser("verify", help="re-hash stored content; name any bad chunk")
    p.add_argument("root", help="content root (0x...)")
    p.set_defaults(handler=_guard(cmd_verify))

    p = sub.add_parser("pin", help="protect content from eviction")
    p.add_argument("root", help="content root (0x...)")
    p.set_defaults(handler=_guard(cmd_pin))

    p = sub.add_parser("unpin", help="make content evictable again")
    p.add_argument("root", help="content root (0x...)")
    p.set_defaults(handler=_guard(cmd_unpin))

    p = sub.add_parser(
        "rm", help="unpin and remove content and its chunks not shared with other content"
    )
    p.add_argument("root", help="content root (0x...)")
    p.add_argument(
        "--force", action="store_true", help="also remove content `bcai host commit` hosts"
    )
    p.set_defaults(handler=_guard(cmd_rm))

    p = sub.add_parser("gc", help="evict to the cache quota and delete unreferenced chunk files")
    p.add_argument("--unpinned", action="store_true", help="first remove all unpinned content")
    p.set_defaults(handler=_guard(cmd_gc))


# -- shared plumbing --------------------------------------------------------------------------


#: Maps one (leaf) exception to an exit status by calling ``ctx.fail``; None: not ours.
Classifier = Callable[[Context, BaseException], "ExitStatus | None"]


def _guard(handler: Handler, classify: Classifier | None = None) -> Handler:
    """Map the library's typed errors to exit codes and one-line messages, for every command.

    A trio ``ExceptionGroup`` is unwrapped to the error that caused it, so a full disk in a
    worker thread reads the same as one in the main thread. Anything unclassified propagates:
    a traceback and exit 1 mean a bug.
    """

    def run(ctx: Context, args: argparse.Namespace) -> ExitStatus:
        try:
            return handler(ctx, args)
        except BaseException as exc:
            leaf = _leaf(exc)
            if isinstance(leaf, (KeyboardInterrupt, SystemExit)) and leaf is not exc:
                raise leaf from None
            if isinstance(leaf, Exception):
                status = classify(ctx, leaf) if classify is not None else None
                if status is None:
                    status = _classify(ctx, leaf)
                if status is not None:
                    return status
            raise

    run.__doc__ = handler.__doc__
    return run


def _leaf(exc: BaseException) -> BaseException:
    """The error behind nested exception groups (Ctrl-C first, trio's Cancelled last)."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(reversed(e.exceptions))
        else:
            leaves.append(e)
    for e in leaves:
        if isinstance(e, KeyboardInterrupt):
            return e
    real = [e for e in leaves if type(e).__name__ != "Cancelled"]
    return (real or leaves or [exc])[0]


_READ_ONLY_HINTS = ("read-only file system", "permission denied")


def _read_only(exc: BaseException) -> str:
    """Why ``exc`` means "cannot write here" ("" when it does not)."""
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return os.strerror(exc.errno or 0)
    text = str(exc).lower()
    return next((hint for hint in _READ_ONLY_HINTS if hint in text), "")


def _classify(ctx: Context, exc: BaseException) -> ExitStatus | None:
    """The store, identity, config and file-system errors every command can meet."""
    if isinstance(exc, IncompleteContent):
        return ctx.fail(ExitStatus.NOT_FOUND, str(exc), missing_chunks=exc.missing)
    if isinstance(exc, NotFound):
        return ctx.fail(ExitStatus.NOT_FOUND, str(exc))
    if isinstance(exc, CorruptChunk):
        return ctx.fail(
            ExitStatus.VERIFY_FAILED,
            f"{exc}; re-fetch the content (`bcai get`) or `bcai rm` it",
            root=root_hex(exc.root),
            bad_chunks=[exc.index],
        )
    if isinstance(exc, StoreFull) or is_no_space(exc):
        return ctx.fail(
            ExitStatus.UNAVAILABLE,
            f"disk full: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
            f"{_where(exc)}; the store stays consistent and keeps every verified chunk; free "
            "space (or lower cache_quota and run `bcai gc`) and re-run",
        )
    if isinstance(exc, (StoreLocked, StoreError)) and _read_only(exc):
        # LevelDB reports a read-only LOCK file as a lock failure: say what it really is.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _read_only(exc)
        return ctx.fail(
            ExitStatus.UNAVAILABLE,
            f"the data directory {ctx.data_dir} is read-only or not writable ({reason}); "
            "bcai needs to write its store even to read it",
        )
    if isinstance(exc, StoreLocked):
        return ctx.fail(ExitStatus.UNAVAILABLE, str(exc), retryable=True)
    if isinstance(exc, WrongPassphrase):
        return ctx.fail(ExitStatus.USAGE, str(exc))
    if isinstance(exc, IdentityNotFound):
        return ctx.fail(ExitStatus.NOT_FOUND, f"{exc}; run `bcai init`")
    if isinstance(exc, (ConfigError, ContentError, NoPassphrase, IdentityExists)):
        return ctx.fail(ExitStatus.USAGE, str(exc))
    if isinstance(exc, OutputReplaced):
        return ctx.fail(ExitStatus.UNAVAILABLE, f"{exc.filename}: {exc.strerror}")
    if isinstance(exc, FileNotFoundError):
        return ctx.fail(ExitStatus.NOT_FOUND, f"{exc.filename}: {exc.strerror}")
    if isinstance(exc, IsADirectoryError):
        return ctx.fail(ExitStatus.USAGE, f"{exc.filename}: is a directory")
    if isinstance(exc, OSError) and _read_only(exc):
        return ctx.fail(ExitStatus.UNAVAILABLE, f"{exc.filename}: {exc.strerror}")
    if isinstance(exc, (StoreError, IdentityError)):
        return ctx.fail(ExitStatus.ERROR, str(exc))
    return None


def _where(exc: BaseException) -> str:
    filename = getattr(exc, "filename", None)
    return f" ({filename})" if filename else ""


class NotInitialised(NotFound):
    """The data directory has no config.toml."""


def _config(ctx: Context) -> Config:
    if not (ctx.data_dir / CONFIG_FILE).exists():
        raise NotInitialised(f"{ctx.data_dir} is not a bcai data directory; run `bcai init`")
    return load_config(ctx.data_dir)


@contextlib.contextmanager
def _open_store(ctx: Context) -> Iterator[Store]:
    cfg = _config(ctx)
    with Store.open(cfg.store_path(ctx.data_dir), quota=cfg.node.cache_quota) as store:
        yield store


def _root(text: str) -> bytes:
    return parse_root(text)


def _binary_stdout(ctx: Context) -> BinaryIO:
    ctx.stdout.flush()
    buf = getattr(ctx.stdout, "buffer", None)
    if buf is None:
        raise StoreError("standard output does not accept bytes")
    return buf


def write_stdout(ctx: Context, chunks: Iterable[bytes]) -> int:
    """Stream ``chunks`` (verified content) to standard output; return the bytes written.

    A reader that went away (``| head``) is not our failure: the rest is dropped quietly and
    standard output is pointed at /dev/null so Python stays quiet at exit. ``chunks`` is closed
    (a generator's cleanup runs) whatever happens.
    """
    out = _binary_stdout(ctx)
    size = 0
    try:
        for data in chunks:
            out.write(data)
            size += len(data)
        out.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return size


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


# -- commands ---------------------------------------------------------------------------------


def cmd_init(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Create the data directory: encrypted keystore, config.toml, store."""
    data = ctx.data_dir
    cfg = load_config(data)
    if args.cache_quota is not None:
        cfg.node.cache_quota = parse_size(args.cache_quota)
    if args.chunk_size is not None:
        cfg.node.chunk_size = check_chunk_size(parse_size(args.chunk_size))
    passphrase = resolve_passphrase(ctx.env, args.passphrase_file, stdin=ctx.stdin, confirm=True)
    data.mkdir(parents=True, exist_ok=True)
    identity = create_identity(
        data, passphrase, fast_kdf=fast_kdf_requested(ctx.env), overwrite=args.force
    )
    del passphrase
    save_config(data, cfg)
    with Store.open(cfg.store_path(data), quota=cfg.node.cache_quota):
        pass
    ctx.emit(
        {
            "data_dir": str(data),
            "address": identity.address,
            "noise_public_key": identity.noise_public.hex(),
            "store": str(cfg.store_path(data)),
        },
        f"initialised {data}\naddress {identity.address}\n"
        f"noise public key {identity.noise_public.hex()}",
    )
    return ExitStatus.OK


def cmd_add(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Add a file or stdin; print the content root."""
    with _open_store(ctx) as store:
        cfg = load_config(ctx.data_dir)
        chunk_size = parse_size(args.chunk_size) if args.chunk_size else cfg.node.chunk_size
        if args.file == "-":
            source: Any = getattr(ctx.stdin, "buffer", ctx.stdin)
            name = args.name or ""
            total = None
        else:
            path = Path(args.file)
            if path.is_dir():
                raise IsADirectoryError(21, "is a directory", str(path))
            source = path
            name = args.name if args.name is not None else path.name
            total = path.stat().st_size
        with _progress(ctx, total, name or "stdin") as progress_cb:
            manifest = store.add_file(
                source,
                name=name,
                media_type=args.media_type,
                chunk_size=chunk_size,
                pin=args.pin,
                progress_cb=progress_cb,
            )
        ctx.emit(
            _manifest_json(manifest, pinned=store.info(manifest.root).pinned), manifest.root_hex
        )
    return ExitStatus.OK


@contextlib.contextmanager
def _progress(
    ctx: Context, total: int | None, label: str
) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar (size, speed, ETA) on stderr when it is a terminal; else nothing."""
    if ctx.json or not _is_terminal(ctx.stderr):
        yield None
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

    console = Console(file=ctx.stderr)
    with Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        "[progress.percentage]{task.percentage:>3.0f}%",
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"adding {label}", total=total)

        def update(done: int) -> None:
            progress.update(task, completed=done)

        yield update


def _manifest_json(m: Manifest, *, pinned: bool) -> dict[str, Any]:
    d = m.to_dict()
    d["chunks"] = m.chunk_count
    d["pinned"] = pinned
    return d


def cmd_ls(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """List stored content."""
    with _open_store(ctx) as store:
        items = [info.to_dict() for info in store.list_content()]
        stats = store.stats().to_dict()
    lines = [
        f"{d['root']}  {d['size']:>14}  {d['state']:<8}  {'pinned' if d['pinned'] else '      '}"
        f"  {d['name']}"
        for d in items
    ]
    lines.append(f"{len(items)} items, {stats['used_bytes']} bytes stored")
    ctx.emit({"content": items, "stats": stats}, "\n".join(lines))
    return ExitStatus.OK


def cmd_cat(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Stream verified bytes to stdout; stop before a chunk that fails verification."""
    root = _root(args.root)
    with _open_store(ctx) as store:
        write_stdout(ctx, store.iter_verified(root))
    return ExitStatus.OK


def cmd_export(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Write verified content to a file via temp file + rename (see node._fs.output_target).

    ``-o -`` is standard output (then the summary goes to stderr, as text). A device or FIFO
    (``-o /dev/null``) is written in place, never replaced; a symlink is followed.
    """
    root = _root(args.root)
    with _open_store(ctx) as store:
        chunks = store.iter_verified(root)  # raises before anything is written
        if args.output == STDOUT:
            size = write_stdout(ctx, chunks)
        else:
            try:
                size = write_output(args.output, chunks)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
    if args.output == STDOUT:  # standard output carries the content: the summary goes to stderr
        ctx = dataclasses.replace(ctx, stdout=ctx.stderr)
    ctx.emit(
        {"root": root_hex(root), "path": str(args.output), "size": size},
        f"wrote {size} bytes to {args.output}",
    )
    return ExitStatus.OK


def cmd_verify(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Re-hash stored content and its chunk-root list."""
    root = _root(args.root)
    with _open_store(ctx) as store:
        report = store.verify(root)
    if report.ok:
        ctx.emit(report.to_dict(), f"ok {root_hex(root)} ({report.checked} chunks)")
        return ExitStatus.OK
    if ctx.json:
        return ctx.fail(ExitStatus.VERIFY_FAILED, "verification failed", **report.to_dict())
    reasons = []
    for label, indices in (("bad chunks", report.bad), ("quarantined chunks", report.quarantined)):
        if indices:
            shown = ", ".join(
                f"{i} (chunk root 0x{report.damaged_roots[i].hex()})"
                if i in report.damaged_roots
                else str(i)
                for i in indices[:20]
            )
            more = f" and {len(indices) - 20} more" if len(indices) > 20 else ""
            reasons.append(f"{label}: {shown}{more}")
    if not report.roots_ok:
        reasons.append("the chunk-root list does not hash to the root")
    hint = (
        "; repair: bcai get ROOT --peer ... (re-fetches just these chunks)"
        if report.damaged
        else ""
    )
    return ctx.fail(
        ExitStatus.VERIFY_FAILED,
        f"verification of {root_hex(root)} failed: {'; '.join(reasons)}{hint}",
    )


def cmd_pin(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Pin content."""
    root = _root(args.root)
    with _open_store(ctx) as store:
        store.pin(root)
    ctx.emit({"root": root_hex(root), "pinned": True}, f"pinned {root_hex(root)}")
    return ExitStatus.OK


def cmd_unpin(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Unpin content."""
    root = _root(args.root)
    with _open_store(ctx) as store:
        store.unpin(root)
    ctx.emit({"root": root_hex(root), "pinned": False}, f"unpinned {root_hex(root)}")
    return ExitStatus.OK


def cmd_rm(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Unpin and remove content: its record and every chunk no other content references.

    Removal is a crash-safe store job (docs/store.md): a kill half-way is finished by the next
    open. Content that ``bcai host commit`` built a slot from is refused without ``--force``
    (removing it would not stop the slot's challenges; the slot store is left as it is).
    """
    root = _root(args.root)
    with _open_store(ctx) as store:
        store.info(root)  # NotFound before looking at slots
        hosted = _hosted_slots(ctx, root)
        if hosted and not args.force:
            slots = ", ".join(str(s) for s in hosted)
            return ctx.fail(
                ExitStatus.USAGE,
                f"{root_hex(root)} is hosted (`bcai host commit`, slot {slots}); "
                "`bcai host exit` first, or pass --force",
                slots=hosted,
            )
        report = store.remove(root)
        used = store.used_bytes
    ctx.emit(
        {
            "root": root_hex(root),
            "removed": True,
            "bytes_freed": report.bytes_freed,
            "hosted_slots": hosted,
            "used_bytes": used,
        },
        f"removed {root_hex(root)}; freed {report.bytes_freed} bytes; {used} bytes stored",
    )
    return ExitStatus.OK


def _hosted_slots(ctx: Context, root: bytes) -> list[int]:
    """Slots of ``root`` in the slot store (``bcai host commit`` builds them); none: []."""
    path = ctx.data_dir / "slots"
    if not path.exists():
        return []
    with SlotStore.open(path) as slots:
        return sorted(slot for r, slot in slots.slots() if r == root)


def cmd_gc(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Evict to quota (or all unpinned content), then sweep unreferenced chunk files."""
    with _open_store(ctx) as store:
        removed: list[str] = []
        freed = 0
        if args.unpinned:
            for info in list(store.list_content()):
                if not info.pinned:
                    freed += store.remove(info.root).bytes_freed
                    removed.append(root_hex(info.root))
        ev = store.evict_to_quota()
        removed += [root_hex(r) for r in ev.evicted]
        freed += ev.bytes_freed
        sweep = store.gc()
        used = store.used_bytes
    total = freed + sweep.bytes_freed
    ctx.emit(
        {
            "removed": removed,
            "bytes_freed": total,
            "orphan_files_removed": sweep.files_removed,
            "used_bytes": used,
        },
        f"removed {len(removed)} items and {sweep.files_removed} orphan files; "
        f"freed {total} bytes; {used} bytes stored",
    )
    return ExitStatus.OK
