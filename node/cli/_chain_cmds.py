"""Chain commands: ``chain up|deploy|status|attach|fund|down``, ``publish``, ``receipts submit``,
``escrow deposit|status|withdraw``, ``host announce|commit|exit|status``, ``prove``,
``rewards fund|sign|post|claim|rollover``.

Which chain: ``--rpc URL`` or the ``[chain]`` table of config.toml (written by ``chain up`` /
``chain deploy``). ``rpc = "embedded"`` means an in-process py-evm chain: it lives only as long
as one process, so it is useful inside ``bcai serve`` / ``bcai demo``; a separate command would
get a fresh, empty chain and its transactions would vanish when it exits, so chain commands
refuse it with a clear error. Across processes use anvil: ``bcai chain up --anvil``.

Which account: ``--dev-account N`` (a prefunded account of anvil or the embedded chain) or the
node identity (keystore passphrase from ``--passphrase-file`` or ``$BCAI_PASSPHRASE``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from eth_utils import is_address, to_checksum_address

from chain.anvil import DEFAULT_ANVIL_PORT, port_free, start_anvil, stop_pid
from chain.backend import ChainBackend, EmbeddedChain, RpcChain
from chain.client import ChainClient, ChallengeStatus
from chain.config import chain_table, load_deployment, read_chain_config, write_chain_config
from chain.deploy import Deployment, DeployParams, deploy_suite, setup_validators
from chain.eip712 import ZERO_ADDRESS
from chain.errors import ChainUsageError
from chain.merkle import AllocationTree
from chain.port import ClientPort
from chain.tx import send_value
from node.app import classify
from node.receipt import SignedReceipt

from ._main import Context, ExitStatus, guard

Handler = Callable[[Context, argparse.Namespace], ExitStatus]

EMBEDDED_NOTE = (
    "an embedded chain lives inside one process: use it within `bcai serve`/`bcai demo`; "
    "across processes start anvil (`bcai chain up --anvil`) or pass --rpc URL"
)
EMBEDDED_THROWAWAY = (
    'the configured chain is rpc = "embedded": a throwaway py-evm chain that would start empty '
    "in this command and vanish with it, so nothing would be recorded. Start a chain that "
    "outlives the command (`bcai chain up --anvil`) or pass --rpc URL"
)
#: What `chain up --anvil` / `chain attach` / `chain fund` give the node's account on a dev chain.
DEV_FUNDING = 100 * 10**18


# -- plumbing ---------------------------------------------------------------------------------


def _usage_errors(ctx: Context, exc: BaseException) -> ExitStatus | None:
    """The chain commands' one addition to :func:`node.app.classify` (which maps every chain,
    receipt, store and identity error, for the CLI and the daemon's API alike): a bad value
    in an argument (an amount, an address, a number) is rejected with ``ValueError``."""
    failure = classify(exc, ctx.data_dir)
    if failure is not None:
        return ctx.fail_with(failure)
    if isinstance(exc, ValueError):
        return ctx.fail(ExitStatus.USAGE, str(exc))
    return None


def _guard(fn: Handler) -> Handler:
    return guard(fn, _usage_errors)


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


def _eth(wei: int) -> str:
    return f"{Decimal(wei) / Decimal(10**18):f} ETH"


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
            # Only a deployment made earlier in this very process is real; a fresh one would
            # be thrown away with the process (and print a success that means nothing).
            raise ChainUsageError(EMBEDDED_THROWAWAY)
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


def _node_address(ctx: Context) -> str | None:
    from node.identity import read_address

    try:
        return read_address(ctx.data_dir)
    except (OSError, ValueError):
        return None


def _fund_from_dev(backend: ChainBackend, address: str, amount: int) -> dict[str, Any] | None:
    """Top ``address`` up to ``amount`` from a prefunded dev account (dev chains only)."""
    accounts = backend.dev_accounts()
    if not accounts:
        return None
    w3: Any = backend.w3
    have = int(w3.eth.get_balance(w3.to_checksum_address(address)))
    if have >= amount:
        return {"address": address, "balance": str(have), "sent": "0"}
    res = send_value(backend, accounts[-1], address, amount - have)
    return {
        "address": address,
        "balance": str(amount),
        "sent": str(amount - have),
        "tx": res.tx_hash,
    }


# -- chain up / deploy / status / attach / fund / down ---------------------------------------


def _params(
    args: argparse.Namespace, validators: tuple[str, ...] = (), quorum: int = 0
) -> DeployParams:
    kw: dict[str, Any] = {"validators": validators, "quorum": quorum}
    for name in ("epoch_length", "response_window", "period_blocks", "exit_delay"):
        value = getattr(args, name, None)
        if value is not None:
            kw[name] = value
    return DeployParams(**kw)


def _validators(
    ctx: Context, args: argparse.Namespace, deployer: str
) -> tuple[tuple[str, ...], int, str]:
    """Who signs allocations: --validator (repeatable) and --quorum, else the node itself with
    quorum 1 (else the deployer, when this data directory has no identity yet)."""
    if args.validator:
        validators = tuple(args.validator)
        return validators, args.quorum or len(validators), "given"
    node = _node_address(ctx)
    if node is not None:
        return (node,), args.quorum or 1, "node"
    return (deployer,), args.quorum or 1, "deployer"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


#: Where `chain up --anvil` keeps the chain between restarts (inside the data directory).
ANVIL_STATE = Path("anvil") / "state.json"


def _anvil_port(ctx: Context, args: argparse.Namespace, old: dict[str, Any]) -> int:
    """--port, else the port recorded in config (attached nodes keep working; refused if
    something else holds it now), else anvil's 8545 if free, else any free port."""
    if args.port is not None:
        return int(args.port)
    url = urlparse(str(old.get("rpc", "")))
    if url.hostname in ("127.0.0.1", "localhost") and url.port:
        if not port_free(url.port):
            raise ChainUsageError(
                f"port {url.port} (recorded in config.toml: nodes attached to this chain use it) "
                "is taken by another process: stop it, or pass --port N (then re-attach nodes)"
            )
        return url.port
    return DEFAULT_ANVIL_PORT if port_free(DEFAULT_ANVIL_PORT) else 0


