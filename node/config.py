"""Node configuration: ``<data dir>/config.toml``, typed, with a docstring per field.

Tables: ``[node]`` (storage), ``[network]`` (listening, peers, rate limit), ``[chain]``
(RPC endpoint, chain id, contract addresses) and ``[tuning]`` (the auto-tuner's bounds).
Loading is tolerant: unknown tables and unknown keys are kept verbatim in ``extra`` and
written back by :func:`save_config`, so a newer node's settings survive an older node's save.
Sizes accept integers (bytes) or strings such as
``"50 GiB"``, ``"512MiB"``, ``"10M"`` (powers of 1024 for K/M/G/T; ``kB``/``MB``/``GB``/``TB``
are powers of 1000).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from node._fs import atomic_write
from node.content import check_chunk_size

CONFIG_FILE = "config.toml"


class ConfigError(ValueError):
    """The configuration file is unreadable or a value is out of range."""


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tib": 1 << 40,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | str) -> int:
    """Bytes from an integer or a string like ``"50 GiB"``; :class:`ConfigError` otherwise."""
    if isinstance(value, bool):
        raise ConfigError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"size must not be negative: {value}")
        return value
    m = _SIZE_RE.match(str(value))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise ConfigError(f"not a size: {value!r} (examples: 1048576, '512 MiB', '50GiB')")
    return int(float(m.group(1)) * _UNITS[unit])


@dataclass
class NodeConfig:
    """``[node]``: where and how content is stored."""

    store_dir: str = "store"
    """Store directory; relative paths are inside the data directory."""

    cache_quota: int | None = None
    """Bytes of unpinned content to keep before least recently used content is evicted
    (deduplicated chunk bytes; ``None``: no limit). Pinned content is never evicted."""

    chunk_size: int | None = None
    """Chunk size for newly added content: a power of two from 256 KiB to 4 MiB, or ``None``
    (``"auto"``, the default): by the content's size, 1 MiB below 32 MiB, 2 MiB below 64 MiB,
    4 MiB from 64 MiB (:func:`node.content.auto_chunk_size`; a pipe gets 1 MiB)."""

    memory_cache: int = 64 << 20
    """Bytes of verified chunks kept in memory ahead of the disk, e.g. ``"512MiB"`` (default
    64 MiB; 0: off); a hot root served to many peers is read from disk once, and a damaged
    chunk file is found (and quarantined) before it is sent (docs/store.md, "Tiers")."""

    add_cached: int = 256 << 20
    """Bytes at the start of each added content that are written through the page cache, so
    the node serves content it has just added from memory (a gradient published and fetched
    by its peers at once); the rest is written with ``O_DIRECT``, which leaves no page cache
    behind (default 256 MiB; 0: all ``O_DIRECT``; docs/store.md)."""

    cold_dir: str | None = None
    """A second chunk directory (another disk) that least recently used chunks are moved to
    and promoted back from on use; relative paths are inside the data directory."""

    hot_limit: int | None = None
    """Bytes of chunks the store directory keeps before least recently used content is moved
    to ``cold_dir`` (needs ``cold_dir``; ``None``: demote only by hand)."""

    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept verbatim."""


