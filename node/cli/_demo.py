"""``bcai demo``: the README's main job (see node/service/demo.py for the scenario)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._main import Context, ExitStatus


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="end-to-end run: 3 nodes, embedded chain, transfer, receipts, challenges, rewards",
        description=(
            "Three nodes on 127.0.0.1 move a file over Noise, receipts go on chain, an honest "
            "host proves availability and a cheating one is slashed, rewards are allocated by a "
            "validator quorum and claimed. Uses an embedded py-evm chain unless --rpc is given."
        ),
    )
    p.add_argument("--rpc", help="JSON-RPC URL of a dev chain (e.g. anvil) instead of py-evm")
    p.add_argument("--size", type=int, default=24 * 1024 * 1024 + 12345, help="file size, bytes")
    p.add_argument("--workdir", type=Path, help="keep the nodes' data here (default: temp dir)")
    p.set_defaults(handler=cmd_demo)


def _eth(wei: int) -> str:
    return f"{wei / 10**18:.6f} ETH"


def _print_summary(ctx: Context, s: dict[str, Any], checks: list[tuple[str, bool]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=ctx.stdout, width=140, force_terminal=ctx.is_tty, soft_wrap=False)
    c = s["content"]
    console.print(f"\n[bold]content[/] {c['root']}  {c['size']} bytes, {c['chunks']} chunks")
    t = Table(title="transfers (Noise XX over TCP, every chunk verified)")
    for col in ("receiver", "bytes", "chunks", "seconds", "MB/s", "from (bytes, receipt acked)"):
        t.add_column(col)
    for tr in s["transfers"]:
        src = ", ".join(
            f"{name} ({p['bytes']}, {'yes' if p['receipt_acked'] else 'no'})"
            for name, p in tr["providers"].items()
        )
        t.add_row(
            tr["receiver"],
            str(tr["bytes"]),
            str(tr["chunks"]),
            str(tr["seconds"]),
            str(tr["MB_per_s"]),
            src,
        )
    console.print(t)
    t = Table(title=f"receipts on chain, epoch {s['receipts']['epoch']}")
    for col in ("provider", "served bytes on chain", "bytes transferred", "receipts"):
        t.add_column(col)
    for name, oc in s["receipts"]["on_chain"].items():
        t.add_row(
            name,
            str(oc["served_bytes"]),
            str(s["receipts"]["transferred"].get(name, 0)),
            str(oc["receipts"]),
        )
    console.print(t)
    a = s["availability"]
    console.print(
        f"[bold]availability[/] hosts={a['hosts']}  alice: challenge passed, stake "
        f"{_eth(a['alice']['stake_wei'])}; carol: missed, slashed {_eth(a['carol']['slashed_wei'])}"
        f", stake left {_eth(a['carol']['stake_wei'])}"
    )
    r = s["rewards"]
    console.print(
        f"[bold]rewards[/] epoch {r['epoch']}: funded {_eth(r['funded_wei'])}, allocation "
        + ", ".join(f"{k} {_eth(v)}" for k, v in r["allocation_wei"].items())
        + f"; paid {_eth(r['paid_wei'])}"
    )
    t = Table(title="transactions")
    for col in ("step", "tx hash", "gas used"):
        t.add_column(col)
    for tx in s["transactions"]:
        t.add_row(tx["step"], tx["tx"], f"{tx['gas_used']:,}")
    console.print(t)
    t = Table(title="balances")
    for col in ("node", "before", "after"):
        t.add_column(col)
    for name, b in s["balances_wei"].items():
        t.add_row(name, _eth(b["before"]), _eth(b["after"]))
    console.print(t)
    for what, ok in checks:
        console.print(("[green]ok  [/] " if ok else "[red]FAIL[/] ") + what)
    console.print(f"done in {s['elapsed_s']} s, {s['gas_total']:,} gas in all")


def cmd_demo(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Run the end-to-end scenario and print what happened."""
    import trio

    from node.service.demo import run_demo

    def step(msg: str) -> None:
        if not ctx.json:
            ctx.stderr.write(f"> {msg}\n")
            ctx.stderr.flush()

    result = trio.run(lambda: run_demo(args.workdir, size=args.size, rpc=args.rpc, on_step=step))
    if ctx.json:
        ctx.emit({**result.summary, "checks": dict(result.checks), "ok": result.ok})
    else:
        _print_summary(ctx, result.summary, result.checks)
    return ExitStatus.OK if result.ok else ExitStatus.ERROR
