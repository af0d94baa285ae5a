"""Deploy the suite and describe where it lives (``Deployment``).

Order (docs/incentives.md §3): ``ContentRegistry`` -> ``TransferReceipts(registry, epochLength,
minPricePerGiB, feeBps, withdrawDelay)`` -> ``DataAvailability(registry, receipts, Params)`` ->
``HostingRewards(receipts, da, rebateBps, claimWindow)`` -> ``HostDirectory(da)`` (endpoint
records for discovery); then the validators and the quorum, when given, so a fresh deployment
can post allocations at once. A deployment recorded before ``HostDirectory`` existed loads with
``host_directory = None`` (discovery then lists hosts without endpoints).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from node.identity import to_checksum_address

from .backend import ChainBackend
from .contracts import load_artifact
from .errors import DeploymentMissing
from .events import EventDecoder
from .tx import TxResult, send_transaction

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = ["DeployParams", "Deployment", "deploy_suite", "setup_validators"]


@dataclass(frozen=True)
class DeployParams:
    """Constructor parameters of the suite (defaults: /tmp/bcai-interfaces.md, docs §3)."""

    # One proof period = one reward epoch = 4 days (28,800 blocks of 12 s): every commitment
    # is due in every period (dueBps 10,000), so a host that cannot produce half its slot is
    # caught within one period with probability >= 1 - 2^-20, at the gas of one proof per slot
    # per 4 days (docs/incentives.md section 5).
    # TransferReceipts
    epoch_length: int = 4 * 86400  #: seconds per reward epoch
    min_price_per_gib: int = 10**15  #: wei; a receipt must pay at least this per GiB
    receipt_fee_bps: int = 1000  #: share of every receipt payment burnt
    #: seconds between requestWithdrawal and withdraw: > 2 epochs, so every receipt a provider
    #: holds can be cashed first (a receipt is stale after the epoch after its own)
    escrow_withdraw_delay: int = 9 * 86400
    # DataAvailability.Params
    #: per slot commitment; 3e16 (~90 USD) makes abandoning a committed slot (a 50% slash) cost
    #: more than keeping an unprofitable one (docs/simulations.md, `scale`)
    min_stake: int = 3 * 10**16
    challenge_bond: int = 10**15
    #: paid from the reward pool per resolved scheduled challenge: ~5x the challenge's gas
    #: (211k) at 0.05 gwei, so running the validator duty is not a loss
    challenge_reward: int = 5 * 10**13
    response_window: int = 600  #: seconds a host has to answer
    exit_delay: int = 3 * 86400
    period_blocks: int = 28_800  #: proof period, blocks (4 days of 12-s blocks)
    due_bps: int = 10_000  #: share of commitments due per period
    samples: int = 20  #: segments sampled per proof
    fault_slash_bps: int = 100  #: downtime (expired challenge)
    proof_slash_bps: int = 5000  #: deletion evidence (wrong proof) or max faults
    max_faults: int = 3
    storage_rate_per_gib_day: int = 10**13
    storage_fee_bps: int = 1000
    # HostingRewards
    rebate_bps: int = 5000  #: reward cap: share of the fees a host's payments burnt
    claim_window: int = 30 * 86400
    validators: tuple[str, ...] = ()
    quorum: int = 0  #: 0 with validators: all of them

    def da_params(self) -> tuple[Any, ...]:
        """The ``DataAvailability.Params`` tuple, in struct order."""
        return (
            self.min_stake,
            self.challenge_bond,
            self.challenge_reward,
            self.response_window,
            self.exit_delay,
            self.period_blocks,
            self.due_bps,
            self.samples,
            self.fault_slash_bps,
            self.proof_slash_bps,
            self.max_faults,
            self.storage_rate_per_gib_day,
            self.storage_fee_bps,
        )

    def to_dict(self) -> dict[str, Any]:
        """TOML-safe: integers beyond int64 are impossible in TOML, so every int is a string."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if f.name == "validators" else str(value)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeployParams:
        known = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {}
        for k, v in d.items():
            if k not in known:
                continue  # a parameter of an older suite: ignored, not fatal
            kw[k] = tuple(to_checksum_address(a) for a in v) if k == "validators" else int(v)
        return cls(**kw)