@dataclass
class NetworkConfig:
    """``[network]``: how the node listens and whom it talks to."""

    listen: str = "0.0.0.0:7420"
    """``host:port`` to accept peer connections on (port 0 picks a free port)."""

    peers: list[str] = field(default_factory=list)
    """Peers to connect to at start, as ``host:port`` (optionally ``0xADDRESS@host:port``)."""

    limit_rate: int | None = None
    """Upload and download cap in bytes per second (``None``: unlimited), e.g. ``"10M"``."""

    bootstrap: list[str] = field(default_factory=list)
    """Peers to ask for any content when the chain names no host for it, each
    ``host:port/0xADDRESS`` (the address is required: the handshake pins the peer to it)."""

    public_endpoint: str | None = None
    """``host:port`` at which other nodes reach this one (``listen`` may be ``0.0.0.0``, behind
    NAT, or a port mapping); ``bcai host announce`` and ``bcai host commit`` publish it on
    chain (``None``: announce nothing)."""

    swarm: bool = True
    """Take part in swarms (docs/protocol.md 5.20): a fetch tells its providers where this
    node listens, learns other peers of the root from them and fetches from those too, and
    asks the peers it was given only for chunks no learned peer holds."""

    swarm_peers: int = 16
    """Most connections one fetch opens, given and learned peers together."""

    compress: bool = True
    """Compressed chunks (zstd frames, docs/protocol.md 5.14a): a fetch advertises COMPRESS,
    and ``bcai serve`` sends frames to peers that ask, only where they pay. ``false``: neither
    (a provider on a fast LAN with little spare CPU)."""

    congestion: str = "auto"
    """TCP congestion control of peer connections: ``"auto"`` uses cubic where the handshake's
    round trip is under 1 ms (same host, LAN: pacing there costs CPU and protects no queue) and
    the system's choice elsewhere; ``"system"`` never changes it; or a kernel module name
    (``"cubic"``, ``"bbr"``) for every connection (docs/decisions.md D36)."""

    # Admission control (docs/protocol.md, "Admission control"); same names and defaults as
    # ``node.transport.AdmissionLimits``, which ``AdmissionLimits.from_config`` builds from.

    max_handshakes: int = 64
    """Inbound sockets in the handshake at once (all IPs); the oldest past 1 s is evicted."""

    max_handshakes_per_ip: int = 8
    """Inbound sockets in the handshake at once from one IP."""

    handshake_timeout: float = 5.0
    """Seconds an inbound socket may take from accept to the peer's Hello."""

    max_connections_per_ip: int = 32
    """Authenticated inbound connections from one IP; more are refused with BUSY."""

    max_connections_per_peer: int = 8
    """Authenticated inbound connections from one identity; more are refused with BUSY."""

    connections_high: int = 256
    """Above this many authenticated connections the least useful are trimmed ..."""

    connections_low: int = 224
    """... down to this many (misbehaving first, then never-useful, then idle longest)."""

    upload_buffers: int = 64 << 20
    """Bytes of chunk buffers the provider holds at once across all connections (a chunk
    counts from its read until its send returned; connections wait in turn, FIFO, while the
    budget is spent), so memory stays bounded whatever the peer count, e.g. ``"64MiB"``."""

    upload_queue: int = 1024
    """Chunk indices queued for sending across all connections; a Request past it is answered
    ``Error(BUSY, retry_after_ms)``."""

    upload_queue_per_peer: int = 256
    """Chunk indices queued for one connection (at most ``upload_queue`` in effect); past it
    that peer's Request gets BUSY, so one peer cannot take the node-wide queue from the
    others."""

    max_transfers: int = 4
    """Fetches the node runs at once (through its API or library); more wait their turn, so
    each running one keeps a useful share of the download cap."""

    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept verbatim."""


@dataclass
class ChainConfig:
    """``[chain]``: the EVM chain receipts, availability proofs and rewards go to."""

    rpc: str = "embedded"
    """JSON-RPC URL of an EVM node, or ``"embedded"`` for the in-process py-evm chain."""

    chain_id: int | None = None
    """Expected chain id (``None``: take what the RPC endpoint reports)."""

    contracts: dict[str, str] = field(default_factory=dict)
    """Deployed contract addresses by name (``registry``, ``receipts``, ...)."""

    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept verbatim."""


@dataclass
class TuningConfig:
    """``[tuning]``: the bottleneck analyser's auto-tuner and the range of each knob it sets
    for the next fetch (docs/tuning.md). The analyser's verdicts are shown either way."""

    enabled: bool = True
    """Let the tuner change the knobs (false: verdicts and decisions are shown, nothing set)."""

    min_window: int = 2
    """Smallest initial request window, in chunks, the tuner may give a fetch."""

    max_window: int = 64
    """Largest initial request window, in chunks (the scheduler's window ceiling is 64)."""

    min_put_workers: int = 1
    """Fewest chunks verified and written at once."""

    max_put_workers: int = 12
    """Most chunks verified and written at once (raised when store writes bound a fetch)."""

    min_request_batch: int = 1
    """Smallest request batch (chunks per Request to a busy peer)."""

    max_request_batch: int = 16
    """Largest request batch."""

    horizon: float = 1.0
    """Seconds of its own work a slow peer may hold (sets the window beside a slow peer)."""

    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept verbatim."""


@dataclass
class Config:
    """The whole ``config.toml``."""

    node: NodeConfig = field(default_factory=NodeConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    extra: dict[str, Any] = field(default_factory=dict)
    """Tables this version does not know, kept verbatim."""

    def store_path(self, data_dir: Path) -> Path:
        """The store directory, resolved against the data directory."""
        p = Path(self.node.store_dir).expanduser()
        return p if p.is_absolute() else data_dir / p

    def cold_path(self, data_dir: Path) -> Path | None:
        """The cold tier's directory, resolved against the data directory (``None``: none)."""
        if self.node.cold_dir is None:
            return None
        p = Path(self.node.cold_dir).expanduser()
        return p if p.is_absolute() else data_dir / p


