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
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from node._fs import STDOUT
from node.app import NotInitialised, leaf
from node.config import CONFIG_FILE, Config, load_config, parse_size, save_config
from node.content import check_chunk_size, parse_root, root_hex
from node.identity import create_identity, fast_kdf_requested, resolve_passphrase
from node.store import Store, StoreError

from ._main import Context, ExitStatus, guard
from ._seal_opts import add_seal_options, key_report_text, opening_key, sealing_key

Handler = Callable[[Context, argparse.Namespace], ExitStatus]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the store commands to the ``bcai`` parser."""
    p = sub.add_parser("init", help="create the data directory, keystore and config.toml")
    p.add_argument("--passphrase-file", type=Path, help="read the keystore passphrase from a file")
    p.add_argument("--force", action="store_true", help="replace an existing identity")
    p.add_argument("--cache-quota", help="bytes of unpinned content to keep, e.g. '50GiB'")
    p.add_argument(
        "--chunk-size",
        help="default chunk size for new content, e.g. '1MiB' (default: auto, by content size)",
    )
    p.set_defaults(handler=_guard(cmd_init))

    p = sub.add_parser("add", help="add a file (or - for stdin) to the store; print its root")
    p.add_argument("file", help="file to add, or - to read standard input")
    p.add_argument("--name", help="name recorded in the manifest (default: the file name)")
    p.add_argument("--media-type", default="application/octet-stream", help="MIME type")
    p.add_argument(
        "--chunk-size",
        help="chunk size, a power of two in 256KiB..4MiB (default: the config's, auto: 1 MiB "
        "below 32 MiB, 2 MiB below 64 MiB, 4 MiB from 64 MiB)",
    )
    p.add_argument("--pin", action="store_true", help="protect the content from eviction")
    p.add_argument(
        "--link",
        action="store_true",
        help="keep no copy: the store refers to FILE's chunks (FILE must stay as it is; "
        "changed or removed, those chunks are damaged; docs/store.md)",
    )
    add_seal_options(p, sealing=True)
    p.set_defaults(handler=_guard(cmd_add))

    p = sub.add_parser("ls", help="list stored content")
    p.set_defaults(handler=_guard(cmd_ls))

    p = sub.add_parser("cat", help="write verified content to standard output")
    p.add_argument("root", help="content root (0x...)")
    add_seal_options(p, sealing=False)
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
    add_seal_options(p, sealing=False)
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

#: ``leaf`` under its old name (the chain commands import it from here).
_leaf = leaf

#: :func:`node.cli._main.guard` under its old name (the store and chain commands use it).
_guard = guard


def _config(ctx: Context) -> Config:
    if not (ctx.data_dir / CONFIG_FILE).exists():
        raise NotInitialised(f"{ctx.data_dir} is not a bcai data directory; run `bcai init`")
    return load_config(ctx.data_dir)


def passphrase_source(ctx: Context, args: argparse.Namespace) -> Callable[[], str]:
    """The keystore passphrase, asked for only when the node first signs."""
    return lambda: resolve_passphrase(
        ctx.env, getattr(args, "passphrase_file", None), stdin=ctx.stdin
    )


@contextlib.contextmanager
def open_node_for(
    ctx: Context, args: argparse.Namespace | None = None, *, durable: bool = True
) -> Iterator[Any]:
    """The node behind a command: the running daemon's API when one serves this data dir
    (it holds the store), else the node opened in this process (``node.app.open_node``)."""
    from node.app import find_daemon

    _config(ctx)  # NotInitialised before anything else
    remote = find_daemon(ctx.data_dir)
    if remote is not None:
        with remote:
            yield remote
        return
    from node.app import open_node

    passphrase = passphrase_source(ctx, args) if args is not None else None
    with open_node(ctx.data_dir, passphrase=passphrase, durable=durable) as node:
        yield node


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
    chunk_size = parse_size(args.chunk_size) if args.chunk_size else None
    key, key_info = sealing_key(ctx, args)  # docs/encryption.md
    seal: dict[str, Any] = {"encrypt": key} if key is not None else {}
    with open_node_for(ctx) as node:
        if args.file == "-":
            source: Any = getattr(ctx.stdin, "buffer", ctx.stdin)
            name = args.name or ""
            total = None
        else:
            source = args.file
            name = args.name
            path = Path(args.file)
            total = path.stat().st_size if path.is_file() else None
            if key is not None and total is not None:  # the bar counts sealed bytes
                from node.seal import sealed_size

                total = sealed_size(total)
        with _progress(ctx, total, name or Path(str(args.file)).name or "stdin") as progress_cb:
            result = node.add(
                source,
                name=name,
                media_type=args.media_type,
                chunk_size=chunk_size,
                pin=args.pin,
                progress=progress_cb,
                link=args.link,
                **seal,
            )
    if key is not None:
        result.update(key_info)
        ctx.emit(result, f"{result['root']}\n{key_report_text(key_info)}")
        return ExitStatus.OK
    ctx.emit(result, result["root"])
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


def cmd_ls(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """List stored content."""
    with open_node_for(ctx) as node:
        out = node.ls()
    items, stats = out["content"], out["stats"]
    lines = [
        f"{d['root']}  {d['size']:>14}  {d['state']:<8}  {'pinned' if d['pinned'] else '      '}"
        f"  {d['name']}"
        for d in items
    ]
    lines.append(f"{len(items)} items, {stats['used_bytes']} bytes stored")
    for path in stats.get("linked_files", []):
        lines.append(f"linked (keep it as it is): {path}")
    ctx.emit(out, "\n".join(lines))
    return ExitStatus.OK


def cmd_cat(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Stream verified bytes to stdout; stop before a chunk that fails verification."""
    root = _root(args.root)
    key = opening_key(ctx, args)  # given: decrypt (docs/encryption.md)
    seal: dict[str, Any] = {"key": key} if key is not None else {}
    with open_node_for(ctx) as node:
        write_stdout(ctx, node.iter_content(root, **seal))
    return ExitStatus.OK


