"""Chain commands: ``chain up|deploy|status|down``, ``publish``, ``receipts submit``,
``host commit|exit``, ``prove``, ``rewards fund|sign|post|claim``.

Which chain: ``--rpc URL`` or the ``[chain]`` table of config.toml (written by ``chain up`` /
``chain deploy``). ``rpc = "embedded"`` means an in-process py-evm chain: it lives only as long
as one process, so it is useful inside ``bcai serve`` / ``bcai demo``; each separate command gets
a fresh chain (redeployed at the same, deterministic addresses, but with no history). Across
processes use anvil: ``bcai chain up --anvil``.

Which account: ``--dev-account N`` (a prefunded account of anvil or the embedded chain) or the
node identity (keystore passphrase from ``--passphrase-file`` or ``$BCAI_PASSPHRASE``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from chain.anvil import start_anvil
from chain.backend import ChainBackend, EmbeddedChain, RpcChain
from chain.client import ChainClient
from chain.config import chain_table, load_deployment, read_chain_config, write_chain_config
from chain.deploy import Deployment, DeployParams, deploy_suite
from chain.eip712 import ZERO_ADDRESS
from chain.errors import ChainRevert, ChainUnavailable, ChainUsageError
from chain.merkle import AllocationTree
from chain.port import ClientPort
from node.receipt import ReceiptError, SignedReceipt
from node.service import prove_segment

from ._main import Context, ExitStatus

Handler = Callable[[Context, argparse.Namespace], ExitStatus]

EMBEDDED_NOTE = (
    "an embedded chain lives inside one process: use it within `bcai serve`/`bcai demo`; "
    "across processes start anvil (`bcai chain up --anvil`) or pass --rpc URL"
)


# -- plumbing ---------------------------------------------------------------------------------


def _guard(fn: Handler) -> Handler:
    @functools.wraps(fn)
    def run(ctx: Context, args: argparse.Namespace) -> ExitStatus:
        try:
            return fn(ctx, args)
        except ChainRevert as exc:
            return ctx.fail(ExitStatus.CHAIN_ERROR, str(exc), revert=exc.name, args=exc.args_)
        except ChainUnavailable as exc:
            return ctx.fail(ExitStatus.CHAIN_ERROR, str(exc))
        except (ChainUsageError, ReceiptError, ValueError) as exc:
            return ctx.fail(ExitStatus.USAGE, str(exc))
        except FileNotFoundError as exc:
            return ctx.fail(ExitStatus.NOT_FOUND, f"{exc.filename}: {exc.strerror}")
        except Exception as exc:
            if type(exc).__name__ in {"NotFound", "IdentityNotFound", "IncompleteContent"}:
                return ctx.fail(ExitStatus.NOT_FOUND, str(exc))
            if type(exc).__name__ in {"NoPassphrase", "WrongPassphrase", "ConfigError"}:
                return ctx.fail(ExitStatus.USAGE, str(exc))
            raise

    return run


def parse_amount(text: str) -> int:
    """Wei from ``"123"`` (wei), ``"1.5eth"``/``"1.5ether"`` or ``"20gwei"``."""
    t = text.strip().lower().replace("_", "")
    scale = 1
    for suffix, mult in (("ether", 10**18), ("eth", 10**18), ("gwei", 10**9), ("wei", 1)):
        if t.endswith(suffix):
            t, scale = t[: -len(suffix)].strip(), mult
            break
    try:
        value = Decimal(t) * scale
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if value < 0 or value != value.to_integral_value():
        raise ValueError(f"not a whole number of wei: {text!r}")
    return int(value)


def _hex32(text: str) -> bytes:
    raw = bytes.fromhex(text.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes of hex: {text!r}")
    return raw


def _backend(ctx: Context, args: argparse.Namespace) -> ChainBackend:
    """The chain: --rpc, else config; embedded chains are cached per process in ctx.extra."""
    rpc = getattr(args, "rpc", None)
    if rpc is None:
        table = read_chain_config(ctx.data_dir) or {}
        rpc = table.get("rpc", "embedded")
    if rpc == "embedded":
        backend = ctx.extra.get("embedded_chain")
        if backend is None:
            backend = EmbeddedChain()
            ctx.extra["embedded_chain"] = backend
        return backend
    return RpcChain(str(rpc))


def _session(ctx: Context, args: argparse.Namespace) -> tuple[ChainBackend, Deployment]:
    backend = _backend(ctx, args)
    if backend.kind == "embedded":
        deployment = ctx.extra.get("embedded_deployment")
        if deployment is None:
            deployment = deploy_suite(backend, backend.dev_accounts()[0])
            ctx.extra["embedded_deployment"] = deployment
        return backend, deployment
    deployment, _ = load_deployment(ctx.data_dir)
    if deployment.chain_id != backend.chain_id:
        raise ChainUsageError(
            f"config deployment is for chain {deployment.chain_id}, the node is {backend.chain_id}"
        )
    return backend, deployment


def _account(ctx: Context, args: argparse.Namespace, backend: ChainBackend) -> Any:
    index = getattr(args, "dev_account", None)
    if index is not None:
        accounts = backend.dev_accounts()
        if not 0 <= index < len(accounts):
            raise ChainUsageError(f"no dev account {index} on this chain")
        return accounts[index]
    from node.identity import load_identity, resolve_passphrase

    passphrase = resolve_passphrase(
        ctx.env, getattr(args, "passphrase_file", None), stdin=ctx.stdin
    )
    return load_identity(ctx.data_dir, passphrase).account


def _client(ctx: Context, args: argparse.Namespace) -> ChainClient:
    backend, deployment = _session(ctx, args)
    return ChainClient(backend, deployment, _account(ctx, args, backend))


def _tx_text(res: Any) -> str:
    return f"tx {res.tx_hash} block {res.block} gas {res.gas_used}"


# -- chain up / deploy / status / down -------------------------------------------------------


def _params(args: argparse.Namespace) -> DeployParams:
    return DeployParams(epoch_length=args.epoch_length, response_window=args.response_window)


def cmd_chain_up(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Start a development chain, deploy the suite, write [chain] into config.toml."""
    extra: dict[str, Any] = {"hardfork": args.hardfork}
    if args.anvil:
        ctx.data_dir.mkdir(parents=True, exist_ok=True)
        proc = start_anvil(
            port=args.port, hardfork=args.hardfork, log_dir=ctx.data_dir / "anvil", detach=True
        )
        backend: ChainBackend = RpcChain(proc.url)
        rpc = proc.url
        extra.update(anvil_pid=proc.pid, anvil_log=str(proc.log_path))
    else:
        backend = _backend(ctx, argparse.Namespace(rpc="embedded"))
        rpc = "embedded"
    deployment = deploy_suite(backend, backend.dev_accounts()[0], _params(args))
    if backend.kind == "embedded":
        ctx.extra["embedded_deployment"] = deployment
    path = write_chain_config(ctx.data_dir, chain_table(deployment, rpc, **extra))
    out = {"rpc": rpc, "config": str(path), **deployment.to_dict()}
    text = f"chain {deployment.chain_id} at {rpc}\n" + "\n".join(
        f"{name:18} {addr}" for name, addr in deployment.contracts().items()
    )
    if not args.anvil:
        text += f"\nnote: {EMBEDDED_NOTE}"
    ctx.emit(out, text)
    return ExitStatus.OK