_SIZE_FIELDS = {
    "cache_quota",
    "chunk_size",
    "limit_rate",
    "memory_cache",
    "add_cached",
    "hot_limit",
    "upload_buffers",
}
_TABLES: dict[str, type[Any]] = {
    "node": NodeConfig,
    "network": NetworkConfig,
    "chain": ChainConfig,
    "tuning": TuningConfig,
}


def _table_from(cls: type[Any], raw: dict[str, Any], where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{where}] must be a table")
    known = {f.name for f in dataclasses.fields(cls) if f.name != "extra"}
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            extra[key] = value
            continue
        if key in _SIZE_FIELDS:
            value = None if value in ("", "none", "unlimited", "auto") else parse_size(value)
        kwargs[key] = value
    obj = cls(**kwargs, extra=extra)
    _check(obj, where)
    return obj


_CONGESTION = re.compile(r"auto|system|[a-z0-9_]{1,15}")  # TCP_CA_NAME_MAX is 16 with the NUL


def _check(obj: Any, where: str) -> None:
    if isinstance(obj, NodeConfig):
        try:
            if obj.chunk_size is not None:
                check_chunk_size(obj.chunk_size)
        except ValueError as exc:
            raise ConfigError(f"[{where}] chunk_size: {exc}") from None
        if obj.memory_cache is None:
            obj.memory_cache = 0
        if obj.add_cached is None:
            obj.add_cached = 0
        if obj.cold_dir is not None and (not isinstance(obj.cold_dir, str) or not obj.cold_dir):
            raise ConfigError(f"[{where}] cold_dir must be a directory path (a string)")
        if obj.hot_limit is not None and obj.cold_dir is None:
            raise ConfigError(f"[{where}] hot_limit needs cold_dir (where demoted chunks go)")
    if isinstance(obj, NetworkConfig) and (
        not isinstance(obj.peers, list) or not all(isinstance(p, str) for p in obj.peers)
    ):
        raise ConfigError(f"[{where}] peers must be a list of strings")
    if isinstance(obj, NetworkConfig):
        _check_admission(obj, where)
        _check_discovery(obj, where)
        if not isinstance(obj.swarm, bool):
            raise ConfigError(f"[{where}] swarm must be true or false")
        if not isinstance(obj.compress, bool):
            raise ConfigError(f"[{where}] compress must be true or false")
        if not isinstance(obj.congestion, str) or not _CONGESTION.fullmatch(obj.congestion):
            raise ConfigError(
                f'[{where}] congestion must be "auto", "system" or a congestion control name '
                'such as "cubic" (lower case)'
            )
        if not isinstance(obj.swarm_peers, int) or not 1 <= obj.swarm_peers <= 1024:
            raise ConfigError(f"[{where}] swarm_peers must be an integer in 1..1024")
    if isinstance(obj, TuningConfig):
        _check_tuning(obj, where)
    if isinstance(obj, ChainConfig):
        if obj.chain_id is not None and not isinstance(obj.chain_id, int):
            raise ConfigError(f"[{where}] chain_id must be an integer")
        if not isinstance(obj.contracts, dict):
            raise ConfigError(f"[{where}] contracts must be a table of name = address")