def _restored_deployment(old: dict[str, Any], backend: ChainBackend) -> Deployment | None:
    """The deployment recorded in config if the (restored) chain still holds its code."""
    if "deployment" not in old:
        return None
    try:
        deployment = Deployment.from_dict(old["deployment"])
    except ChainUsageError:
        return None
    if deployment.chain_id != backend.chain_id or deployment.host_directory is None:
        return None
    w3: Any = backend.w3
    if all(len(w3.eth.get_code(a)) > 0 for a in deployment.contracts().values()):
        return deployment
    return None


def _reconcile_validators(
    backend: ChainBackend, owner: Any, deployment: Deployment, validators: tuple[str, ...], q: int
) -> None:
    """A restored chain keeps its validators; add the ones asked for and set the quorum."""
    client = ChainClient(backend, deployment, owner)
    have = {v.lower() for v in client.validators()}
    missing = tuple(v for v in validators if v.lower() not in have)
    if missing or client.quorum() != q:
        setup_validators(backend, owner, deployment, missing, q)


def cmd_chain_up(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Start a development chain, deploy the suite, write [chain] into config.toml.

    With --anvil: the chain lives in ``<data dir>/anvil/state.json`` and on the port recorded in
    config, so `chain down` + `chain up --anvil` brings back the same chain (contracts,
    balances, commitments, logs) at the same URL; --reset starts it afresh."""
    extra: dict[str, Any] = {"hardfork": args.hardfork}
    restored: Deployment | None = None
    for address in [*args.fund, *args.validator]:  # before anything starts
        if not is_address(address):
            raise ChainUsageError(f"not an address: {address!r} (0x + 40 hex digits)")
    if args.fund and not args.anvil:
        raise ChainUsageError("--fund needs --anvil (the embedded chain is throwaway)")
    if args.anvil:
        old = read_chain_config(ctx.data_dir) or {}
        pid = old.get("anvil_pid")
        running = bool(pid) and _pid_alive(int(pid or 0))
        if running and RpcChain(str(old.get("rpc")), timeout=2).is_up():
            raise ChainUsageError(
                f"the anvil this node started (pid {pid}) still runs at "
                f"{old.get('rpc')}: `bcai chain down` first"
            )
        ctx.data_dir.mkdir(parents=True, exist_ok=True)
        state = ctx.data_dir / ANVIL_STATE
        if args.reset:
            state.unlink(missing_ok=True)
        had_state = state.exists()
        proc = start_anvil(
            port=_anvil_port(ctx, args, old),
            hardfork=args.hardfork,
            log_dir=ctx.data_dir / "anvil",
            detach=True,
            block_time=args.block_time or None,
            state=state,
        )
        backend: ChainBackend = RpcChain(proc.url)
        rpc = proc.url
        extra.update(
            anvil_pid=proc.pid,
            anvil_log=str(proc.log_path),
            anvil_state=str(state),
            block_time=args.block_time,
        )
        if had_state:
            restored = _restored_deployment(old, backend)
    else:
        backend = _backend(ctx, argparse.Namespace(rpc="embedded"))
        rpc = "embedded"
    deployer = backend.dev_accounts()[0]
    validators, quorum, who = _validators(ctx, args, deployer.address)
    if restored is not None:
        deployment = restored
        if args.validator:
            _reconcile_validators(backend, deployer, deployment, validators, quorum)
        validators = tuple(ChainClient(backend, deployment, deployer).validators())
        quorum = ChainClient(backend, deployment, deployer).quorum()
        who = "restored"
    else:
        deployment = deploy_suite(backend, deployer, _params(args, validators, quorum))
    if backend.kind == "embedded":
        ctx.extra["embedded_deployment"] = deployment
    funded: list[dict[str, Any]] = []
    if args.anvil:
        node = _node_address(ctx)
        targets = ([node] if node is not None else []) + list(args.fund)
        seen: set[str] = set()
        for address in targets:
            address = to_checksum_address(address)
            if address not in seen:
                seen.add(address)
                done = _fund_from_dev(backend, address, DEV_FUNDING)
                if done is not None:
                    funded.append(done)
    path = write_chain_config(ctx.data_dir, chain_table(deployment, rpc, **extra))
    out: dict[str, Any] = {
        "rpc": rpc,
        "config": str(path),
        "restored": restored is not None,
        "validators": list(validators),
        "quorum": quorum,
        "validators_from": who,
        "funded": funded,
        **deployment.to_dict(),
    }
    text = f"chain {deployment.chain_id} at {rpc}" + (
        f" (restored from {extra.get('anvil_state')})" if restored is not None else ""
    )
    text += "\n" + "\n".join(f"{name:18} {addr}" for name, addr in deployment.contracts().items())
    text += f"\nvalidators {', '.join(validators)} (quorum {quorum})"
    if args.anvil:
        text += f"\nblocks every {args.block_time} s" if args.block_time else "\nblocks on demand"
    for f in funded:
        text += f"\nfunded {f['address']} to {_eth(int(f['balance']))}"
    if not args.anvil:
        out["warning"] = EMBEDDED_THROWAWAY
        ctx.stderr.write(f"bcai: warning: {EMBEDDED_THROWAWAY}\n")
    ctx.emit(out, text)
    return ExitStatus.OK


def cmd_chain_deploy(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Deploy the suite to --rpc (or the configured chain) and record it in config.toml."""
    backend = _backend(ctx, args)
    if backend.kind == "embedded":
        raise ChainUsageError(EMBEDDED_THROWAWAY)
    account = (
        _account(ctx, args, backend)
        if args.dev_account is not None or not backend.dev_accounts()
        else backend.dev_accounts()[0]
    )
    validators, quorum, _ = _validators(ctx, args, account.address)
    deployment = deploy_suite(backend, account, _params(args, validators, quorum))
    old = read_chain_config(ctx.data_dir) or {}
    keep = {
        k: v
        for k, v in old.items()
        if k in ("hardfork", "anvil_pid", "anvil_log", "anvil_state", "block_time")
    }
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
    table = {k: v for k, v in table.items() if k not in ("anvil_pid", "anvil_log", "anvil_state")}
    if args.rpc:
        table["rpc"] = args.rpc
    if table.get("rpc") == "embedded":
        return ctx.fail(ExitStatus.USAGE, f"{args.source} uses an embedded chain: {EMBEDDED_NOTE}")
    write_chain_config(ctx.data_dir, table)
    funded = None
    node = _node_address(ctx)
    if node is not None and not args.no_fund:
        backend = RpcChain(str(table["rpc"]), timeout=5)
        if backend.is_up():
            funded = _fund_from_dev(backend, node, DEV_FUNDING)
    ctx.emit(
        {"rpc": table["rpc"], "contracts": table.get("contracts", {}), "funded": funded},
        f"attached to {table['rpc']}"
        + (f"\nfunded {node} to {_eth(int(funded['balance']))}" if funded else ""),
    )
    return ExitStatus.OK


def cmd_chain_fund(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Dev chains: top the node's account (or --to) up from a prefunded dev account."""
    backend = _backend(ctx, args)
    if backend.kind == "embedded":
        raise ChainUsageError(EMBEDDED_THROWAWAY)
    to = args.to or _node_address(ctx)
    if to is None:
        raise ChainUsageError("no node identity here (run `bcai init`) and no --to address")
    funded = _fund_from_dev(backend, to, parse_amount(args.amount))
    if funded is None:
        raise ChainUsageError(
            "this chain has no prefunded dev accounts (not anvil): fund it yourself"
        )
    ctx.emit(funded, f"{to}: {_eth(int(funded['balance']))} (sent {_eth(int(funded['sent']))})")
    return ExitStatus.OK


def cmd_chain_status(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Is the chain up, which block, where the contracts are."""
    table = read_chain_config(ctx.data_dir) or {}
    rpc = args.rpc or table.get("rpc", "embedded")
    info: dict[str, Any] = {"rpc": rpc, "contracts": table.get("contracts", {})}
    if rpc == "embedded":
        info.update(up=False, note=EMBEDDED_NOTE, warning=EMBEDDED_THROWAWAY)
        ctx.emit(info, f"rpc embedded (in-process, throwaway)\nnote: {EMBEDDED_NOTE}")
        return ExitStatus.OK
    backend = RpcChain(str(rpc), timeout=3)
    up = backend.is_up()
    info["up"] = up
    if up:
        info.update(chain_id=backend.chain_id, block=backend.block_number())
        code = {n: len(backend.w3.eth.get_code(a)) > 0 for n, a in info["contracts"].items()}
        info["deployed"] = code
        node = _node_address(ctx)
        if node is not None:
            info["account"] = node
            info["balance"] = str(backend.w3.eth.get_balance(to_checksum_address(node)))
    ctx.emit(info, "\n".join(f"{k}: {v}" for k, v in info.items()))
    return ExitStatus.OK if up else ExitStatus.CHAIN_ERROR


def cmd_chain_down(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Stop the anvil that `bcai chain up --anvil` started."""
    table = read_chain_config(ctx.data_dir) or {}
    pid = table.get("anvil_pid")
    if not pid:
        return ctx.fail(ExitStatus.NOT_FOUND, "no anvil recorded in config.toml")
    stopped = stop_pid(int(pid))  # waits until anvil has written its state and freed the port
    table.pop("anvil_pid", None)
    write_chain_config(ctx.data_dir, table)
    ctx.emit(
        {"pid": pid, "stopped": stopped},
        f"anvil {pid} {'stopped' if stopped else 'was not running'}",
    )
    return ExitStatus.OK


# -- content, receipts, escrow, hosting ------------------------------------------------------


def _open_slots(ctx: Context) -> Any:
    from node.store import SlotStore

    return SlotStore.open(ctx.data_dir / "slots")


@contextlib.contextmanager
def _hosting_node(ctx: Context, args: argparse.Namespace) -> Iterator[tuple[Any, Any]]:
    """(node, client) for publish / host commit: the running daemon (it holds the store and
    signs with its unlocked key; client None) or this process's node with a chain client from
    --rpc / --dev-account / config."""
    from node.app import find_daemon, open_node

    from ._store_cmds import passphrase_source

    overrides = getattr(args, "rpc", None) is not None or args.dev_account is not None
    remote = find_daemon(ctx.data_dir)
    if remote is not None:
        with remote:
            if overrides:
                raise ChainUsageError(
                    "a node runs on this data dir and holds its store: drop --rpc/--dev-account "
                    "(the node acts on its configured chain as itself), or stop it first"
                )
            yield remote, None
        return
    client = _client(ctx, args)
    with open_node(ctx.data_dir, passphrase=passphrase_source(ctx, args)) as node:
        yield node, client


def cmd_publish(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Register stored content with its slot layout and size proof in the ContentRegistry."""
    root = _hex32(args.root)
    with _hosting_node(ctx, args) as (node, client):
        kwargs = {"client": client} if client is not None else {}
        out = node.publish(
            root,
            data_shards=args.data_shards,
            slots=args.slots,
            metadata_uri=args.metadata_uri or "",
            **kwargs,
        )
    if out.get("already_registered"):
        text = f"already registered by {out['owner']} with the same size and layout"
    else:
        text = f"published {out['root']}\n{_tx_text_json(out)}"
    ctx.emit(out, text)
    return ExitStatus.OK


def _tx_text_json(out: dict[str, Any]) -> str:
    return f"tx {out.get('tx')} block {out.get('block')} gas {out.get('gas_used')}"


def cmd_receipts_submit(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Submit receipts (JSON lines of SignedReceipt.to_json) where we are the provider."""
    lines = Path(args.file).read_text().splitlines()
    receipts = [SignedReceipt.from_json(line) for line in lines if line.strip()]
    report = _client(ctx, args).submit_receipts(receipts, batch_size=args.batch)
    ctx.emit(
        report.to_json(),
        f"accepted {len(report.accepted)}, rejected {len(report.rejected)}, "
        f"deferred {len(report.deferred)}, gas {report.gas_used}",
    )
    return ExitStatus.OK if not (report.rejected or report.deferred) else ExitStatus.CHAIN_ERROR


def cmd_escrow_deposit(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Prepay receipts: fund this account's escrow (or --for RECEIVER's)."""
    client = _client(ctx, args)
    res = client.deposit(parse_amount(args.amount), args.receiver)
    escrow = client.escrow_of(args.receiver)
    ctx.emit(
        {
            "receiver": args.receiver or client.address,
            "balance": str(escrow.balance),
            **res.to_json(),
        },
        f"escrow {_eth(escrow.balance)}\n{_tx_text(res)}",
    )
    return ExitStatus.OK


def cmd_escrow_status(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Escrow balance, pending withdrawal, and earnings of an account (default: this one)."""
    client = _client(ctx, args)
    who = args.address or client.address
    e = client.escrow_of(who)
    out = {
        "address": who,
        "balance": str(e.balance),
        "requested": str(e.requested),
        "unlock_at": e.unlock_at,
        "earnings": str(client.earnings(who)),
    }
    ctx.emit(
        out,
        f"{who}\nescrow {_eth(e.balance)}"
        + (f", withdrawal of {_eth(e.requested)} from {e.unlock_at}" if e.requested else "")
        + f"\nearnings {_eth(int(out['earnings']))}",
    )
    return ExitStatus.OK


def cmd_escrow_withdraw(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """--request AMOUNT starts the withdrawal delay; without it, pay out a ripe request.
    --earnings pulls the provider earnings instead."""
    client = _client(ctx, args)
    if args.earnings:
        res = client.withdraw_earnings()
    elif args.request is not None:
        res = client.request_withdrawal(parse_amount(args.request))
    else:
        res = client.withdraw_escrow()
    ctx.emit(res.to_json(), _tx_text(res))
    return ExitStatus.OK


def cmd_host_commit(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Build slot J of ROOT from the store, check it against the chain, pin ROOT, stake on it."""
    root = _hex32(args.root)
    stake = parse_amount(args.stake)
    with _hosting_node(ctx, args) as (node, client):
        kwargs = {"client": client} if client is not None else {}
        out = node.host_commit(root, slot=args.slot, stake=stake, **kwargs)
    text = (
        f"committed to slot {out['slot']} of {out['root']} ({out['slot_bytes']} bytes, pinned)\n"
        + _tx_text_json(out)
    )
    endpoint = out.get("endpoint")
    if endpoint is None:
        text += (
            "\nno [network] public_endpoint: receivers cannot find this host (`bcai host announce`)"
        )
    elif "announce_error" in out:
        ctx.stderr.write(
            f"bcai: warning: endpoint not announced ({out['announce_error']}); "
            "retry: bcai host announce\n"
        )
    else:
        announced = out.get("announced")
        text += f"\nendpoint {endpoint}" + (
            f" announced: tx {announced['tx']}" if announced else " (already announced)"
        )
    ctx.emit(out, text)
    return ExitStatus.OK


def _public_endpoint(ctx: Context) -> str | None:
    from node.config import load_config

    return load_config(ctx.data_dir).network.public_endpoint


def cmd_host_announce(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Publish where this node answers (HOST:PORT, default [network] public_endpoint) in the
    HostDirectory, so receivers that know only a root find it; --clear withdraws the record."""
    from node.config import parse_host_port

    if args.clear:
        if args.endpoint:
            raise ChainUsageError("give HOST:PORT or --clear, not both")
        endpoint = ""
    else:
        endpoint = args.endpoint or _public_endpoint(ctx) or ""
        if not endpoint:
            raise ChainUsageError(
                "no endpoint: give HOST:PORT or set [network] public_endpoint in config.toml"
            )
        parse_host_port(endpoint)  # ConfigError: a usage error
    client = _client(ctx, args)
    res = client.announce_if_changed(endpoint)
    shown = endpoint or "(none)"
    if res is None:
        ctx.emit(
            {"address": client.address, "endpoint": endpoint or None, "changed": False},
            f"{client.address} already announces {shown}",
        )
    else:
        ctx.emit(
            {"address": client.address, "endpoint": endpoint or None, "changed": True}
            | res.to_json(),
            f"{client.address} announces {shown}\n{_tx_text(res)}",
        )
    return ExitStatus.OK


def cmd_host_exit(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Request exit (then `host exit --withdraw` after the exit delay)."""
    client = _client(ctx, args)
    root = _hex32(args.root)
    res = (
        client.withdraw(root, args.slot) if args.withdraw else client.request_exit(root, args.slot)
    )
    ctx.emit(res.to_json(), _tx_text(res))
    return ExitStatus.OK


def cmd_host_status(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Commitments of this account, when each was last proven, open challenges, what is owed."""
    client = _client(ctx, args)
    host = args.host or client.address
    now = client.backend.timestamp()
    commitments: list[dict[str, Any]] = []
    for c in client.commitments_of(host):
        commitments.append(
            {
                "root": "0x" + c.root.hex(),
                "slot": c.slot,
                "stake": str(c.stake),
                "last_proven_at": c.last_proven_at,
                "faults": c.faults,
                "exiting_until": c.ready_at or None,
                "due": client.is_due(c.root, c.slot),
            }
        )
    challenges = [
        {
            "id": ch.id,
            "root": "0x" + ch.root.hex(),
            "slot": ch.slot,
            "deadline": ch.deadline,
            "drawn": ch.ready,
            "scheduled": ch.scheduled,
            "expired": ch.deadline < now,
        }
        for ch in client.open_challenges_for(host, include_pending=True)
        if ch.status is ChallengeStatus.OPEN
    ]
    owed = client.owed_to(host)
    out = {
        "host": host,
        "commitments": commitments,
        "open_challenges": challenges,
        "owed": str(owed),
    }
    lines = [f"host {host}"]
    for cj in commitments:
        proven = (
            f"last proven {now - cj['last_proven_at']} s ago"
            if cj["last_proven_at"]
            else "never proven"
        )
        lines.append(
            f"  {cj['root']} slot {cj['slot']}: stake {_eth(int(cj['stake']))}, {proven}, "
            f"faults {cj['faults']}"
        )
    for ch in challenges:
        lines.append(
            f"  challenge {ch['id']} on {ch['root']} slot {ch['slot']}: "
            f"deadline {ch['deadline']}{' EXPIRED' if ch['expired'] else ''}"
        )
    lines.append(f"owed {_eth(owed)}")
    ctx.emit(out, "\n".join(lines))
    return ExitStatus.OK


def cmd_prove(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Answer every drawn open challenge against this node from its slot store."""
    client = _client(ctx, args)
    challenges = client.open_challenges_for(client.address)
    if args.root:
        challenges = [c for c in challenges if c.root == _hex32(args.root)]
    results = []
    with _open_slots(ctx) as slots:
        for ch in challenges:
            assert ch.indices is not None
            answers = slots.prove(ch.root, ch.slot, list(ch.indices))
            res = ClientPort(client).respond(
                ch.id, [seg for seg, _ in answers], [path for _, path in answers]
            )
            passed = bool(res.events_named("ChallengePassed"))
            results.append({"id": ch.id, "slot": ch.slot, "passed": passed, **res.to_json()})
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


def cmd_rewards_rollover(ctx: Context, args: argparse.Namespace) -> ExitStatus:
    """Move what EPOCH did not pay out to the later, unposted epoch --to."""
    res = _client(ctx, args).rollover(args.epoch, args.to, args.token or ZERO_ADDRESS)
    ctx.emit(res.to_json(), _tx_text(res))
    return ExitStatus.OK


# -- parser ------------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rpc", help="JSON-RPC URL (default: [chain] rpc in config.toml)")
    p.add_argument("--dev-account", type=int, help="use prefunded dev account N (anvil/embedded)")
    p.add_argument("--passphrase-file", type=Path, help="keystore passphrase file")


def _deploy_opts(p: argparse.ArgumentParser) -> None:
    d = DeployParams()
    p.add_argument("--epoch-length", type=int, default=d.epoch_length, help="reward epoch, seconds")
    p.add_argument(
        "--response-window", type=int, default=d.response_window, help="challenge window, seconds"
    )
    p.add_argument(
        "--period-blocks", type=int, help=f"proof period, blocks (default {d.period_blocks})"
    )
    p.add_argument("--exit-delay", type=int, help=f"seconds (default {d.exit_delay})")
    p.add_argument(
        "--validator",
        action="append",
        default=[],
        help="validator address (repeat; default: this node's address, quorum 1)",
    )
    p.add_argument("--quorum", type=int, default=0, help="signatures an allocation needs")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the chain commands to the ``bcai`` parser."""
    chain = sub.add_parser("chain", help="development chain and contract deployment")
    csub = chain.add_subparsers(dest="chain_command", metavar="ACTION", required=True)
    p = csub.add_parser(
        "up",
        help="start a dev chain (--anvil; embedded is throwaway), deploy, write config",
        description=f"Note: {EMBEDDED_NOTE}.",
    )
    p.add_argument("--anvil", action="store_true", help="start anvil in the background")
    p.add_argument(
        "--port", type=int, help="anvil port (default: the configured one, else 8545, else any)"
    )
    p.add_argument(
        "--block-time",
        type=int,
        default=1,
        help="anvil mines a block every N seconds (0: only on transactions; challenges then "
        "wait forever for their seed block)",
    )
    p.add_argument("--hardfork", default="prague", choices=["prague", "cancun"])
    p.add_argument(
        "--fund",
        action="append",
        default=[],
        metavar="0xADDRESS",
        help="also give this account 100 ETH on the dev chain (repeat; the node's own always)",
    )
    p.add_argument(
        "--reset",
        action="store_true",
        help=f"forget the saved chain (<data dir>/{ANVIL_STATE}) and deploy afresh",
    )
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
    p.add_argument(
        "--no-fund", action="store_true", help="do not fund this node's account on a dev chain"
    )
    p.set_defaults(handler=_guard(cmd_chain_attach))
    p = csub.add_parser("fund", help="dev chains: fund this node's account from a dev account")
    p.add_argument("--amount", default="100eth", help="balance to top up to (default 100eth)")
    p.add_argument("--to", help="address to fund (default: this node's)")
    p.add_argument("--rpc", help="JSON-RPC URL (default: config)")
    p.set_defaults(handler=_guard(cmd_chain_fund))
    p = csub.add_parser("down", help="stop the anvil started by `chain up --anvil`")
    p.set_defaults(handler=_guard(cmd_chain_down))

    p = sub.add_parser("publish", help="register stored content (size proof, slot layout)")
    p.add_argument("root", help="content root (0x...)")
    p.add_argument("--metadata-uri", help="metadata URI recorded with the content")
    p.add_argument("--data-shards", type=int, default=4, help="K: any K slots rebuild the content")
    p.add_argument("--slots", type=int, default=8, help="N: slots (one host each)")
    _common(p)
    p.set_defaults(handler=_guard(cmd_publish))

    receipts = sub.add_parser("receipts", help="transfer receipts")
    rsub = receipts.add_subparsers(dest="receipts_command", metavar="ACTION", required=True)
    p = rsub.add_parser("submit", help="submit signed receipts (JSON lines) as the provider")
    p.add_argument("file", help="file of receipts, one JSON object per line")
    p.add_argument("--batch", type=int, default=100, help="receipts per transaction")
    _common(p)
    p.set_defaults(handler=_guard(cmd_receipts_submit))

    escrow = sub.add_parser("escrow", help="receipt escrow: prepay what you fetch")
    esub = escrow.add_subparsers(dest="escrow_command", metavar="ACTION", required=True)
    p = esub.add_parser("deposit", help="add AMOUNT to this account's escrow")
    p.add_argument("amount", help="wei, or e.g. 0.1eth")
    p.add_argument("--for", dest="receiver", help="fund another receiver's escrow")
    _common(p)
    p.set_defaults(handler=_guard(cmd_escrow_deposit))
    p = esub.add_parser("status", help="escrow balance, pending withdrawal, earnings")
    p.add_argument("address", nargs="?", help="account (default: this one)")
    _common(p)
    p.set_defaults(handler=_guard(cmd_escrow_status))
    p = esub.add_parser(
        "withdraw", help="--request AMOUNT, then withdraw after the delay; --earnings"
    )
    p.add_argument("--request", help="start a withdrawal of AMOUNT (replaces an earlier one)")
    p.add_argument("--earnings", action="store_true", help="withdraw provider earnings")
    _common(p)
    p.set_defaults(handler=_guard(cmd_escrow_withdraw))

    host = sub.add_parser("host", help="data-availability commitments")
    hsub = host.add_subparsers(dest="host_command", metavar="ACTION", required=True)
    p = hsub.add_parser(
        "announce",
        help="publish HOST:PORT (default [network] public_endpoint) as this host's endpoint",
    )
    p.add_argument("endpoint", nargs="?", metavar="HOST:PORT", help="where peers reach this node")
    p.add_argument("--clear", action="store_true", help="withdraw the endpoint record")
    _common(p)
    p.set_defaults(handler=_guard(cmd_host_announce))
    p = hsub.add_parser(
        "commit",
        help="build slot J of ROOT, check it, pin ROOT, stake on it, announce the endpoint",
    )
    p.add_argument("root")
    p.add_argument("--slot", type=int, required=True, help="slot index (0 .. N-1)")
    p.add_argument("--stake", required=True, help="amount: wei, or e.g. 0.1eth")
    _common(p)
    p.set_defaults(handler=_guard(cmd_host_commit))
    p = hsub.add_parser("exit", help="request exit from a slot (--withdraw after the delay)")
    p.add_argument("root")
    p.add_argument("--slot", type=int, required=True)
    p.add_argument("--withdraw", action="store_true", help="withdraw the stake")
    _common(p)
    p.set_defaults(handler=_guard(cmd_host_exit))
    p = hsub.add_parser("status", help="commitments, last proofs, open challenges, owed")
    p.add_argument("--host", help="address (default: this account)")
    _common(p)
    p.set_defaults(handler=_guard(cmd_host_status))

    p = sub.add_parser("prove", help="answer open challenges against this node from its slots")
    p.add_argument("--root", help="only challenges on this root")
    _common(p)
    p.set_defaults(handler=_guard(cmd_prove))

    rewards = sub.add_parser("rewards", help="hosting rewards: fund, sign, post, claim, rollover")
    wsub = rewards.add_subparsers(dest="rewards_command", metavar="ACTION", required=True)
    for name, fn, helptext in (
        ("fund", cmd_rewards_fund, "fund EPOCH with --amount (ETH, or --token ERC-20)"),
        ("sign", cmd_rewards_sign, "validator: sign the allocation of EPOCH"),
        ("post", cmd_rewards_post, "post the allocation of EPOCH with --sig signatures"),
        ("claim", cmd_rewards_claim, "claim from the allocation of EPOCH"),
        ("rollover", cmd_rewards_rollover, "move what EPOCH left unpaid to epoch --to"),
    ):
        p = wsub.add_parser(name, help=helptext)
        p.add_argument("epoch", type=int)
        p.add_argument("--token", help="ERC-20 address (default: ETH)")
        if name == "fund":
            p.add_argument("--amount", required=True, help="wei, or e.g. 1eth")
        elif name == "rollover":
            p.add_argument("--to", type=int, required=True, help="a later epoch, not yet posted")
        else:
            p.add_argument(
                "--allocation",
                required=True,
                metavar="FILE",
                help="path of a JSON file mapping host address -> amount in wei, e.g. "
                '{"0xabc...": "1000"}',
            )
        if name == "post":
            p.add_argument(
                "--sig", action="append", default=[], help="validator signature (repeat)"
            )
        if name == "claim":
            p.add_argument("--host", help="host to pay (default: this account)")
        _common(p)
        p.set_defaults(handler=_guard(fn))