def cmd_chain_deploy(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Deploy the suite to --rpc (or the configured chain) and record it in config.toml."""
    backend = _backend(ctx, args)
    account = (
        _account(ctx, args, backend)
        if args.dev_account is not None or not backend.dev_accounts()
        else backend.dev_accounts()[0]
    )
    deployment = deploy_suite(backend, account, _params(args))
    old = read_chain_config(ctx.data_dir) or {}
    keep = {k: v for k, v in old.items() if k in ("hardfork", "anvil_pid", "anvil_log")}
    rpc = backend.url or "embedded"
    write_chain_config(ctx.data_dir, chain_table(deployment, rpc, **keep))
    ctx.emit(
        {"rpc": rpc, **deployment.to_dict()},
        "\n".join(f"{n:18} {a}" for n, a in deployment.contracts().items()),
    )
    return ExitStatus.OK


def cmd_chain_attach(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Join a local network: take the chain and contract addresses of another node's config."""
    table = read_chain_config(args.source)
    if not table or "deployment" not in table:
        return ctx.fail(ExitStatus.NOT_FOUND, f"no deployed chain in {args.source}/config.toml")
    table = {k: v for k, v in table.items() if k not in ("anvil_pid", "anvil_log")}
    if args.rpc:
        table["rpc"] = args.rpc
    if table.get("rpc") == "embedded":
        return ctx.fail(ExitStatus.USAGE, f"{args.source} uses an embedded chain: {EMBEDDED_NOTE}")
    write_chain_config(ctx.data_dir, table)
    ctx.emit(
        {"rpc": table["rpc"], "contracts": table.get("contracts", {})},
        f"attached to {table['rpc']}",
    )
    return ExitStatus.OK


def cmd_chain_status(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Is the chain up, which block, where the contracts are."""
    table = read_chain_config(ctx.data_dir) or {}
    rpc = args.rpc or table.get("rpc", "embedded")
    info: dict[str, Any] = {"rpc": rpc, "contracts": table.get("contracts", {})}
    if rpc == "embedded":
        info.update(up=True, note=EMBEDDED_NOTE)
        ctx.emit(info, f"rpc embedded (in-process)\nnote: {EMBEDDED_NOTE}")
        return ExitStatus.OK
    backend = RpcChain(str(rpc), timeout=3)
    up = backend.is_up()
    info["up"] = up
    if up:
        info.update(chain_id=backend.chain_id, block=backend.block_number())
        code = {n: len(backend.w3.eth.get_code(a)) > 0 for n, a in info["contracts"].items()}
        info["deployed"] = code
    ctx.emit(info, "\n".join(f"{k}: {v}" for k, v in info.items()))
    return ExitStatus.OK if up else ExitStatus.CHAIN_ERROR


def cmd_chain_down(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Stop the anvil that `bcai chain up --anvil` started."""
    table = read_chain_config(ctx.data_dir) or {}
    pid = table.get("anvil_pid")
    if not pid:
        return ctx.fail(ExitStatus.NOT_FOUND, "no anvil recorded in config.toml")
    try:
        os.kill(int(pid), signal.SIGTERM)
        stopped = True
    except ProcessLookupError:
        stopped = False
    table.pop("anvil_pid", None)
    write_chain_config(ctx.data_dir, table)
    ctx.emit(
        {"pid": pid, "stopped": stopped},
        f"anvil {pid} {'stopped' if stopped else 'was not running'}",
    )
    return ExitStatus.OK


# -- content, receipts, hosting ----------------------------------------------------------------


def _open_store(ctx: Context) -> Any:
    from node.config import load_config
    from node.store import Store

    cfg = load_config(ctx.data_dir)
    return Store.open(cfg.store_path(ctx.data_dir), quota=cfg.node.cache_quota)


def cmd_publish(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Register stored content (root, size, chunk size) in the ContentRegistry."""
    root = _hex32(args.root)
    with _open_store(ctx) as store:
        manifest = store.get_manifest(root)
    client = _client(ctx, args)
    res = ClientPort(client).publish(manifest, args.metadata_uri or "")
    if res is None:
        info = client.get_content(root)
        ctx.emit(
            {"root": args.root, "already_registered": True, "owner": info.owner},
            f"already registered by {info.owner}",
        )
    else:
        ctx.emit({"root": args.root, **res.to_json()}, f"published {args.root}\n{_tx_text(res)}")
    return ExitStatus.OK


def cmd_receipts_submit(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Submit receipts (JSON lines of SignedReceipt.to_json) where we are the provider."""
    lines = Path(args.file).read_text().splitlines()
    receipts = [SignedReceipt.from_json(line) for line in lines if line.strip()]
    report = _client(ctx, args).submit_receipts(receipts, batch_size=args.batch)
    ctx.emit(
        report.to_json(),
        f"accepted {len(report.accepted)}, rejected {len(report.rejected)}, gas {report.gas_used}",
    )
    return ExitStatus.OK if not report.rejected else ExitStatus.CHAIN_ERROR


def cmd_host_commit(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Stake on holding ROOT (data-availability commitment; top-ups allowed)."""
    res = _client(ctx, args).commit(_hex32(args.root), parse_amount(args.stake))
    ctx.emit(res.to_json(), _tx_text(res))
    return ExitStatus.OK


def cmd_host_exit(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Request exit (then `host withdraw` after the exit delay)."""
    client = _client(ctx, args)
    res = (
        client.withdraw(_hex32(args.root))
        if args.withdraw
        else client.request_exit(_hex32(args.root))
    )
    ctx.emit(res.to_json(), _tx_text(res))
    return ExitStatus.OK


def cmd_prove(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Answer every open challenge against this node from the local store."""
    client = _client(ctx, args)
    challenges = client.open_challenges_for(client.address)
    if args.root:
        challenges = [c for c in challenges if c.root == _hex32(args.root)]
    results = []
    with _open_store(ctx) as store:
        for ch in challenges:
            segment, proof = prove_segment(store, ch.root, ch.segment_index)
            res = ClientPort(client).respond(ch.id, segment, proof)
            passed = bool(res.events_named("ChallengePassed"))
            results.append(
                {"id": ch.id, "segment": ch.segment_index, "passed": passed, **res.to_json()}
            )
    ctx.emit(
        {"answered": results},
        "\n".join(f"challenge {r['id']}: {'passed' if r['passed'] else 'FAILED'}" for r in results)
        or "no open challenges",
    )
    return ExitStatus.OK if all(r["passed"] for r in results) else ExitStatus.CHAIN_ERROR


# -- rewards ---------------------------------------------------------------------------------------


def _allocation(path: str) -> AllocationTree:
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError("allocation file: a JSON object of host address -> amount (wei)")
    return AllocationTree({h: int(a) for h, a in raw.items()})


def cmd_rewards_fund(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Fund an epoch with ETH or an ERC-20 (--token)."""
    txs = _client(ctx, args).fund_epoch(args.epoch, parse_amount(args.amount), args.token)
    ctx.emit({"txs": [t.to_json() for t in txs]}, "\n".join(_tx_text(t) for t in txs))
    return ExitStatus.OK


def cmd_rewards_sign(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Validator: sign the allocation of an epoch (prints the signature)."""
    tree = _allocation(args.allocation)
    client = _client(ctx, args)
    sig = client.sign_allocation(args.epoch, args.token or ZERO_ADDRESS, tree.root, tree.total)
    out = {
        "signer": client.address,
        "signature": "0x" + sig.hex(),
        "root": "0x" + tree.root.hex(),
        "total": str(tree.total),
    }
    ctx.emit(out, out["signature"])
    return ExitStatus.OK


def cmd_rewards_post(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Post an allocation with validators' signatures (any order; sorted by signer)."""
    tree = _allocation(args.allocation)
    sigs = [bytes.fromhex(s.removeprefix("0x")) for s in args.sig]
    res = _client(ctx, args).post_allocation(
        args.epoch, args.token or ZERO_ADDRESS, tree.root, tree.total, sigs
    )
    ctx.emit(res.to_json(), _tx_text(res))
    return ExitStatus.OK


def cmd_rewards_claim(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Claim a host's reward (default: this account) with a proof from the allocation file."""
    tree = _allocation(args.allocation)
    client = _client(ctx, args)
    host = args.host or client.address
    res = client.claim(
        args.epoch, args.token or ZERO_ADDRESS, host, tree.amount_for(host), tree.proof_for(host)
    )
    ctx.emit({"host": host, "amount": str(tree.amount_for(host)), **res.to_json()}, _tx_text(res))
    return ExitStatus.OK


# -- parser ------------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rpc", help="JSON-RPC URL (default: [chain] rpc in config.toml)")
    p.add_argument("--dev-account", type=int, help="use prefunded dev account N (anvil/embedded)")
    p.add_argument("--passphrase-file", type=Path, help="keystore passphrase file")


def _deploy_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epoch-length", type=int, default=3600, help="reward epoch, seconds")
    p.add_argument("--response-window", type=int, default=600, help="challenge window, seconds")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the chain commands to the ``bcai`` parser."""
    chain = sub.add_parser("chain", help="development chain and contract deployment")
    csub = chain.add_subparsers(dest="chain_command", metavar="ACTION", required=True)
    p = csub.add_parser(
        "up",
        help="start a dev chain (embedded or --anvil), deploy, write config",
        description=f"Note: {EMBEDDED_NOTE}.",
    )
    p.add_argument("--anvil", action="store_true", help="start anvil in the background")
    p.add_argument("--port", type=int, default=0, help="anvil port (default: any free port)")
    p.add_argument("--hardfork", default="prague", choices=["prague", "cancun"])
    _deploy_opts(p)
    p.set_defaults(handler=_guard(cmd_chain_up))
    p = csub.add_parser("deploy", help="deploy the contracts to --rpc and record the addresses")
    _common(p)
    _deploy_opts(p)
    p.set_defaults(handler=_guard(cmd_chain_deploy))
    p = csub.add_parser("status", help="is the chain up; block; contract addresses")
    p.add_argument("--rpc", help="JSON-RPC URL (default: config)")
    p.set_defaults(handler=_guard(cmd_chain_status))
    p = csub.add_parser(
        "attach",
        help="use a chain another node deployed: copy its [chain] table (rpc, addresses)",
    )
    p.add_argument("source", type=Path, help="the other node's data directory")
    p.add_argument("--rpc", help="reach the chain through this URL instead")
    p.set_defaults(handler=_guard(cmd_chain_attach))
    p = csub.add_parser("down", help="stop the anvil started by `chain up --anvil`")
    p.set_defaults(handler=_guard(cmd_chain_down))

    p = sub.add_parser("publish", help="register stored content on chain")
    p.add_argument("root", help="content root (0x...)")
    p.add_argument("--metadata-uri", help="metadata URI recorded with the content")
    _common(p)
    p.set_defaults(handler=_guard(cmd_publish))

    receipts = sub.add_parser("receipts", help="transfer receipts")
    rsub = receipts.add_subparsers(dest="receipts_command", metavar="ACTION", required=True)
    p = rsub.add_parser("submit", help="submit signed receipts (JSON lines) as the provider")
    p.add_argument("file", help="file of receipts, one JSON object per line")
    p.add_argument("--batch", type=int, default=100, help="receipts per transaction")
    _common(p)
    p.set_defaults(handler=_guard(cmd_receipts_submit))

    host = sub.add_parser("host", help="data-availability commitments")
    hsub = host.add_subparsers(dest="host_command", metavar="ACTION", required=True)
    p = hsub.add_parser("commit", help="stake on holding ROOT")
    p.add_argument("root")
    p.add_argument("--stake", required=True, help="amount: wei, or e.g. 0.1eth")
    _common(p)
    p.set_defaults(handler=_guard(cmd_host_commit))
    p = hsub.add_parser("exit", help="request exit from ROOT (--withdraw after the delay)")
    p.add_argument("root")
    p.add_argument("--withdraw", action="store_true", help="withdraw the stake")
    _common(p)
    p.set_defaults(handler=_guard(cmd_host_exit))

    p = sub.add_parser("prove", help="answer open challenges against this node from the store")
    p.add_argument("--root", help="only challenges on this root")
    _common(p)
    p.set_defaults(handler=_guard(cmd_prove))

    rewards = sub.add_parser("rewards", help="hosting rewards: fund, sign, post, claim")
    wsub = rewards.add_subparsers(dest="rewards_command", metavar="ACTION", required=True)
    for name, fn, helptext in (
        ("fund", cmd_rewards_fund, "fund EPOCH with --amount (ETH, or --token ERC-20)"),
        ("sign", cmd_rewards_sign, "validator: sign the allocation of EPOCH"),
        ("post", cmd_rewards_post, "post the allocation of EPOCH with --sig signatures"),
        ("claim", cmd_rewards_claim, "claim from the allocation of EPOCH"),
    ):
        p = wsub.add_parser(name, help=helptext)
        p.add_argument("epoch", type=int)
        p.add_argument("--token", help="ERC-20 address (default: ETH)")
        if name == "fund":
            p.add_argument("--amount", required=True, help="wei, or e.g. 1eth")
        else:
            p.add_argument("--allocation", required=True, help="JSON: host address -> amount (wei)")
        if name == "post":
            p.add_argument(
                "--sig", action="append", default=[], help="validator signature (repeat)"
            )
        if name == "claim":
            p.add_argument("--host", help="host to pay (default: this account)")
        _common(p)
        p.set_defaults(handler=_guard(fn))
