"""Scenario parameters: typed, documented, loaded from TOML.

A scenario file has the tables ``[run]``, ``[mix]``, ``[protocol]``, ``[market]``, ``[gas]``
and ``[behaviour]``; every key is optional. ``[protocol]`` holds only *overrides* of the
deployment defaults, which come from the product (``chain.deploy.DeployParams`` and
``node.content``, see :mod:`simulations._product`): a scenario that sets nothing there runs the
contracts as ``bcai chain deploy`` deploys them. Everything else (prices of disks, bandwidth,
gas and ETH, demand) is the market the protocol lives in; the defaults are below, each with its
source. Unknown tables or keys are errors, so a typo cannot silently run the defaults.

Money: protocol values in wei (as the contracts), market costs in USD, converted at
``market.eth_usd``. One epoch is ``protocol.epoch_length`` seconds (4 days by default). Market
quantities (demand, the subsidy budget, the ring's fake traffic) are per *day*: they belong to
the market, not to the protocol's epoch, so changing ``epoch_length`` changes how often the
protocol settles, not how much is downloaded or funded per day.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ._errors import ScenarioError
from ._product import PROTOCOL_KEYS
from ._strategies import NAMES


@dataclass(frozen=True)
class Run:
    name: str = "scenario"  #: label used in titles and file names
    seed: int = 1  #: first seed; seed i of a run is ``seed + i`` (same seed, same numbers)
    seeds: int = 10  #: independent runs; the 95% intervals are across them
    epochs: int = 30  #: epochs simulated
    hosts: int = 200  #: hosts in the network
    slots_per_host: int = 4  #: slots each host commits to (one per root, distinct roots)


@dataclass(frozen=True)
class Market:
    eth_usd: float = 3000.0  #: converts wei to USD
    gas_price_gwei: float = 0.05  #: an L2's price; on L1 (10-50 gwei) multiply gas costs by ~500
    block_seconds: float = 12.0  #: block time; a proof period is periodBlocks blocks
    #: what receivers pay per GiB, as a multiple of minPricePerGiB (1 = the floor)
    price_multiple: float = 1.0
    #: mean GiB downloaded per committed slot per day (sets the network's total demand)
    demand_gib_per_slot_day: float = 0.5
    #: a download request fetches this many GiB (a range of the content; receivers rarely pull
    #: a whole data set at once), so a root's GiB per epoch is Poisson in these units
    request_gib: float = 1.0
    zipf_s: float = 0.8  #: popularity: downloads of the root of rank i are ~ 1 / i**s
    root_gib_median: float = 40.0  #: content size, log-normal (a slot is 1/K of it)
    root_gib_sigma: float = 1.0
    root_gib_min: float = 0.5
    root_gib_max: float = 2048.0
    #: disk + power + operations, ~0.02 USD per GiB-month (2025 dedicated-server prices)
    storage_usd_per_gib_day: float = 0.00067
    bandwidth_usd_per_gib: float = 0.005  #: egress of a dedicated server (~5 USD per TiB)
    capital_apr: float = 0.05  #: opportunity cost of staked ETH per year
    #: HostingRewards funding per host per day, ETH (the protocol's subsidy budget; each epoch's
    #: budget is this times the epoch's days)
    rewards_eth_per_host_day: float = 1e-4
    #: probability an honest host is offline for a whole proof period (maintenance, outages)
    honest_offline: float = 0.01
    receipt_gib: float = 1.0  #: GiB per receipt a provider submits (cumulative cheques)
    #: 1: a host keeps the plain content it serves next to its slot (``bcai serve`` keeps the
    #: root in its Store and the slot in its SlotStore), so it stores slot + content and an
    #: outsourcer can rebuild a sampled row from any one host's copy; 0: hosts keep only slots
    #: (serving from K slots) and an outsourcer needs K other slots per row
    serving_copy: int = 1
    #: bytes an outsourcer downloads per sampled row from each source; 0 = the transfer
    #: protocol's chunk size (node.content.DEFAULT_CHUNK_SIZE), the unit a receiver pays for
    fetch_unit_bytes: int = 0
    fetch_mbps: float = 200.0  #: an outsourcer's download throughput, Mbit/s


@dataclass(frozen=True)
class Gas:
    """Gas per transaction at Cancun calldata pricing, as measured by ``--evm`` on py-evm
    (``python -m simulations run evm-small --evm``; docs/simulations.md has the table)."""

    #: DataAvailability.respond = respond_base + S * (respond_per_sample + levels *
    #: respond_per_level), levels = ceil(log2(rows)) of the slot's tree: per sample 4096 bytes
    #: of calldata (16 gas per non-zero byte: 65.5k), its leaf hash and keccak draw; per level
    #: of its audit path 32 bytes of calldata and a SHA-256 precompile call. Fitted to --evm
    #: (1.56M at 3 levels) and the forge measurement in docs/contracts.md (2.02M for a 1 TiB
    #: slot, 26 levels); a 10 GiB slot (22 levels) costs 1.93M. Prague's EIP-7623 floor (40 gas
    #: per non-zero calldata byte) makes it ~4M.
    respond_base: int = 60_000
    respond_per_sample: int = 71_700
    respond_per_level: int = 1_000
    commit: int = 163_000  #: DataAvailability.commit (slot-root proof, stake), once per slot
    challenge: int = 180_000  #: DataAvailability.challenge (bond, parameter snapshot, event)
    slash_expired: int = 81_000  #: DataAvailability.slashExpired
    receipt: int = 34_000  #: per receipt in a submitBatch (EIP-712 recovery, 3 SSTOREs, event)
    receipt_batch: int = 120_000  #: per submitBatch (one per host and period with receipts)
    claim: int = 86_000  #: HostingRewards.claim (Merkle proof, one per host and epoch paid)
    withdraw: int = 31_000  #: withdrawOwed / withdrawEarnings, once per host and epoch


@dataclass(frozen=True)
class Behaviour:
    #: fake GiB the sybil ring's receivers pay each ring provider for, per day
    ring_fake_gib_per_host_day: float = 50.0
    #: ad-hoc challenges a griefer sends per proof period (against random honest slots)
    grief_per_host_period: float = 1.0


@dataclass(frozen=True)
class Scenario:
    run: Run = Run()
    mix: dict[str, float] = field(default_factory=lambda: {"honest": 1.0})
    protocol: dict[str, int] = field(default_factory=dict)  #: overrides of the defaults only
    market: Market = Market()
    gas: Gas = Gas()
    behaviour: Behaviour = Behaviour()

    def with_values(self, values: dict[str, Any]) -> Scenario:
        """A copy with ``{"section.key": value}`` overrides applied."""
        out = self
        for dotted, value in values.items():
            section, _, key = dotted.partition(".")
            if section == "mix":
                out = replace(out, mix={**out.mix, key: float(value)})
            elif section == "protocol":
                out = replace(out, protocol={**out.protocol, **_protocol({key: value})})
            elif section in _SECTIONS:
                part = getattr(out, section)
                out = replace(out, **{section: _build(type(part), {key: value}, section, part)})
            else:
                raise ScenarioError(f"unknown parameter {dotted!r}")
        return out.validate()

    def fractions(self) -> dict[str, float]:
        total = sum(self.mix.values())
        return {k: v / total for k, v in self.mix.items() if v > 0}

    def host_counts(self) -> dict[str, int]:
        """Hosts per strategy: largest remainders of ``hosts * fraction``, ties to honest."""
        hosts = self.run.hosts
        frac = self.fractions()
        raw = {k: hosts * f for k, f in frac.items()}
        counts = {k: int(v) for k, v in raw.items()}
        rest = hosts - sum(counts.values())
        order = sorted(raw, key=lambda k: (-(raw[k] - counts[k]), k != "honest", k))
        for k in order[:rest]:
            counts[k] += 1
        return {k: counts[k] for k in NAMES if counts.get(k, 0) > 0}

    def validate(self) -> Scenario:
        r, m = self.run, self.market
        checks = [
            (r.epochs >= 1, "run.epochs must be >= 1"),
            (1 <= r.seeds <= 1000, "run.seeds must be in [1, 1000]"),
            (r.slots_per_host >= 1, "run.slots_per_host must be >= 1"),
            (m.eth_usd > 0 and m.gas_price_gwei >= 0, "market.eth_usd > 0, gas_price_gwei >= 0"),
            (m.block_seconds > 0, "market.block_seconds must be > 0"),
            (m.price_multiple >= 1, "market.price_multiple must be >= 1 (the contract floor)"),
            (0 <= m.honest_offline < 1, "market.honest_offline must be in [0, 1)"),
            (m.receipt_gib > 0 and m.fetch_mbps > 0, "market.receipt_gib, fetch_mbps > 0"),
            (m.request_gib > 0, "market.request_gib must be > 0"),
            (m.serving_copy in (0, 1), "market.serving_copy must be 0 or 1"),
            (m.fetch_unit_bytes >= 0, "market.fetch_unit_bytes must be >= 0"),
            (
                0 < m.root_gib_min <= m.root_gib_median <= m.root_gib_max,
                "market: root_gib_min <= root_gib_median <= root_gib_max",
            ),
            (m.demand_gib_per_slot_day >= 0, "market.demand_gib_per_slot_day >= 0"),
            (m.rewards_eth_per_host_day >= 0, "market.rewards_eth_per_host_day >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ScenarioError(msg)
        unknown = set(self.mix) - set(NAMES)
        if unknown:
            raise ScenarioError(f"unknown strateg(ies) in [mix]: {', '.join(sorted(unknown))}")
        if any(v < 0 for v in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise ScenarioError("[mix] fractions must be >= 0 and not all zero")
        if "honest" not in self.fractions():
            raise ScenarioError("[mix] needs honest hosts (every result is relative to them)")
        if self.run.hosts < 8 or self.run.hosts < self.run.slots_per_host:
            raise ScenarioError("run.hosts must be >= 8 (one host per slot of a root)")
        return self


def _build(cls: type, data: dict[str, Any], section: str, base: Any = None) -> Any:
    if not isinstance(data, dict):
        raise ScenarioError(f"[{section}] must be a table")
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ScenarioError(f"unknown key(s) in [{section}]: {', '.join(sorted(unknown))}")
    base = base if base is not None else cls()
    kwargs = {k: _coerce(v, getattr(base, k), f"{section}.{k}") for k, v in data.items()}
    return replace(base, **kwargs)


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool) or isinstance(value, bool):
        raise ScenarioError(f"{where}: booleans are not parameters")
    if isinstance(default, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ScenarioError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if not isinstance(value, int | float):
            raise ScenarioError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ScenarioError(f"{where}: expected a string, got {value!r}")
        return value
    raise ScenarioError(f"{where}: unsupported parameter")  # pragma: no cover


def _protocol(data: Any) -> dict[str, int]:
    if not isinstance(data, dict):
        raise ScenarioError("[protocol] must be a table")
    out: dict[str, int] = {}
    for key, value in data.items():
        if key not in PROTOCOL_KEYS:
            raise ScenarioError(
                f"unknown key in [protocol]: {key} (known: {', '.join(PROTOCOL_KEYS)})"
            )
        out[key] = _coerce(value, 0, f"protocol.{key}")
        if out[key] < 0:
            raise ScenarioError(f"protocol.{key} must be >= 0")
    return out


def _mix(data: Any) -> dict[str, float]:
    if not isinstance(data, dict):
        raise ScenarioError("[mix] must be a table")
    return {str(k): _coerce(v, 0.0, f"mix.{k}") for k, v in data.items()}


_SECTIONS: dict[str, type] = {"run": Run, "market": Market, "gas": Gas, "behaviour": Behaviour}


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    """Build and validate a scenario from parsed TOML."""
    unknown = set(data) - set(_SECTIONS) - {"mix", "protocol"}
    if unknown:
        raise ScenarioError(f"unknown table(s): {', '.join(sorted(unknown))}")
    parts = {name: _build(cls, data.get(name, {}), name) for name, cls in _SECTIONS.items()}
    mix = _mix(data["mix"]) if "mix" in data else {"honest": 1.0}
    return Scenario(mix=mix, protocol=_protocol(data.get("protocol", {})), **parts).validate()


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario TOML file (raises :class:`ScenarioError` on any problem)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    return scenario_from_dict(data)


def scenario_to_dict(s: Scenario) -> dict[str, Any]:
    """Plain-data form, written into summary.json so a result carries its parameters."""
    out: dict[str, Any] = {name: dataclasses.asdict(getattr(s, name)) for name in _SECTIONS}
    out["mix"] = dict(s.mix)
    out["protocol_overrides"] = dict(s.protocol)
    return out