@dataclass(frozen=True)
class Deployment:
    """Addresses of the suite on one chain; stored in the ``[chain.deployment]`` config table."""

    chain_id: int
    content_registry: str
    transfer_receipts: str
    data_availability: str
    hosting_rewards: str
    deployer: str
    block: int  #: first block of the deployment (where the indexer starts)
    params: DeployParams = field(default_factory=DeployParams)
    gas: dict[str, int] = field(default_factory=dict)  #: gas used per contract creation
    host_directory: str | None = None  #: ``None``: deployed before HostDirectory existed

    def contracts(self) -> dict[str, str]:
        out = {
            "ContentRegistry": self.content_registry,
            "TransferReceipts": self.transfer_receipts,
            "DataAvailability": self.data_availability,
            "HostingRewards": self.hosting_rewards,
        }
        if self.host_directory is not None:
            out["HostDirectory"] = self.host_directory
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["params"] = self.params.to_dict()
        if self.host_directory is None:
            del d["host_directory"]  # TOML has no null
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Deployment:
        try:
            return cls(
                chain_id=int(d["chain_id"]),
                content_registry=to_checksum_address(d["content_registry"]),
                transfer_receipts=to_checksum_address(d["transfer_receipts"]),
                data_availability=to_checksum_address(d["data_availability"]),
                hosting_rewards=to_checksum_address(d["hosting_rewards"]),
                deployer=to_checksum_address(d["deployer"]),
                block=int(d["block"]),
                params=DeployParams.from_dict(dict(d.get("params", {}))),
                gas={k: int(v) for k, v in d.get("gas", {}).items()},
                host_directory=(
                    to_checksum_address(d["host_directory"]) if d.get("host_directory") else None
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeploymentMissing(f"bad deployment record: {exc}") from None


def _deploy(backend: ChainBackend, deployer: LocalAccount, name: str, *args: Any) -> TxResult:
    art = load_artifact(name)
    factory = backend.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    return send_transaction(backend, deployer, factory.constructor(*args))


def deploy_suite(
    backend: ChainBackend,
    deployer: LocalAccount,
    params: DeployParams | None = None,
) -> Deployment:
    """Deploy the suite in order, then add ``params.validators`` with ``params.quorum``."""
    p = params or DeployParams()
    start = backend.block_number() + 1
    registry = _deploy(backend, deployer, "ContentRegistry")
    assert registry.contract_address
    receipts = _deploy(
        backend,
        deployer,
        "TransferReceipts",
        registry.contract_address,
        p.epoch_length,
        p.min_price_per_gib,
        p.receipt_fee_bps,
        p.escrow_withdraw_delay,
    )
    assert receipts.contract_address
    availability = _deploy(
        backend,
        deployer,
        "DataAvailability",
        registry.contract_address,
        receipts.contract_address,
        p.da_params(),
    )
    assert availability.contract_address
    rewards = _deploy(
        backend,
        deployer,
        "HostingRewards",
        receipts.contract_address,
        availability.contract_address,
        p.rebate_bps,
        p.claim_window,
    )
    assert rewards.contract_address
    directory = _deploy(backend, deployer, "HostDirectory", availability.contract_address)
    assert directory.contract_address
    deployment = Deployment(
        chain_id=backend.chain_id,
        content_registry=registry.contract_address,
        transfer_receipts=receipts.contract_address,
        data_availability=availability.contract_address,
        hosting_rewards=rewards.contract_address,
        deployer=deployer.address,
        block=start,
        params=p,
        gas={
            "ContentRegistry": registry.gas_used,
            "TransferReceipts": receipts.gas_used,
            "DataAvailability": availability.gas_used,
            "HostingRewards": rewards.gas_used,
            "HostDirectory": directory.gas_used,
        },
        host_directory=directory.contract_address,
    )
    if p.validators:
        setup_validators(backend, deployer, deployment, p.validators, p.quorum or len(p.validators))
    return deployment


def setup_validators(
    backend: ChainBackend,
    owner: LocalAccount,
    deployment: Deployment,
    validators: Sequence[str],
    quorum: int,
) -> list[TxResult]:
    """Add ``validators`` to HostingRewards and set the quorum (owner only)."""
    w3: Any = backend.w3
    rewards = w3.eth.contract(
        address=deployment.hosting_rewards, abi=load_artifact("HostingRewards").abi
    )
    decoder = EventDecoder(backend.w3, deployment.contracts())
    out = [
        send_transaction(
            backend, owner, rewards.functions.addValidator(to_checksum_address(v)), decoder=decoder
        )
        for v in validators
    ]
    out.append(
        send_transaction(backend, owner, rewards.functions.setQuorum(quorum), decoder=decoder)
    )
    return out