def cmd_export(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Write verified content to a file via temp file + rename (see node._fs.output_target).

    ``-o -`` is standard output (then the summary goes to stderr, as text). A device or FIFO
    (``-o /dev/null``) is written in place, never replaced; a symlink is followed.
    """
    root = _root(args.root)
    key = opening_key(ctx, args)  # given: decrypt (docs/encryption.md)
    seal: dict[str, Any] = {"key": key} if key is not None else {}
    with open_node_for(ctx) as node:
        if args.output == STDOUT:
            size = write_stdout(ctx, node.iter_content(root, **seal))
            out = {"root": root_hex(root), "path": STDOUT, "size": size}
            ctx = dataclasses.replace(ctx, stdout=ctx.stderr)  # stdout carries the content
        else:
            out = node.export(root, args.output, **seal)
            out["path"] = str(args.output)
    ctx.emit(out, f"wrote {out['size']} bytes to {args.output}")
    return ExitStatus.OK


def cmd_verify(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Re-hash stored content and its chunk-root list."""
    root = _root(args.root)
    with open_node_for(ctx) as node:
        report = node.verify(root)
    if report["ok"]:
        ctx.emit(report, f"ok {root_hex(root)} ({report['checked']} chunks)")
        return ExitStatus.OK
    if ctx.json:
        return ctx.fail(ExitStatus.VERIFY_FAILED, "verification failed", **report)
    damaged = {d["index"]: d["chunk_root"] for d in report["damaged"]}
    bad, quarantined = report["bad_chunks"], report["quarantined_chunks"]
    reasons = []
    for label, indices in (("bad chunks", bad), ("quarantined chunks", quarantined)):
        if indices:
            shown = ", ".join(
                f"{i} (chunk root {damaged[i]})" if i in damaged else str(i) for i in indices[:20]
            )
            more = f" and {len(indices) - 20} more" if len(indices) > 20 else ""
            reasons.append(f"{label}: {shown}{more}")
    if not report["chunk_roots_ok"]:
        reasons.append("the chunk-root list does not hash to the root")
    hint = "; repair: bcai get ROOT --peer ... (re-fetches just these chunks)" if damaged else ""
    return ctx.fail(
        ExitStatus.VERIFY_FAILED,
        f"verification of {root_hex(root)} failed: {'; '.join(reasons)}{hint}",
    )


def cmd_pin(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Pin content."""
    root = _root(args.root)
    with open_node_for(ctx) as node:
        out = node.pin(root)
    ctx.emit(out, f"pinned {root_hex(root)}")
    return ExitStatus.OK


def cmd_unpin(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Unpin content."""
    root = _root(args.root)
    with open_node_for(ctx) as node:
        out = node.unpin(root)
    ctx.emit(out, f"unpinned {root_hex(root)}")
    return ExitStatus.OK


def cmd_rm(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Unpin and remove content: its record and every chunk no other content references.

    Removal is a crash-safe store job (docs/store.md): a kill half-way is finished by the next
    open. Content that ``bcai host commit`` built a slot from is refused without ``--force``
    (removing it would not stop the slot's challenges; the slot store is left as it is).
    """
    root = _root(args.root)
    with open_node_for(ctx) as node:
        out = node.rm(root, force=args.force)
    ctx.emit(
        out,
        f"removed {root_hex(root)}; freed {out['bytes_freed']} bytes; "
        f"{out['used_bytes']} bytes stored",
    )
    return ExitStatus.OK


def cmd_gc(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Evict to quota (or all unpinned content), then sweep unreferenced chunk files."""
    with open_node_for(ctx) as node:
        out = node.gc(unpinned=args.unpinned)
    ctx.emit(
        out,
        f"removed {len(out['removed'])} items and {out['orphan_files_removed']} orphan files; "
        f"freed {out['bytes_freed']} bytes; {out['used_bytes']} bytes stored",
    )
    return ExitStatus.OK
