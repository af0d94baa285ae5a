"""``bcai demo``: the README's main job (see node/service/demo.py for the scenario)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._main import Context, ExitStatus


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="end-to-end run: 3 nodes and a validator on an embedded chain: paid transfers, "
        "slots, scheduled challenges, slashing, rewards",
        description=(
            "Three nodes on 127.0.0.1 move a file over Noise and pay for it from escrow in "
            "signed receipts; each hosts its own erasure-coded slot; a validator challenges on "
            "schedule; the honest host proves its samples, a host that lost its slot and one "
            "that fetches on challenge are slashed; forged receipts are rejected; the "
            "validator allocates the epoch from the reputation ledger and the hosts claim. "
            "Uses an embedded py-evm chain unless --rpc is given."
        ),
    )
    p.add_argument("--rpc", help="JSON-RPC URL of a dev chain (e.g. anvil) instead of py-evm")
    p.add_argument("--size", type=int, default=24 * 1024 * 1024 + 12345, help="file size, bytes")
    p.add_argument("--workdir", type=Path, help="keep the nodes' data here (default: temp dir)")
    p.set_defaults(handler=cmd_demo)


def _eth(wei: int) -> str:
    """Ether for stakes and balances; gwei for the small sums receipts and fees move."""
    if abs(wei) >= 10**15 or wei == 0:
        return f"{wei / 10**18:.6f} ETH"
    return f"{wei / 10**9:,.3f} gwei"


def _print_summary(ctx: Context, s: dict[str, Any], checks: list[tuple[str, bool]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=ctx.stdout, width=150, force_terminal=ctx.is_tty, soft_wrap=False)
    c = s["content"]
    lay = c["layout"]
    console.print(
        f"\n[bold]content[/] {c['root']}  {c['size']} bytes, {c['chunks']} chunks; "
        f"{lay['slots']} slots of {lay['rows']} segments (any {lay['data_shards']} rebuild it)"
    )
    t = Table(title="paid transfers (Noise XX over TCP, every chunk verified)")
    for col in ("receiver", "bytes", "seconds", "MB/s", "from: bytes, receipts, paid"):
        t.add_column(col)
    for tr in s["transfers"]:
        src = "; ".join(
            f"{name}: {p['bytes']} B, {p['receipts']} receipt(s), {_eth(p['paid'])}"
            for name, p in tr["providers"].items()
        )
        t.add_row(tr["receiver"], str(tr["bytes"]), str(tr["seconds"]), str(tr["MB_per_s"]), src)
    console.print(t)
    r = s["receipts"]
    t = Table(
        title=f"receipts on chain, epoch {r['epoch']} (burnt in all: {_eth(r['total_burnt_wei'])})"
    )
    for col in ("provider", "bytes credited", "receipts", "payments", "fees burnt", "earnings"):
        t.add_column(col)
    for name, oc in r["on_chain"].items():
        t.add_row(
            name,
            str(oc["served_bytes"]),
            str(oc["receipts"]),
            _eth(oc["payments"]),
            _eth(oc["fees"]),
            _eth(oc["earnings"]),
        )
    console.print(t)
    h = s["hosting"]
    t = Table(title="hosting: one slot each, challenged by the validator on schedule")
    for col in ("host", "slot", "outcome", "slashed", "stake now", "note"):
        t.add_column(col)
    for name in ("alice", "bob", "carol"):
        row = h[name]
        note = ""
        if name == "alice":
            note = f"owed {_eth(row['owed_wei'])} storage payment"
        elif name == "bob":
            note = f"faults {row['faults']}, keeps the slot"
        elif row.get("terminated"):
            note = "forced out"
        t.add_row(
            name,
            str(row["slot"]),
            row["outcome"],
            _eth(row.get("slashed_wei", 0)),
            _eth(row["stake_wei"]),
            note,
        )
    console.print(t)
    for f in s["forged_receipts"]:
        console.print(
            f"[bold]forged receipt[/] {f['root'][:18]}... {f['bytes']} bytes: rejected "
            f"({f['verdict']})"
        )
    w = s["rewards"]
    funded, paid = _eth(w["funded_wei"]), _eth(w["paid_wei"])
    t = Table(title=f"rewards, epoch {w['epoch']}: funded {funded}, paid {paid}")
    for col in ("host", "score", "fees burnt", "fee cap", "allocated", "claimed"):
        t.add_column(col)
    for name, rep in w["reputation"].items():
        score = f"{rep['score']:.3f}" + (" (disqualified)" if rep["disqualified"] else "")
        t.add_row(
            name,
            score,
            _eth(w["fees_wei"].get(name, 0)),
            _eth(w["fee_cap_wei"].get(name, 0)),
            _eth(w["allocation_wei"].get(name, 0)),
            _eth(w["claimed_wei"].get(name, 0)),
        )
    console.print(t)
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
