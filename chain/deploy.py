"""Deploy the four contracts and describe where they live (``Deployment``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from .backend import ChainBackend
from .contracts import load_artifact
from .errors import DeploymentMissing
from .events import EventDecoder
from .tx import TxResult, send_transaction

__all__ = ["DeployParams", "Deployment", "deploy_suite"]


@dataclass(frozen=True)
class DeployParams:
    """Constructor parameters of the suite."""

    #: TransferReceipts epoch length, seconds.
    epoch_length: int = 3600
    #: DataAvailability minimum stake per commitment, wei.
    min_stake: int = 10**16
    #: Seconds a host has to answer a challenge.
    response_window: int = 600
    #: Share of the stake slashed per failed challenge, basis points.
    slash_bps: int = 5000
    #: Seconds between requestExit and withdraw.
    exit_delay: int = 3600
    #: HostingRewards validators added at deployment (addresses) and the quorum to set.
    validators: tuple[str, ...] = ()
    quorum: int = 0


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

    def contracts(self) -> dict[str, str]:
        return {
            "ContentRegistry": self.content_registry,
            "TransferReceipts": self.transfer_receipts,
            "DataAvailability": self.data_availability,
            "HostingRewards": self.hosting_rewards,
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["params"]["validators"] = list(self.params.validators)
        # TOML has no integers beyond 64 bits signed; wei values are kept as decimal strings.
        d["params"]["min_stake"] = str(self.params.min_stake)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Deployment:
        try:
            p = dict(d.get("params", {}))
            if "min_stake" in p:
                p["min_stake"] = int(p["min_stake"])
            p["validators"] = tuple(p.get("validators", ()))
            return cls(
                chain_id=int(d["chain_id"]),
                content_registry=to_checksum_address(d["content_registry"]),
                transfer_receipts=to_checksum_address(d["transfer_receipts"]),
                data_availability=to_checksum_address(d["data_availability"]),
                hosting_rewards=to_checksum_address(d["hosting_rewards"]),
                deployer=to_checksum_address(d["deployer"]),
                block=int(d["block"]),
                params=DeployParams(**p),
                gas={k: int(v) for k, v in d.get("gas", {}).items()},
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
    """Deploy ContentRegistry, TransferReceipts, DataAvailability and HostingRewards."""
    p = params or DeployParams()
    start = backend.block_number() + 1
    registry = _deploy(backend, deployer, "ContentRegistry")
    receipts = _deploy(backend, deployer, "TransferReceipts", p.epoch_length)
    availability = _deploy(
        backend,
        deployer,
        "DataAvailability",
        registry.contract_address,
        p.min_stake,
        p.response_window,
        p.slash_bps,
        p.exit_delay,
    )
    rewards = _deploy(backend, deployer, "HostingRewards")
    assert registry.contract_address and receipts.contract_address
    assert availability.contract_address and rewards.contract_address
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
        },
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
