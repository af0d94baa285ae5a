"""Network commands: ``serve`` (the node as a service), ``get`` (fetch), ``status``.

``serve`` runs the node (``node.app.run_daemon``): peers, chain duties and the local HTTP API.
While it runs, ``get`` and ``status`` (like the store commands) go through that API; otherwise
they open the node in-process. Exit codes: NOT_FOUND when no peer has the content;
VERIFY_FAILED when a peer sent data that failed verification (nothing of it was written) or a
chunk-root list/manifest that does not match the root; PEER_ERROR when peers failed or went
away (re-run the same command to resume); INTERRUPTED on Ctrl-C (state is saved: re-run).

``get`` through a running node imports only what that path needs (argument parsing, the
stdlib HTTP client, the result line): no trio, store, transfer engine or signing libraries.
Those load inside the functions that use them; tests/cli/test_get_daemon.py checks it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from node._fs import STDOUT

from ._main import Context, ExitStatus, defers_logging
from ._main import guard as _guard
from ._seal_opts import add_seal_options


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
        "--api-listen", help="HOST:PORT of the local HTTP API (default: [api] listen, 127.0.0.1:0)"
    )
    p.add_argument("--no-api", action="store_true", help="no local API (and no dashboard)")
    p.add_argument(
        "--no-fsync",
        action="store_true",
        help="the store skips fsync (chunk files, index), for gets through this node too, as "
        "`get --no-fsync` does in-process: state survives a killed process, not a power cut",
    )
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
        default=[],
        metavar="HOST:PORT[/0xADDRESS]",
        help="a peer to fetch from (repeat for several; pin its address after /); default: the "
        "hosts the chain lists for ROOT and [network] bootstrap",
    )
    p.add_argument(
        "-o",
        "--output",
        help="write the content to this file (replaced atomically at the end; a device or "
        "FIFO is written in place; a symlink is followed), or - for standard output",
    )
    p.add_argument(
        "--link",
        action="store_true",
        help="with -o FILE: write each byte once, into FILE, and let the store refer to it "
        "instead of keeping its own copy (the store's copy is then only as good as FILE: "
        "change or remove FILE and those chunks are damaged; docs/store.md)",
    )
    p.add_argument("--limit-rate", help="cap the download rate, e.g. 500K, 50M, 1G (bytes/s)")
    p.add_argument(
        "--priority",
        default="normal",
        choices=("critical", "high", "normal", "bulk"),
        help="share of the node's download cap against other transfers (weights 8/4/2/1)",
    )
    p.add_argument("--window", type=int, default=16, help="initial requests in flight per peer")
    p.add_argument("--no-receipts", action="store_true", help="do not sign transfer receipts")
    p.add_argument(
        "--no-fsync",
        action="store_true",
        help="skip per-chunk fsync of chunk files (resume still survives a killed process, "
        "not a power cut; scp and curl never fsync either)",
    )
    p.add_argument("--passphrase-file", type=Path, help="keystore passphrase file")
    add_seal_options(p, sealing=False)
    p.set_defaults(handler=defers_logging(_guard(cmd_get)))

    p = sub.add_parser(
        "status",
        help="local node status: the running node (API, transfers, peers), contents, receipts",
    )
    p.set_defaults(handler=_guard(cmd_status))

    p = sub.add_parser("limits", help="show or change the running node's bandwidth caps")
    p.add_argument("--download", metavar="RATE", help="download cap, e.g. 50M (bytes/s); 0: none")
    p.add_argument("--upload", metavar="RATE", help="upload cap, e.g. 10M (bytes/s); 0: none")
    p.set_defaults(handler=_guard(cmd_limits))


# -- serve ------------------------------------------------------------------------------------


def _config(ctx: Context) -> Any:
    """The data dir's config (NotInitialised without ``bcai init``, exit 3; a bad file exit 2)."""
    from ._store_cmds import _config as load

    return load(ctx)


def _initialised(ctx: Context) -> None:
    """NotInitialised (exit 3) when the data dir has no config.toml; reads nothing else.

    Through a running node the config that counts is the one the node loaded; parsing it here
    would cost the config and content layers' imports on every get.
    """
    from node.app import NotInitialised

    if not (ctx.data_dir / "config.toml").exists():
        raise NotInitialised(f"{ctx.data_dir} is not a bcai data directory; run `bcai init`")


