"""Who serves a root: the chain's holders, peers learned from others, configured bootstrap peers.

:func:`find_providers` merges three sources, in this order of preference:

1. the chain: ``port.providers(root)``, the hosts that hold a slot of the root now (staked on it)
   with the endpoint each announced (``HostDirectory``); a host that announced nothing is
   skipped; the order among them is shuffled, so that whoever holds the first slots cannot fill
   the list by slot order alone;
2. ``learned`` peers (``host:port/0xADDRESS`` strings other peers told us about);
3. ``bootstrap`` peers (``[network] bootstrap``): the fall-back when the first two give little.

All of it is hostile input: an endpoint record is whatever bytes its host wrote and a learned
peer string is whatever a peer sent. Each entry must parse strictly (``node.config``'s
``parse_host_port``: IPv4, bracketed IPv6 or a DNS name, port 1-65535; an address of 0x + 40 hex
digits); malformed entries are skipped and counted in one log line per call. Entries are
deduplicated by address (one ``PeerAddr`` per identity, the first source wins), our own address
is dropped, and the list is capped at ``limit``. A chain that does not answer costs only its own
entries (logged), never the fallbacks. Whether a peer at an endpoint really is the address it is
listed under is settled by the Noise handshake, which pins the address.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chain.errors import ChainError
from chain.port import ChainPort
from node.config import ConfigError, parse_bootstrap_peer, parse_host_port
from node.log import get_logger
from node.transfer import PeerAddr

__all__ = ["DEFAULT_LIMIT", "discover", "find_providers", "parse_peer"]

log = get_logger("node.discovery")

#: Most providers returned by default (a fetch opens at most this many connections).
DEFAULT_LIMIT = 32
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SHOWN = 3  #: malformed entries quoted in the log line (the rest are counted)


def parse_peer(text: object) -> PeerAddr:
    """A ``PeerAddr`` from ``host:port/0xADDRESS`` (address required), strictly;
    ``ConfigError`` otherwise."""
    host, port, address = parse_bootstrap_peer(text)
    return PeerAddr(host, port, address)


def _from_record(address: object, endpoint: object) -> PeerAddr:
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise ConfigError(f"not an address: {address!r}")
    host, port = parse_host_port(endpoint)
    return PeerAddr(host, port, address)


def find_providers(
    port: ChainPort | None,
    root: bytes,
    *,
    bootstrap: Iterable[str] = (),
    learned: Iterable[str] = (),
    limit: int = DEFAULT_LIMIT,
    own_address: str | None = None,
    rng: random.Random | None = None,
) -> list[PeerAddr]:
    """Up to ``limit`` peers to ask for ``root``: the chain's holders (shuffled), then
    ``learned``, then ``bootstrap``; parsed strictly, deduplicated by address, without
    ``own_address``. ``port=None``: no chain, only the configured and learned peers."""
    if limit <= 0:
        return []
    out: list[PeerAddr] = []
    seen: set[str] = {own_address.lower()} if own_address else set()
    bad: list[str] = []

    def take(source: str, make: Any) -> bool:
        """Add one entry; False once the list is full."""
        try:
            peer = make()
        except ConfigError as exc:
            bad.append(f"{source}: {str(exc)[:120]}")
            return True
        key = str(peer.address).lower()
        if key not in seen:
            seen.add(key)
            out.append(peer)
        return len(out) < limit

    chain: list[tuple[Any, Any]] = []
    if port is not None:
        try:
            chain = list(port.providers(bytes(root)))
        except ChainError as exc:
            log.warning("discovery: chain providers unavailable", error=str(exc)[:200])
    (rng or random.Random()).shuffle(chain)
    unannounced = 0
    full = False
    for entry in chain:
        if not isinstance(entry, tuple) or len(entry) != 2:
            bad.append(f"chain: not an (address, endpoint) pair: {entry!r:.80}")
            continue
        address, endpoint = entry
        if endpoint is None:
            unannounced += 1
            continue
        if not take("chain", lambda a=address, e=endpoint: _from_record(a, e)):
            full = True
            break
    for source, entries in (("learned", learned), ("bootstrap", bootstrap)):
        if full:
            break
        for text in entries:
            if not take(source, lambda t=text: parse_peer(t)):
                full = True
                break
    if bad:
        log.warning(
            "discovery: skipped malformed peers",
            root="0x" + bytes(root).hex(),
            skipped=len(bad),
            examples=bad[:_SHOWN],
        )
    log.debug(
        "discovery",
        root="0x" + bytes(root).hex(),
        found=len(out),
        chain=len(chain),
        unannounced=unannounced,
    )
    return out


def _reading_port(data_dir: Path) -> tuple[ChainPort | None, Any]:
    """A read-only port on the configured JSON-RPC chain (``None`` when there is none or it
    does not answer), and the backend to close. Views need no key: a throwaway account."""
    from eth_account import Account

    from chain.backend import RpcChain
    from chain.client import ChainClient
    from chain.config import load_deployment, read_chain_config
    from chain.port import ClientPort

    table = read_chain_config(data_dir) or {}
    url = table.get("rpc")
    if not url or url == "embedded":
        return None, None
    backend = None
    try:
        deployment, _ = load_deployment(data_dir)
        backend = RpcChain(str(url), timeout=5)
        client = ChainClient(backend, deployment, Account.create())
    except ChainError as exc:
        log.warning("discovery: no chain to ask", error=str(exc)[:200])
        if backend is not None:
            backend.close()
        return None, None
    return ClientPort(client), backend


def discover(node: Any, root: bytes, *, limit: int = DEFAULT_LIMIT) -> list[PeerAddr]:
    """:func:`find_providers` for a ``node.app.Node``: its ``chain_port`` if it has one (else a
    read-only port on its configured chain), its ``learned_peers`` if any, its
    ``[network] bootstrap``, without its own address (read without unlocking the keystore)."""
    from node.identity import read_address

    port = getattr(node, "chain_port", None)
    backend = None
    if port is None:
        port, backend = _reading_port(Path(node.data_dir))
    try:
        try:
            own: str | None = read_address(Path(node.data_dir))
        except (OSError, ValueError):
            own = None
        return find_providers(
            port,
            root,
            bootstrap=list(node.config.network.bootstrap),
            learned=list(getattr(node, "learned_peers", ()) or ()),
            limit=limit,
            own_address=own,
        )
    finally:
        if backend is not None:
            backend.close()
