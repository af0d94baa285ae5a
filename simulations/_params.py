"""Scenario parameters: typed, documented, loaded from TOML.

A scenario file has the tables ``[run]``, ``[network]``, ``[mix]``, ``[behaviour]``,
``[economics]``, ``[gas]``, ``[sybil]`` and optionally ``[sweep]``; every key is optional and
falls back to the default documented on the field below (docs/simulations.md lists them with
their sources). Unknown tables or keys are errors, so a typo cannot silently run the defaults.

Units: money in USD, sizes in GiB, one epoch is one day unless the scenario says otherwise
(only the per-epoch costs depend on it).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ._errors import ScenarioError

STRATEGIES: tuple[str, ...] = ("honest", "deleter", "free_rider", "sybil", "intermittent")


@dataclass(frozen=True)
class Run:
    name: str = "scenario"  #: label used in titles and file names
    seed: int = 1  #: seed of the numpy Generator; same seed, same output, byte for byte
    epochs: int = 60  #: number of epochs simulated


@dataclass(frozen=True)
class Network:
    hosts: int = 300  #: hosts in the network (100-1000 is the intended range)
    roots: int = 500  #: content roots in the catalogue
    roots_per_host: int = 15  #: commitments per host (roots drawn by popularity, no repeats)
    size_median_gib: float = 20.0  #: median root size (log-normal)
    size_sigma: float = 1.2  #: log-normal sigma of root sizes
    size_min_gib: float = 0.1  #: 100 MB model files ...
    size_max_gib: float = 1024.0  #: ... up to 1 TiB data sets
    zipf_s: float = 1.2  #: popularity exponent: request share of rank i is ~ 1 / i**s
    pick_exponent: float = 0.0  #: hosts pick roots with weight popularity**e (0 = uniform)
    clients: int = 40  #: client nodes, each with its own local reputation view
    requests_per_epoch: int = 1000  #: whole-root downloads requested per epoch
    explore: float = 0.1  #: share of requests sent to a uniformly chosen host (exploration)
    #: how a client scores a host it has never downloaded from: "median" (the median score of
    #: the hosts it knows, an optimistic prior) or "ledger" (LocalLedger.score as is: 1.0,
    #: against ~1e7 for a known host, so unknown hosts get only exploration traffic)
    unknown_prior: str = "median"
    k_available: int = 3  #: a root is available when >= k hosts hold all of it and are online
    chunk_mib: int = 1  #: chunk size (receipts and reputation count chunks)
    throughput_median_mbps: float = 400.0  #: median host upload throughput, Mbit/s
    throughput_sigma: float = 0.3  #: log-normal sigma of host throughput


@dataclass(frozen=True)
class Mix:
    """Fractions of hosts per strategy; normalised to sum to 1."""

    honest: float = 0.70
    deleter: float = 0.10
    free_rider: float = 0.05
    sybil: float = 0.05
    intermittent: float = 0.10

    def fractions(self) -> dict[str, float]:
        raw = {s: float(getattr(self, s)) for s in STRATEGIES}
        total = sum(raw.values())
        if total <= 0 or any(v < 0 for v in raw.values()):
            raise ScenarioError("[mix] fractions must be >= 0 and not all zero")
        return {s: v / total for s, v in raw.items()}


@dataclass(frozen=True)
class Behaviour:
    deleter_drop: float = 0.5  #: fraction of its committed bytes a deleter drops (coldest first)
    free_rider_keep: float = 0.0  #: fraction of committed bytes a free-rider keeps (never serves)
    intermittent_offline: float = 0.3  #: probability an intermittent host is offline an epoch


@dataclass(frozen=True)
class Economics:
    eth_usd: float = 3000.0  #: converts stake and gas (ETH) to USD
    gas_price_gwei: float = 0.05  #: an L2-like gas price; L1 is ~100-1000x more
    stake_eth: float = 0.05  #: stake per (host, root) commitment (DataAvailability.minStake)
    slash_bps: int = 1000  #: share of the stake slashed per failed challenge, basis points
    challenge_rate: float = 0.1  #: expected challenges per commitment per epoch (Poisson)
    epoch_budget_usd: float = 600.0  #: HostingRewards funding per epoch
    storage_usd_per_gib_epoch: float = 0.00067  #: ~$0.02 per GiB-month (disk + power + ops)
    bandwidth_usd_per_gib: float = 0.005  #: egress of a dedicated server (~$5/TiB)
    capital_apr: float = 0.05  #: opportunity cost of staked capital per year
    epochs_per_year: float = 365.0  #: converts the APR to a per-epoch cost


@dataclass(frozen=True)
class Gas:
    """Gas per call (measured-looking defaults; see docs/simulations.md)."""

    receipt: int = 15_000  #: per receipt in a batch of 100 (TransferReceipts goal)
    respond: int = 90_000  #: DataAvailability.respond, ~20-level proof
    challenge: int = 95_000  #: DataAvailability.challenge
    slash_expired: int = 60_000  #: DataAvailability.slashExpired
    claim: int = 80_000  #: HostingRewards.claim (one per host per epoch it earns)


@dataclass(frozen=True)
class Sybil:
    """The receipt farmer and what counters it."""

    max_receipt_gib: float = 1024.0  #: bytesServed a validator accepts per receipt (content size)
    max_receipts_per_epoch: int = 20_000  #: block space a farmer can buy per epoch
    fee_usd_per_gib: float = 0.0  #: minimum fee the receiver pays per GiB credited (burnt)
    receiver_cap_gib: float = 0.0  #: validator policy: GiB credited per receiver-epoch (0 = none)
    identity_usd: float = 0.0  #: cost per receiver identity per epoch under the cap policy


@dataclass(frozen=True)
class Axis:
    param: str  #: "section.key", e.g. "economics.slash_bps"
    values: tuple[float, ...]


@dataclass(frozen=True)
class Sweep:
    """Re-run a (smaller) scenario over a grid of one or two parameters."""

    x: Axis
    y: Axis | None = None
    strategy: str = "deleter"  #: whose profit is compared with honest
    overrides: dict[str, Any] = field(default_factory=dict)  #: applied to every grid point


@dataclass(frozen=True)
class Scenario:
    run: Run = Run()
    network: Network = Network()
    mix: Mix = Mix()
    behaviour: Behaviour = Behaviour()
    economics: Economics = Economics()
    gas: Gas = Gas()
    sybil: Sybil = Sybil()
    sweep: Sweep | None = None

    def with_values(self, values: dict[str, Any]) -> Scenario:
        """A copy with ``{"section.key": value}`` overrides applied (validated)."""
        out = self
        for dotted, value in values.items():
            section, _, key = dotted.partition(".")
            part = getattr(out, section, None)
            if section in ("sweep", "") or part is None or not dataclasses.is_dataclass(part):
                raise ScenarioError(f"unknown parameter {dotted!r}")
            out = replace(out, **{section: _build(type(part), {key: value}, section, part)})
        return out

    def validate(self) -> Scenario:
        n, b, e = self.network, self.behaviour, self.economics
        checks = [
            (self.run.epochs >= 1, "run.epochs must be >= 1"),
            (n.hosts >= 1 and n.roots >= 1 and n.clients >= 1, "network sizes must be >= 1"),
            (1 <= n.roots_per_host <= n.roots, "network.roots_per_host must be in [1, roots]"),
            (0 <= n.explore <= 1, "network.explore must be in [0, 1]"),
            (n.unknown_prior in ("median", "ledger"), "network.unknown_prior: median|ledger"),
            (n.k_available >= 1, "network.k_available must be >= 1"),
            (0 <= b.deleter_drop <= 1, "behaviour.deleter_drop must be in [0, 1]"),
            (0 <= b.free_rider_keep <= 1, "behaviour.free_rider_keep must be in [0, 1]"),
            (0 <= b.intermittent_offline <= 1, "behaviour.intermittent_offline in [0, 1]"),
            (0 <= e.slash_bps <= 10_000, "economics.slash_bps must be in [0, 10000]"),
            (e.challenge_rate >= 0, "economics.challenge_rate must be >= 0"),
            (e.epoch_budget_usd >= 0, "economics.epoch_budget_usd must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ScenarioError(msg)
        self.mix.fractions()
        if self.sweep is not None:
            axes = [self.sweep.x] + ([self.sweep.y] if self.sweep.y else [])
            for axis in axes:
                self.with_values({axis.param: axis.values[0]})
            if self.sweep.strategy not in STRATEGIES:
                raise ScenarioError(f"sweep.strategy must be one of {STRATEGIES}")
            self.with_values(self.sweep.overrides)
        return self


def _build(cls: type, data: dict[str, Any], section: str, base: Any = None) -> Any:
    if not isinstance(data, dict):
        raise ScenarioError(f"[{section}] must be a table")
    names = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ScenarioError(f"unknown key(s) in [{section}]: {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        default = getattr(base if base is not None else cls(), key)
        kwargs[key] = _coerce(value, default, f"{section}.{key}")
    return replace(base, **kwargs) if base is not None else cls(**kwargs)


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


def _axis(data: Any, where: str) -> Axis:
    if not isinstance(data, dict) or set(data) != {"param", "values"}:
        raise ScenarioError(f"{where} must be {{param = 'section.key', values = [...]}}")
    values = data["values"]
    if not isinstance(values, list) or not values:
        raise ScenarioError(f"{where}.values must be a non-empty list")
    return Axis(str(data["param"]), tuple(float(v) for v in values))


def _sweep(data: Any) -> Sweep:
    if not isinstance(data, dict):
        raise ScenarioError("[sweep] must be a table")
    unknown = set(data) - {"x", "y", "strategy", "overrides"}
    if unknown or "x" not in data:
        raise ScenarioError("[sweep] takes x (required), y, strategy, overrides")
    overrides = data.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ScenarioError("sweep.overrides must be a table of 'section.key' = value")
    return Sweep(
        x=_axis(data["x"], "sweep.x"),
        y=_axis(data["y"], "sweep.y") if "y" in data else None,
        strategy=str(data.get("strategy", "deleter")),
        overrides=_flatten(overrides),
    )


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in table.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


_SECTIONS: dict[str, type] = {
    "run": Run,
    "network": Network,
    "mix": Mix,
    "behaviour": Behaviour,
    "economics": Economics,
    "gas": Gas,
    "sybil": Sybil,
}


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    """Build and validate a scenario from parsed TOML."""
    unknown = set(data) - set(_SECTIONS) - {"sweep"}
    if unknown:
        raise ScenarioError(f"unknown table(s): {', '.join(sorted(unknown))}")
    parts = {name: _build(cls, data.get(name, {}), name) for name, cls in _SECTIONS.items()}
    sweep = _sweep(data["sweep"]) if "sweep" in data else None
    return Scenario(**parts, sweep=sweep).validate()


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
    out = {name: dataclasses.asdict(getattr(s, name)) for name in _SECTIONS}
    if s.sweep is not None:
        out["sweep"] = dataclasses.asdict(s.sweep)
    return out