def _check_tuning(t: TuningConfig, where: str) -> None:
    if not isinstance(t.enabled, bool):
        raise ConfigError(f"[{where}] enabled must be true or false")
    for low, high, top in (
        ("min_window", "max_window", 64),
        ("min_put_workers", "max_put_workers", 64),
        ("min_request_batch", "max_request_batch", 64),
    ):
        lo, hi = getattr(t, low), getattr(t, high)
        for key, value in ((low, lo), (high, hi)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ConfigError(f"[{where}] {key} must be an integer in 1..{top}")
        if lo > hi:
            raise ConfigError(f"[{where}] {low} must not exceed {high}")
    h = t.horizon
    if isinstance(h, bool) or not isinstance(h, int | float) or not 0.1 <= h <= 60:
        raise ConfigError(f"[{where}] horizon must be a number of seconds in 0.1..60")


_ADMISSION_INTS = (
    "max_handshakes",
    "max_handshakes_per_ip",
    "max_connections_per_ip",
    "max_connections_per_peer",
    "connections_high",
    "connections_low",
    "max_transfers",
    "upload_buffers",
    "upload_queue",
    "upload_queue_per_peer",
)


def _check_admission(net: NetworkConfig, where: str) -> None:
    for key in _ADMISSION_INTS:
        value = getattr(net, key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"[{where}] {key} must be a positive integer, got {value!r}")
    t = net.handshake_timeout
    if isinstance(t, bool) or not isinstance(t, int | float) or t <= 0:
        raise ConfigError(f"[{where}] handshake_timeout must be a positive number of seconds")
    pairs = (
        ("max_handshakes_per_ip", "max_handshakes"),
        ("max_connections_per_peer", "max_connections_per_ip"),
        ("connections_low", "connections_high"),
    )
    for small, big in pairs:
        if getattr(net, small) > getattr(net, big):
            raise ConfigError(f"[{where}] {small} must not exceed {big}")


_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_PEER_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def parse_host_port(text: object) -> tuple[str, int]:
    """``(host, port)`` from ``"host:port"``, strictly: the host an IPv4 address, a bracketed
    IPv6 address (``[::1]:7420``) or a DNS name (letters, digits, ``-``, dots; at most 253
    bytes), the port 1-65535. :class:`ConfigError` otherwise. Also the parser of endpoint
    records read from the chain (``node/app/_discovery.py``), so nothing else may pass."""
    if not isinstance(text, str) or not text.isascii() or len(text) > 300:
        raise ConfigError(f"not host:port: {text!r}")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or len(port) > 5 or not 1 <= int(port) <= 65535:
        raise ConfigError(f"not host:port (port 1-65535): {text!r}")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ConfigError(f"not an IPv6 address in {text!r}") from None
        return host[1:-1], int(port)
    try:
        ipaddress.IPv4Address(host)
        return host, int(port)
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise ConfigError(f"not host:port (host: IP address or DNS name): {text!r}")
    if labels[-1].isdigit():  # "1.2.3" or "999.1.1.1": a malformed address, not a name
        raise ConfigError(f"not host:port (malformed IPv4 address): {text!r}")
    return host, int(port)


def parse_bootstrap_peer(text: object) -> tuple[str, int, str]:
    """``(host, port, address)`` from ``"host:port/0xADDRESS"`` (:func:`parse_host_port`, then
    0x + 40 hex digits); :class:`ConfigError` otherwise."""
    if not isinstance(text, str):
        raise ConfigError(f"not host:port/0xADDRESS: {text!r}")
    hostport, sep, address = text.partition("/")
    if not sep or not _PEER_ADDRESS.fullmatch(address):
        raise ConfigError(f"not host:port/0xADDRESS (0x + 40 hex digits): {text!r}")
    host, port = parse_host_port(hostport)
    return host, port, address


def _check_discovery(net: NetworkConfig, where: str) -> None:
    if not isinstance(net.bootstrap, list):
        raise ConfigError(f'[{where}] bootstrap must be a list of "host:port/0xADDRESS"')
    for entry in net.bootstrap:
        try:
            parse_bootstrap_peer(entry)
        except ConfigError as exc:
            raise ConfigError(f"[{where}] bootstrap: {exc}") from None
    if net.public_endpoint is not None:
        try:
            parse_host_port(net.public_endpoint)
        except ConfigError as exc:
            raise ConfigError(f"[{where}] public_endpoint: {exc}") from None
        if len(net.public_endpoint) > 128:
            raise ConfigError(f"[{where}] public_endpoint: longer than 128 bytes (the chain cap)")


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build a :class:`Config` from parsed TOML; unknown tables go to ``extra``."""
    cfg = Config()
    for name, value in raw.items():
        if name in _TABLES:
            setattr(cfg, name, _table_from(_TABLES[name], value, name))
        else:
            cfg.extra[name] = value
    return cfg


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The TOML document for ``cfg`` (``None`` values are omitted; TOML has no null)."""
    out: dict[str, Any] = {}
    for name in _TABLES:
        table = getattr(cfg, name)
        d = {
            f.name: getattr(table, f.name)
            for f in dataclasses.fields(table)
            if f.name != "extra" and getattr(table, f.name) is not None
        }
        d.update(table.extra)
        out[name] = d
    out.update(cfg.extra)
    return out


def load_config(data_dir: Path) -> Config:
    """Read ``<data dir>/config.toml``; defaults when it does not exist."""
    path = Path(data_dir) / CONFIG_FILE
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        return Config()
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config_from_dict(raw)


def save_config(data_dir: Path, cfg: Config) -> Path:
    """Write ``config.toml`` atomically (temp file, fsync, rename)."""
    path = Path(data_dir) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, tomli_w.dumps(config_to_dict(cfg)).encode())
    return path