def _parse_listen(text: str) -> tuple[str, int]:
    from node.transfer import InvalidArgument

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidArgument(f"bad --listen {text!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def cmd_serve(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Run the node until Ctrl-C or SIGTERM: serve peers, chain duties, the local API.

    Receipts from receivers go to the ReceiptBox; with a JSON-RPC chain configured (``[chain]
    rpc`` or ``--rpc``) the node's chain duties run alongside: receipts are submitted in batches
    and data-availability challenges answered from the slot store, unattended. Both queues are
    in LevelDB, so a chain outage or a restart delays that work and loses none of it. With
    ``--validator`` (or ``[validator] enabled = true``) the node also challenges due
    commitments and slashes expired challenges. The local API (docs/operations.md) lets every
    other ``bcai`` command work on this data dir while the node runs.
    """
    import trio

    from node.app import find_daemon, open_node, run_daemon
    from node.service import validator_enabled

    from ._store_cmds import passphrase_source

    cfg = _config(ctx)
    listen = _parse_listen(args.listen or cfg.network.listen)
    running = find_daemon(ctx.data_dir)
    if running is not None:
        running.close()
        return ctx.fail(
            ExitStatus.UNAVAILABLE,
            f"a node already runs on {ctx.data_dir} (API {running.url}); stop it first",
        )
    with open_node(
        ctx.data_dir,
        passphrase=passphrase_source(ctx, args),
        config=cfg,
        durable=not args.no_fsync,
    ) as node:
        _ = node.identity  # unlock now: a wrong passphrase fails before anything listens

        def ready(info: dict[str, Any]) -> None:
            ctx.emit(
                {**info, "peer": f"{info['listen']}/{info['address']}"},
                f"listening on {info['listen']}\naddress {info['address']}\n"
                f"peer string {info['listen']}/{info['address']}\n"
                f"api {info['api'] or 'off'}\n"
                f"chain duties {'on' if info['chain_duties'] else 'off'}",
            )

        trio.run(
            lambda: run_daemon(
                node,
                listen=listen,
                workers=args.workers,
                rpc=args.rpc,
                chain_interval=args.chain_interval,
                validator=args.validator or validator_enabled(cfg.extra),
                chain=not args.no_chain,
                api=not args.no_api,
                api_listen=args.api_listen,
                on_ready=ready,
            )
        )
    from node.log import get_logger

    get_logger("bcai.net").info("stopped")
    return ExitStatus.OK


# -- get --------------------------------------------------------------------------------------


class _Bar:
    """rich progress on a terminal (size, speed, ETA), shown once a transfer has run for
    ``SHOW_AFTER`` seconds (a small get is done before rich would have finished importing);
    on a pipe or file, one line every few seconds (so an unattended get shows it is alive);
    nothing with --json."""

    LINE_EVERY = 5.0
    SHOW_AFTER = 0.5

    def __init__(self, ctx: Context, root: bytes) -> None:
        self.ctx = ctx
        self.progress: Any = None
        self.task: Any = None
        self.label = _hex(root)[:12] + "…"
        self.started = self.last_line = time.monotonic()
        self.quiet = ctx.json
        self.tty = not ctx.json and _isatty(ctx.stderr)

    def _show(self) -> None:
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
            console=Console(file=self.ctx.stderr),
        )
        self.task = self.progress.add_task(self.label, total=None)
        self.progress.start()

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, p: Any) -> None:
        """A ``node.transfer.Progress`` or the daemon's progress dict."""
        done = p["done_bytes"] if isinstance(p, dict) else p.done_bytes
        total = p["total_bytes"] if isinstance(p, dict) else p.total_bytes
        speed = p["speed"] if isinstance(p, dict) else p.speed
        now = time.monotonic()
        if self.tty:
            if self.progress is None and now - self.started >= self.SHOW_AFTER:
                self._show()
            if self.progress is not None:
                self.progress.update(self.task, total=total, completed=done)
            return
        if self.quiet or now - self.last_line < self.LINE_EVERY:
            return
        self.last_line = now
        pct = 100.0 * done / total if total else 0.0
        self.ctx.stderr.write(
            f"bcai: get {self.label} {done}/{total} bytes ({pct:.1f}%), {speed / 1e6:.1f} MB/s\n"
        )
        self.ctx.stderr.flush()


def _isatty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _hex(root: bytes) -> str:
    return "0x" + root.hex()  # node.content.root_hex


def _parse_root(text: str) -> bytes:
    """A content root; a well-formed one without importing the content layer."""
    t = text.strip().lower().removeprefix("0x")
    if len(t) == 64:
        try:
            return bytes.fromhex(t)
        except ValueError:
            pass
    from node.content import parse_root

    return parse_root(text)  # the typed error (exit 2), or whatever else it accepts


def _limit(text: str | None) -> int | None:
    """This transfer's own cap (``--limit-rate``); the node-wide one ([network] limit_rate, or
    `bcai limits` on a running node) is the node's shaper's, applied to every transfer."""
    if not text:
        return None
    from node.transfer import InvalidArgument, parse_rate

    try:
        return parse_rate(text)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def _wants_key(args: argparse.Namespace) -> bool:
    return any(
        getattr(args, name, None)
        for name in ("key_file", "key", "passphrase_prompt", "content_passphrase_file")
    )


@contextlib.contextmanager
def _node_for_get(ctx: Context, args: argparse.Namespace) -> Iterator[tuple[Any, list[str]]]:
    """The running node's API (checks the peers itself, before any work) or the node opened
    here (peers checked here first), with the peer strings to pass it."""
    from node.app import find_daemon

    remote = find_daemon(ctx.data_dir)
    if remote is not None:
        with remote:
            yield remote, list(args.peer)
        return
    ctx.setup_logging()  # the transfer runs here: its logs go where --log-level says
    from node.transfer import PeerAddr

    from ._store_cmds import open_node_for

    _config(ctx)  # a bad config.toml: exit 2 before any work
    peers = [str(PeerAddr.parse(p)) for p in args.peer]  # bad --peer: exit 2 before any work
    with open_node_for(ctx, args, durable=not args.no_fsync) as node:
        yield node, peers


def cmd_get(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Fetch ROOT from the peers into the store (and -o FILE); resumable after any stop.

    With a node running on the data dir the node does the transfer (one HTTP request; this
    process imports no transfer engine); otherwise it runs here.
    """
    _initialised(ctx)
    root = _parse_root(args.root)
    limit = _limit(args.limit_rate)
    to_stdout = args.output == STDOUT
    output = None if args.output is None or to_stdout else Path(args.output)
    # With a key the store and the transfer see ciphertext only; it is decrypted here, after.
    key = None
    if _wants_key(args):
        from ._seal_opts import opening_key

        key = opening_key(ctx, args)
    with _node_for_get(ctx, args) as (node, peers), _Bar(ctx, root) as bar:
        options = {
            "output": output if key is None else None,
            "priority": args.priority,
            "link": bool(args.link) and output is not None and key is None,
            "progress": bar.update,
            "limit_rate": limit,
            "window": args.window,
            "receipts": not args.no_receipts,
        }
        if hasattr(node, "url"):  # a running daemon does the transfer
            out = node.fetch(root, peers, **options)
        else:
            import trio

            out = trio.run(lambda: node.fetch(root, peers, **options))
        if key is not None:
            out.update(_decrypt(ctx, node, root, key, output, to_stdout))
        elif to_stdout:
            from ._store_cmds import write_stdout

            write_stdout(ctx, node.iter_content(root))
    out["output"] = str(args.output) if args.output else None
    if to_stdout:  # standard output carries the content: the summary goes to stderr
        ctx = dataclasses.replace(ctx, stdout=ctx.stderr)
    wrote = f"\nwrote {args.output}" if args.output else ""
    if out.get("local"):
        text = (
            f"{out['root']} is already complete and verified in the local store "
            f"({out['size']} bytes, {out['chunks']} chunks); no peer contacted{wrote}"
        )
    else:
        text = (
            f"got {out['root']} ({out['size']} bytes, {out['chunks']} chunks; "
            f"{out['fetched_chunks']} fetched, {out['resumed_chunks']} already here"
            + (f", {out['local_chunks']} from held content" if out.get("local_chunks") else "")
            + f"; {out.get('wire_bytes', out['fetched_bytes'])} bytes on the wire) "
            f"in {out['elapsed']:.2f}s, {out['throughput'] / 1e6:.1f} MB/s{wrote}"
        )
    ctx.emit(out, text)
    return ExitStatus.OK


def _decrypt(
    ctx: Context, node: Any, root: bytes, key: Any, output: Path | None, to_stdout: bool
) -> dict[str, Any]:
    """Decrypt the fetched ciphertext into ``-o`` (or stdout, or nowhere: a check)."""
    if output is not None:
        res = node.export(root, output, key=key)
        return {
            "encrypted": True,
            "plaintext_root": res["plaintext_root"],
            "plaintext_size": res["size"],
        }
    from ._store_cmds import write_stdout

    stream = node.iter_content(root, key=key)
    try:
        size = write_stdout(ctx, stream) if to_stdout else sum(len(b) for b in stream)
    finally:
        stream.close()
    result = stream.result
    return {
        "encrypted": True,
        "plaintext_root": _hex(result.plaintext_root) if result else None,
        "plaintext_size": size,
    }


# -- limits ---------------------------------------------------------------------------------


def cmd_limits(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Show the running node's caps, or change them (effective within 2 s, not persisted:
    ``[network] limit_rate`` in config.toml is what a restart uses)."""
    from node.app import find_daemon
    from node.transfer import InvalidArgument, parse_rate

    _config(ctx)
    changes: dict[str, int | None] = {}
    for side in ("download", "upload"):
        value = getattr(args, side)
        if value is not None:
            try:
                rate = parse_rate(value) if value not in ("0", "none", "unlimited") else None
            except ValueError as exc:
                raise InvalidArgument(str(exc)) from None
            changes[side] = rate
    node = find_daemon(ctx.data_dir)
    if node is None:
        return ctx.fail(
            ExitStatus.NOT_FOUND,
            "no node runs on this data dir: start `bcai serve`, or set [network] limit_rate "
            "in config.toml for the next start",
        )
    with node:
        out = node.set_limits(**changes) if changes else node.status()["limits"]
    ctx.emit(out, f"download {_rate(out.get('download'))}, upload {_rate(out.get('upload'))}")
    return ExitStatus.OK


# -- status -----------------------------------------------------------------------------------


def cmd_status(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """The node: API and metrics URLs, transfers, peers, contents, receipts, chain duties."""
    from ._store_cmds import open_node_for

    with open_node_for(ctx) as node:
        out = node.status()
        running = hasattr(node, "url")
        if not running:
            out.update(_contents(node))
    out["running"] = running
    text = [f"data dir {ctx.data_dir}", f"address {out['address']}"]
    if running:
        text.append(
            f"node running (pid {out['pid']}), peers on {out['listen']}, api {out['api']}, "
            f"metrics {out['metrics']}"
        )
    else:
        text.append("node not running (start it with `bcai serve`)")
    contents = out["contents"]
    text.append(f"contents {contents['count']} items, {_size(contents['bytes'])}")
    for item in out.get("partial", []):
        text.append(f"  partial {item['root']}  {item['present_chunks']}/{item['chunks']} chunks")
    for t in out["transfers"]:
        pct = 100.0 * t["done_bytes"] / t["total_bytes"] if t["total_bytes"] else 0.0
        text.append(
            f"transfer {t['id']} {t['direction']} {t['root'][:14]}… {t['state']} "
            f"{pct:.1f}% {t['rate'] / 1e6:.1f} MB/s priority {t['priority']}"
            + (f" error: {t['error']}" if t["error"] else "")
        )
        if t.get("bottleneck"):  # what bounds it (node.app._tuner, docs/tuning.md)
            b = t["bottleneck"]
            text.append(f"  bound by {b['bound']}: {b['summary']}")
    for peer in out["peers"]:
        text.append(
            f"peer {peer.get('address')} in {_size(peer.get('bytes_in', 0))} "
            f"out {_size(peer.get('bytes_out', 0))}"
        )
    receipts = out.get("receipts") or {}
    if receipts:
        text.append("receipts " + ", ".join(f"{k} {v}" for k, v in sorted(receipts.items())))
    chain = out.get("chain")
    if chain:
        text.append(f"chain up {chain.get('chain_up')}")
    limits = out["limits"]
    text.append(
        f"limits download {_rate(limits.get('download'))}, upload {_rate(limits.get('upload'))}"
    )
    tuning = out.get("tuning")
    if tuning:
        nxt = tuning["next"]
        text.append(
            f"tuning {'on' if tuning['enabled'] else 'off'}: next fetch window "
            f"{nxt['initial_window']}, put workers {nxt['put_workers']}, "
            f"request batch {nxt['request_batch']}"
        )
        for d in tuning["decisions"][-3:]:
            change = f"{d['knob']} {d['old']} -> {d['new']}" if d["knob"] != "none" else "hold"
            text.append(f"  {d['transfer']} {d['bound']}: {change} ({d['reason']})")
    ctx.emit(out, "\n".join(text))
    return ExitStatus.OK


def _contents(node: Any) -> dict[str, Any]:
    partial = []
    for info in node.store.list_content():
        if not info.complete:
            m = info.manifest
            partial.append(
                {
                    "root": _hex(m.root),
                    "chunks": m.chunk_count,
                    "present_chunks": info.present_chunks,
                }
            )
    return {"partial": partial}


def _size(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _rate(n: int | None) -> str:
    return "unlimited" if not n else f"{_size(n)}/s"


__all__ = ["register"]
