"""``ChainClient``: typed wrappers over the suite's contracts, for one account.

Every state-changing call returns a ``TxResult`` (hash, gas used from the receipt, block, decoded
events). Reverts from either backend arrive as ``ChainRevert`` subclasses named after the
contract's custom error (``chain.errors.NonceUsed`` is ``revert_class("NonceUsed")``); a node
that does not answer raises ``ChainUnavailable``.

Struct return values are decoded by the component names of the ABI (``_fields``), so a field
added to a struct does not shift the others.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from node.content import SEGMENT_SIZE, SizeProof
from node.identity import to_checksum_address
from node.log import get_logger
from node.receipt import ReceiptDomain, ReceiptError, SignedReceipt, receipt_digest, verify_receipt

from .backend import ChainBackend
from .contracts import load_artifact
from .deploy import Deployment
from .eip712 import ZERO_ADDRESS, RewardsDomain, recover_allocation_signer, sign_allocation
from .errors import ChainUsageError
from .events import ChainEvent, EventDecoder
from .reverts import map_errors
from .tx import TxResult, send_transaction

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = [
    "BLOCKHASH_WINDOW",
    "DEFAULT_BATCH",
    "MAX_ENDPOINT_LENGTH",
    "Availability",
    "ChainClient",
    "Challenge",
    "ChallengeStatus",
    "Commitment",
    "ContentInfo",
    "Escrow",
    "FailReason",
    "Layout",
    "RejectReason",
    "RejectedReceipt",
    "SubmitReport",
]

log = get_logger("chain.client")

#: Receipts per submitBatch transaction (the gas goal is stated for 100).
DEFAULT_BATCH = 100
#: Blocks whose hash the EVM's BLOCKHASH still returns (a challenge's seed must be in reach).
BLOCKHASH_WINDOW = 256
#: Seconds a receipt may be ahead of the chain's clock before it waits for a later round.
CLOCK_SLACK = 2
GIB = 1 << 30
#: ``HostDirectory.MAX_ENDPOINT_LENGTH``: bytes of an endpoint record.
MAX_ENDPOINT_LENGTH = 128

_ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "approve",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "account", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
]


class ChallengeStatus(enum.IntEnum):
    NONE = 0
    OPEN = 1
    PASSED = 2
    FAILED = 3
    VOID = 4  #: the seed block's hash left the 256-block window before the answer: no slash


class FailReason(enum.IntEnum):
    NONE = 0
    EXPIRED = 1  #: no answer in time: a fault (downtime)
    WRONG_LENGTH = 2  #: deletion evidence
    INVALID_PROOF = 3  #: deletion evidence


class RejectReason(enum.IntEnum):
    """``TransferReceipts.RejectReason``: why ``submitBatch`` skipped a receipt (in check order)."""

    NONE = 0
    NOT_PROVIDER = 1
    INVALID_SIGNATURE = 2
    NONCE_USED = 3
    ISSUED_IN_FUTURE = 4
    STALE = 5
    ROOT_NOT_REGISTERED = 6
    EMPTY = 7
    EXCEEDS_SIZE = 8
    UNDERPAID = 9
    INSUFFICIENT_ESCROW = 10

    @property
    def label(self) -> str:
        """The Solidity name (``NotProvider``...), used as the reason string everywhere."""
        return "".join(part.capitalize() for part in self.name.split("_"))


#: Reasons that may pass later (the chain's clock moves on, the receiver tops up its escrow).
DEFERRABLE = frozenset({"IssuedInFuture", "InsufficientEscrow"})


@dataclass(frozen=True)
class ContentInfo:
    root: bytes
    owner: str
    size: int
    chunk_size: int
    segment_size: int
    data_shards: int
    slot_count: int
    slots_root: bytes
    registered_at: int
    metadata_uri: str


@dataclass(frozen=True)
class Layout:
    """``ContentRegistry.layoutOf``: the registered size and slot geometry of a root."""

    size: int
    data_shards: int
    slot_count: int
    slots_root: bytes
    rows: int


@dataclass(frozen=True)
class Escrow:
    balance: int
    requested: int
    unlock_at: int


@dataclass(frozen=True)
class Commitment:
    """``DataAvailability.commitmentOf(root, slot)``; ``host`` is the zero address if free."""

    root: bytes
    slot: int
    host: str
    stake: int
    slot_root: bytes
    last_proven_at: int
    faults: int
    ready_at: int  #: exit time (0 while active)
    terminated: bool = False  #: forced out (deletion evidence or too many faults)
    open_challenge: int = 0
    challenged_period: int = 0  #: period of the last challenge plus one (0: never)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def taken(self) -> bool:
        return self.host != ZERO_ADDRESS


@dataclass(frozen=True)
class Challenge:
    """A data-availability challenge of one slot.

    The samples are drawn from the hash of ``seed_block`` (the block after the challenge's), so
    ``indices`` is ``None`` until that block is mined and followed by one more (and again once
    its hash is older than 256 blocks).
    """

    id: int
    host: str
    root: bytes
    slot: int
    seed_block: int
    deadline: int
    scheduled: bool
    indices: tuple[int, ...] | None
    status: ChallengeStatus = ChallengeStatus.OPEN
    challenger: str = ZERO_ADDRESS

    @property
    def ready(self) -> bool:
        """Whether the samples are drawn (a ``respond`` sent now can be judged)."""
        return self.indices is not None


@dataclass(frozen=True)
class Availability:
    hosts: int
    last_proven_at: int


class RejectedReceipt(NamedTuple):
    """A receipt and why it was not credited (a tuple ``(receipt, reason)``)."""

    receipt: SignedReceipt
    reason: str  #: a RejectReason label, "DuplicateNonce" or "NoOutcome"


@dataclass
class SubmitReport:
    """Outcome of ``submit_receipts``, per receipt.

    ``accepted``: credited on chain (by this call, or already before: crash reconciliation);
    ``rejected``: will never be credited; ``deferred``: may pass later (``IssuedInFuture``,
    ``InsufficientEscrow``), try again.
    """

    accepted: list[SignedReceipt] = field(default_factory=list)
    rejected: list[RejectedReceipt] = field(default_factory=list)
    deferred: list[RejectedReceipt] = field(default_factory=list)
    txs: list[TxResult] = field(default_factory=list)

    @property
    def tx_hash(self) -> str | None:
        """The last batch transaction (``None`` if nothing was sent)."""
        return self.txs[-1].tx_hash if self.txs else None

    @property
    def gas_used(self) -> int:
        return sum(t.gas_used for t in self.txs)

    def to_json(self) -> dict[str, Any]:
        def show(items: list[RejectedReceipt]) -> list[dict[str, Any]]:
            return [
                {
                    "nonce": r.receipt.receipt.nonce,
                    "receiver": r.receipt.receipt.receiver,
                    "reason": r.reason,
                }
                for r in items
            ]

        return {
            "accepted": len(self.accepted),
            "rejected": show(self.rejected),
            "deferred": show(self.deferred),
            "txs": [t.to_json() for t in self.txs],
            "gas_used": self.gas_used,
        }


def _root(root: bytes | str) -> bytes:
    if isinstance(root, str):
        raw = bytes.fromhex(root[2:] if root.startswith("0x") else root)
    else:
        raw = bytes(root)
    if len(raw) != 32:
        raise ChainUsageError(f"a content root is 32 bytes, got {len(raw)}")
    return raw


def _abi_fn(abi: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any]:
    for item in abi:
        if item.get("type") == "function" and item.get("name") == name:
            return item
    raise ChainUsageError(f"no function {name} in the ABI")


def _fields(abi: Sequence[Mapping[str, Any]], fn_name: str, value: Any) -> dict[str, Any]:
    """A view's return value as ``{component name: value}`` (one struct, or named outputs)."""
    outputs = _abi_fn(abi, fn_name)["outputs"]
    if len(outputs) == 1 and str(outputs[0]["type"]) == "tuple":
        names = [c["name"] for c in outputs[0]["components"]]
    elif len(outputs) == 1:
        return {outputs[0].get("name") or "value": value}
    else:
        names = [o.get("name") or f"arg{i}" for i, o in enumerate(outputs)]
    return dict(zip(names, value, strict=True))


def _pick(d: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    for n in names:
        if n in d:
            return d[n]
    return default


class ChainClient:
    """Talks to a deployed suite as ``account``."""

    def __init__(
        self, backend: ChainBackend, deployment: Deployment, account: LocalAccount
    ) -> None:
        if deployment.chain_id != backend.chain_id:
            raise ChainUsageError(
                f"deployment is for chain {deployment.chain_id}, backend is {backend.chain_id}"
            )
        self.backend = backend
        self.deployment = deployment
        self.account = account
        w3: Any = backend.w3
        self.registry = w3.eth.contract(
            address=deployment.content_registry, abi=load_artifact("ContentRegistry").abi
        )
        self.receipts = w3.eth.contract(
            address=deployment.transfer_receipts, abi=load_artifact("TransferReceipts").abi
        )
        self.da = w3.eth.contract(
            address=deployment.data_availability, abi=load_artifact("DataAvailability").abi
        )
        self.rewards = w3.eth.contract(
            address=deployment.hosting_rewards, abi=load_artifact("HostingRewards").abi
        )
        #: ``None`` for a deployment made before HostDirectory existed (no endpoint records).
        self.directory = (
            w3.eth.contract(
                address=deployment.host_directory, abi=load_artifact("HostDirectory").abi
            )
            if deployment.host_directory is not None
            else None
        )
        self.decoder = EventDecoder(w3, deployment.contracts())
        self._immutables: dict[str, int] = {}
        self._closed: set[int] = set()  #: challenge ids known to be settled (never reopen)

    @property
    def address(self) -> str:
        return str(self.account.address)

    def as_account(self, account: LocalAccount) -> ChainClient:
        """The same client acting as another account (shares the decoder and contracts)."""
        other = object.__new__(ChainClient)
        other.__dict__.update(self.__dict__)
        other.account = account
        other._closed = set()
        return other

    def _tx(self, fn: Any, value: int = 0) -> TxResult:
        return send_transaction(self.backend, self.account, fn, value=value, decoder=self.decoder)

    def _view(self, fn: Any) -> Any:
        with map_errors():
            return fn.call({"from": self.address})

    def _struct(self, contract: Any, fn_name: str, *args: Any) -> dict[str, Any]:
        value = self._view(getattr(contract.functions, fn_name)(*args))
        return _fields(contract.abi, fn_name, value)

    def _immutable(self, contract: Any, name: str) -> int:
        """A constant of a contract (read once)."""
        key = f"{contract.address}.{name}"
        if key not in self._immutables:
            self._immutables[key] = int(self._view(getattr(contract.functions, name)()))
        return self._immutables[key]

    def _logs(
        self, contract: Any, event: str, from_block: int | None = None, **indexed: Any
    ) -> list[ChainEvent]:
        """Decoded ``event`` logs of ``contract``; ``indexed`` filters by indexed arguments
        (topics) and, for arguments that are not indexed, in Python."""
        item = next(i for i in contract.abi if i.get("type") == "event" and i.get("name") == event)
        topics: list[Any] = [contract.events[event]().topic]
        post: dict[str, Any] = {}
        for p in (p for p in item["inputs"] if p.get("indexed")):
            value = indexed.pop(p["name"], None)
            topics.append(None if value is None else _topic_of(p["type"], value))
        post.update({k: v for k, v in indexed.items() if v is not None})
        while topics and topics[-1] is None:
            topics.pop()
        with map_errors():
            w3: Any = self.backend.w3
            logs = w3.eth.get_logs(
                {
                    "fromBlock": self.deployment.block if from_block is None else from_block,
                    "toBlock": "latest",
                    "address": contract.address,
                    "topics": topics,
                }
            )
        out = []
        for e in self.decoder.decode_all(logs):
            if all(_same(e.args.get(k), v) for k, v in post.items()):
                out.append(e)
        return out

    # -- domains -------------------------------------------------------------------------------

    @property
    def receipt_domain(self) -> ReceiptDomain:
        return ReceiptDomain(self.backend.chain_id, self.deployment.transfer_receipts)

    @property
    def rewards_domain(self) -> RewardsDomain:
        return RewardsDomain(self.backend.chain_id, self.deployment.hosting_rewards)

    # -- ContentRegistry -----------------------------------------------------------------------

    def register(
        self,
        root: bytes | str,
        size: int,
        *,
        data_shards: int,
        slot_count: int,
        slots_root: bytes,
        size_proof: SizeProof,
        chunk_size: int = 1 << 20,
        segment_size: int = SEGMENT_SIZE,
        metadata_uri: str = "",
    ) -> TxResult:
        """Commit-then-reveal registration: ``commitRegistration`` (unless this account already
        committed to this registration), then ``register(Registration, leftSegments,
        edgeHashes, lastSegment)`` in a later block with the spine size proof
        (``node.content.size_proof``). Returns the ``register`` transaction."""
        reg = (
            _root(root),
            size,
            chunk_size,
            segment_size,
            data_shards,
            slot_count,
            bytes(slots_root),
            metadata_uri,
        )
        commitment = self._view(self.registry.functions.registrationCommitment(self.address, reg))
        committed_at = int(self._view(self.registry.functions.commitmentBlock(commitment)))
        # Already registered: no commitment, `register` below reverts AlreadyRegistered.
        if committed_at == 0 and not self.is_registered(root):
            committed_at = self._tx(self.registry.functions.commitRegistration(commitment)).block
        # The register must land in a later block: on dev chains mine one if the head has not
        # moved; elsewhere the next transaction goes into a later block anyway.
        if self.backend.block_number() <= committed_at and self.backend.kind == "embedded":
            self.backend.mine(1)
        fn = self.registry.functions.register(
            reg,
            [bytes(s) for s in size_proof.left_segments],
            [bytes(h) for h in size_proof.edge_hashes],
            bytes(size_proof.last_segment),
        )
        return self._tx(fn)

    def publish_content(
        self,
        read: Callable[[int, int], bytes],
        size: int,
        root: bytes | None = None,
        *,
        data_shards: int | None = None,
        slot_count: int | None = None,
        chunk_size: int = 1 << 20,
        metadata_uri: str = "",
    ) -> TxResult:
        """Compute the slot roots and the size proof of content read through ``read(offset,
        length)`` and register it (tests, demo and ``bcai publish``)."""
        from node import content

        kw: dict[str, int] = {}
        if data_shards is not None:
            kw["data_shards"] = data_shards
        if slot_count is not None:
            kw["slot_count"] = slot_count
        proof = content.size_proof(read, size)
        if size == 0:
            return self.register(
                content.EMPTY_ROOT if root is None else root,
                0,
                data_shards=data_shards or content.DEFAULT_DATA_SHARDS,
                slot_count=0,
                slots_root=bytes(32),
                size_proof=proof,
                chunk_size=chunk_size,
                metadata_uri=metadata_uri,
            )
        layout = content.SlotLayout(size, **kw)
        _, slots_root = content.encode_slot_roots(read, layout)
        if root is None:
            root = content.size_proof_root(proof, size)
            if root is None:  # pragma: no cover - size_proof built it from the same content
                raise ChainUsageError("size proof does not fold to a root")
        return self.register(
            root,
            size,
            data_shards=layout.data_shards,
            slot_count=layout.slot_count,
            slots_root=slots_root,
            size_proof=proof,
            chunk_size=chunk_size,
            metadata_uri=metadata_uri,
        )

    def get_content(self, root: bytes | str) -> ContentInfo:
        raw = _root(root)
        c = self._struct(self.registry, "getContent", raw)
        return ContentInfo(
            root=raw,
            owner=str(_pick(c, "owner", default=ZERO_ADDRESS)),
            size=int(_pick(c, "size", default=0)),
            chunk_size=int(_pick(c, "chunkSize", default=0)),
            segment_size=int(_pick(c, "segmentSize", default=SEGMENT_SIZE)),
            data_shards=int(_pick(c, "dataShards", default=0)),
            slot_count=int(_pick(c, "slotCount", default=0)),
            slots_root=bytes(_pick(c, "slotsRoot", default=bytes(32))),
            registered_at=int(_pick(c, "registeredAt", default=0)),
            metadata_uri=str(_pick(c, "metadataURI", "metadataUri", default="")),
        )

    def layout_of(self, root: bytes | str) -> Layout:
        """The registered geometry; raises ``NotRegistered``."""
        size, k, n, slots_root, rows = self._view(self.registry.functions.layoutOf(_root(root)))
        return Layout(int(size), int(k), int(n), bytes(slots_root), int(rows))

    def is_registered(self, root: bytes | str) -> bool:
        return bool(self._view(self.registry.functions.isRegistered(_root(root))))

    def registered_size(self, root: bytes | str) -> int | None:
        """The registered size, ``None`` if the root is not registered (one call)."""
        registered, size = self._view(self.registry.functions.registeredSize(_root(root)))
        return int(size) if registered else None

    def size_of(self, root: bytes | str) -> int:
        return int(self._view(self.registry.functions.sizeOf(_root(root))))

    def segment_count(self, root: bytes | str) -> int:
        return int(self._view(self.registry.functions.segmentCount(_root(root))))

    def set_metadata_uri(self, root: bytes | str, uri: str) -> TxResult:
        return self._tx(self.registry.functions.setMetadataURI(_root(root), uri))

    # -- TransferReceipts: escrow --------------------------------------------------------------

    def deposit(self, amount: int, receiver: str | None = None) -> TxResult:
        """Fund ``receiver``'s escrow (default: this account)."""
        to = to_checksum_address(receiver or self.address)
        return self._tx(self.receipts.functions.deposit(to), value=amount)

    def escrow_of(self, receiver: str | None = None) -> Escrow:
        fn = self.receipts.functions.escrowOf(to_checksum_address(receiver or self.address))
        balance, requested, unlock_at = self._view(fn)
        return Escrow(int(balance), int(requested), int(unlock_at))

    def request_withdrawal(self, amount: int) -> TxResult:
        return self._tx(self.receipts.functions.requestWithdrawal(amount))

    def withdraw_escrow(self) -> TxResult:
        return self._tx(self.receipts.functions.withdrawEscrow())

    def earnings(self, provider: str | None = None) -> int:
        fn = self.receipts.functions.earningsOf(to_checksum_address(provider or self.address))
        return int(self._view(fn))

    def withdraw_earnings(self) -> TxResult:
        return self._tx(self.receipts.functions.withdrawEarnings())

    # -- TransferReceipts: receipts ------------------------------------------------------------

    @property
    def min_price_per_gib(self) -> int:
        return self._immutable(self.receipts, "minPricePerGiB")

    @property
    def receipt_fee_bps(self) -> int:
        return self._immutable(self.receipts, "feeBps")

    def is_nonce_used(self, receiver: str, nonce: int) -> bool:
        fn = self.receipts.functions.isNonceUsed(to_checksum_address(receiver), nonce)
        return bool(self._view(fn))

    def hash_receipt(self, signed: SignedReceipt) -> bytes:
        return bytes(self._view(self.receipts.functions.hashReceipt(signed.receipt.as_tuple())))

    def current_epoch(self) -> int:
        return int(self._view(self.receipts.functions.currentEpoch()))

    def epoch_of(self, timestamp: int) -> int:
        return int(self._view(self.receipts.functions.epochOf(timestamp)))

    def served_bytes(self, provider: str, epoch: int) -> int:
        fn = self.receipts.functions.servedBytes(to_checksum_address(provider), epoch)
        return int(self._view(fn))

    def receipt_count(self, provider: str, epoch: int) -> int:
        fn = self.receipts.functions.receiptCount(to_checksum_address(provider), epoch)
        return int(self._view(fn))

    def payments_of(self, provider: str, epoch: int) -> int:
        fn = self.receipts.functions.paymentsOf(to_checksum_address(provider), epoch)
        return int(self._view(fn))

    def fees_of(self, provider: str, epoch: int) -> int:
        fn = self.receipts.functions.feesOf(to_checksum_address(provider), epoch)
        return int(self._view(fn))

    def pair_bytes(self, receiver: str, provider: str, root: bytes | str, epoch: int) -> int:
        fn = self.receipts.functions.pairBytes(
            to_checksum_address(receiver), to_checksum_address(provider), _root(root), epoch
        )
        return int(self._view(fn))

    def total_burnt(self) -> int:
        return int(self._view(self.receipts.functions.totalBurnt()))

    def receipt_on_chain(self, signed: SignedReceipt) -> bool:
        """Whether a ``ReceiptAccepted`` with this receipt's digest exists (crash
        reconciliation: a batch may have been mined after we last heard of it)."""
        r = signed.receipt
        if not self.is_nonce_used(r.receiver, r.nonce):
            return False
        digest = receipt_digest(r, self.receipt_domain)
        events = self._logs(
            self.receipts,
            "ReceiptAccepted",
            provider=r.provider,
            receiver=r.receiver,
            contentRoot=r.content_root,
        )
        return any(bytes(e.args.get("digest", b"")) == digest for e in events)

    def precheck_receipts(
        self, batch: Iterable[SignedReceipt]
    ) -> tuple[list[SignedReceipt], SubmitReport]:
        """Judge locally what can be judged (the contract's checks, in its order) so a
        hopeless receipt costs no gas; returns the receipts worth sending and a report holding
        the others. Never raises for a bad receipt: nothing here can block the queue."""
        domain = self.receipt_domain
        # The including block's timestamp is at least the wall clock on anvil and on live
        # chains, so a receipt issued a moment ago is not "in the future" just because the chain
        # has been quiet; CLOCK_SLACK for skew (a younger receipt waits a round).
        now = max(self.backend.timestamp(), int(time.time()) - CLOCK_SLACK)
        current = self.epoch_of(now)
        min_price = self.min_price_per_gib
        report = SubmitReport()
        send: list[SignedReceipt] = []
        seen: set[tuple[str, int]] = set()
        sizes: dict[bytes, int | None] = {}
        escrow: dict[str, int] = {}
        pairs: dict[tuple[str, bytes, int], int] = {}
        epochs: dict[int, int] = {}

        def reject(signed: SignedReceipt, reason: str) -> None:
            if reason in DEFERRABLE:
                report.deferred.append(RejectedReceipt(signed, reason))
            else:
                report.rejected.append(RejectedReceipt(signed, reason))

        for signed in batch:
            r = signed.receipt
            if r.provider != self.address:
                reject(signed, "NotProvider")
                continue
            try:
                verify_receipt(signed, domain)
            except ReceiptError:
                reject(signed, "InvalidSignature")
                continue
            key = (r.receiver, r.nonce)
            if key in seen:
                reject(signed, "DuplicateNonce")
                continue
            if self.is_nonce_used(r.receiver, r.nonce):
                if self.receipt_on_chain(signed):
                    report.accepted.append(signed)  # credited by an earlier, unrecorded batch
                else:
                    reject(signed, "NonceUsed")
                continue
            if r.issued_at > now:
                reject(signed, "IssuedInFuture")
                continue
            if r.issued_at not in epochs:
                epochs[r.issued_at] = self.epoch_of(r.issued_at)
            epoch = epochs[r.issued_at]
            if epoch + 1 < current:
                reject(signed, "Stale")
                continue
            if r.content_root not in sizes:
                sizes[r.content_root] = self.registered_size(r.content_root)
            size = sizes[r.content_root]
            if size is None:
                reject(signed, "RootNotRegistered")
                continue
            if r.bytes_served == 0:
                reject(signed, "Empty")
                continue
            pair = (r.receiver, r.content_root, epoch)
            if pair not in pairs:
                pairs[pair] = self.pair_bytes(r.receiver, r.provider, r.content_root, epoch)
            if r.bytes_served > size or pairs[pair] + r.bytes_served > size:
                reject(signed, "ExceedsSize")
                continue
            if r.payment * GIB < r.bytes_served * min_price:
                reject(signed, "Underpaid")
                continue
            if r.receiver not in escrow:
                escrow[r.receiver] = self.escrow_of(r.receiver).balance
            if escrow[r.receiver] < r.payment:
                reject(signed, "InsufficientEscrow")
                continue
            escrow[r.receiver] -= r.payment
            pairs[pair] += r.bytes_served
            seen.add(key)
            send.append(signed)
        return send, report

    def submit_receipts(
        self,
        batch: Iterable[SignedReceipt],
        batch_size: int = DEFAULT_BATCH,
        *,
        precheck: bool = True,
    ) -> SubmitReport:
        """Pre-check, send the rest in batches of ``batch_size``, and sort every receipt by the
        outcome the contract logged for it (``ReceiptAccepted`` / ``ReceiptRejected``)."""
        items = list(batch)
        send, report = self.precheck_receipts(items) if precheck else (items, SubmitReport())
        domain = self.receipt_domain
        for start in range(0, len(send), batch_size):
            part = send[start : start + batch_size]
            fn = self.receipts.functions.submitBatch(
                [s.receipt.as_tuple() for s in part], [s.signature for s in part]
            )
            res = self._tx(fn)
            report.txs.append(res)
            outcomes = receipt_outcomes(res, part, domain)
            for signed, outcome in zip(part, outcomes, strict=True):
                if outcome is None:
                    report.accepted.append(signed)
                elif outcome in DEFERRABLE:
                    report.deferred.append(RejectedReceipt(signed, outcome))
                else:
                    report.rejected.append(RejectedReceipt(signed, outcome))
        if report.rejected or report.deferred:
            log.info(
                "receipts not credited",
                rejected=[r.reason for r in report.rejected],
                deferred=[r.reason for r in report.deferred],
            )
        return report

    # -- DataAvailability: parameters and periods --------------------------------------------

    def da_params(self) -> dict[str, Any]:
        """``DataAvailability.params()`` by field name (new challenges use these)."""
        value = self._view(self.da.functions.params())
        fn = _abi_fn(self.da.abi, "params")
        outputs = fn["outputs"]
        if len(outputs) == 1 and str(outputs[0]["type"]) == "tuple":
            names = [c["name"] for c in outputs[0]["components"]]
        else:
            names = [o["name"] for o in outputs]
        return dict(zip(names, value, strict=True))

    @property
    def challenge_bond(self) -> int:
        """The bond a challenge costs now (the owner may change it for later challenges)."""
        return int(self._view(self.da.functions.challengeBond()))

    def current_period(self) -> int:
        return int(self._view(self.da.functions.currentPeriod()))

    def period_start(self, period: int) -> int:
        """First block of proof period ``period``."""
        return int(self._view(self.da.functions.startBlock(period)))

    def is_due(self, root: bytes | str, slot: int) -> bool:
        return bool(self._view(self.da.functions.isDue(_root(root), slot)))

    # -- DataAvailability: hosts ---------------------------------------------------------------

    def commit(
        self,
        root: bytes | str,
        slot: int,
        slot_root: bytes,
        slot_proof: Sequence[bytes],
        stake: int,
    ) -> TxResult:
        """Take slot ``slot`` of ``root``; ``slot_proof`` proves ``slot_root`` under the
        registered ``slotsRoot`` (``node.content.slot_root_proof``)."""
        fn = self.da.functions.commit(_root(root), slot, bytes(slot_root), list(slot_proof))
        return self._tx(fn, value=stake)

    def top_up(self, root: bytes | str, slot: int, amount: int) -> TxResult:
        return self._tx(self.da.functions.topUp(_root(root), slot), value=amount)

    def request_exit(self, root: bytes | str, slot: int) -> TxResult:
        return self._tx(self.da.functions.requestExit(_root(root), slot))

    def withdraw(self, root: bytes | str, slot: int) -> TxResult:
        return self._tx(self.da.functions.withdraw(_root(root), slot))

    def commitment_of(self, root: bytes | str, slot: int) -> Commitment:
        raw = _root(root)
        c = self._struct(self.da, "commitmentOf", raw, slot)
        return Commitment(
            root=raw,
            slot=slot,
            host=str(_pick(c, "host", default=ZERO_ADDRESS)),
            stake=int(_pick(c, "stake", default=0)),
            slot_root=bytes(_pick(c, "slotRoot", default=bytes(32))),
            last_proven_at=int(_pick(c, "lastProvenAt", default=0)),
            faults=int(_pick(c, "faults", default=0)),
            ready_at=int(_pick(c, "readyAt", default=0)),
            terminated=bool(_pick(c, "terminated", default=False)),
            open_challenge=int(_pick(c, "openChallenge", default=0)),
            challenged_period=int(_pick(c, "challengedPeriod", default=0)),
            raw=c,
        )

    def hosts_of(self, root: bytes | str) -> list[str]:
        """One address per slot (the zero address where the slot is free)."""
        return [str(h) for h in self._view(self.da.functions.hostsOf(_root(root)))]

    def availability(self, root: bytes | str) -> Availability:
        hosts, last = self._view(self.da.functions.availability(_root(root)))
        return Availability(int(hosts), int(last))

    def is_available(self, root: bytes | str, min_hosts: int, max_age: int) -> bool:
        return bool(self._view(self.da.functions.isAvailable(_root(root), min_hosts, max_age)))

    def commitments_of(self, host: str) -> list[Commitment]:
        """Commitments ``host`` holds now, found from its ``Committed`` logs."""
        host = to_checksum_address(host)
        seen: set[tuple[bytes, int]] = set()
        out = []
        for e in self._logs(self.da, "Committed", host=host):
            key = (bytes(e.args["root"]), int(e.args["slot"]))
            if key in seen:
                continue
            seen.add(key)
            c = self.commitment_of(*key)
            if c.host == host:
                out.append(c)
        return out

    # -- HostDirectory: discovery --------------------------------------------------------------

    def _raw_view(self, contract: Any, fn_name: str, args: Sequence[Any], types: list[str]) -> Any:
        """Call a view and decode its return data as ``types`` (``bytes`` for ``string``
        outputs: endpoint records are any bytes their host wrote, and eth_abi refuses a string
        that is not UTF-8, which would let one host break every lookup)."""
        data = contract.encode_abi(fn_name, args=list(args))
        with map_errors():
            w3: Any = self.backend.w3
            out = w3.eth.call({"to": contract.address, "data": data, "from": self.address})
        from eth_abi import decode as abi_decode
        from eth_abi.exceptions import DecodingError

        try:
            return abi_decode(types, bytes(out))
        except DecodingError as exc:  # pragma: no cover - the suite's contract encodes these
            raise ChainUsageError(f"{fn_name}: undecodable answer: {exc}") from None

    def announce_endpoint(self, endpoint: str) -> TxResult:
        """Publish where this account's node answers (``HOST:PORT``) in the HostDirectory;
        ``""`` withdraws the record. At most ``MAX_ENDPOINT_LENGTH`` bytes (UTF-8)."""
        if not isinstance(endpoint, str):
            raise ChainUsageError(f"an endpoint is a string, got {type(endpoint).__name__}")
        size = len(endpoint.encode())
        if size > MAX_ENDPOINT_LENGTH:
            raise ChainUsageError(
                f"endpoint is {size} bytes, the directory keeps at most {MAX_ENDPOINT_LENGTH}"
            )
        if self.directory is None:
            raise ChainUsageError(
                "this deployment has no HostDirectory (made before discovery existed): "
                "redeploy (`bcai chain deploy`) to announce endpoints"
            )
        return self._tx(self.directory.functions.announce(endpoint))

    def announce_if_changed(self, endpoint: str) -> TxResult | None:
        """:meth:`announce_endpoint` unless the chain already holds exactly ``endpoint`` for
        this account (``None`` then: no transaction)."""
        if self.endpoint_of(self.address) == (endpoint or None):
            return None
        return self.announce_endpoint(endpoint)

    def endpoint_of(self, address: str) -> str | None:
        """The endpoint record of ``address`` (``None`` if none, or no HostDirectory). Bytes
        that are not UTF-8 come back with replacement characters: callers parse it as hostile."""
        if self.directory is None:
            return None
        (raw,) = self._raw_view(
            self.directory, "endpointOf", [to_checksum_address(address)], ["bytes"]
        )
        return bytes(raw).decode("utf-8", errors="replace") or None

    def providers(self, root: bytes | str) -> list[tuple[str, str | None]]:
        """``(address, endpoint or None)`` of every host holding a slot of ``root`` now (not
        terminated, not past an exit), in slot order; at most 64 (one call). Without a
        HostDirectory: the holders from ``hostsOf``, every endpoint ``None``."""
        if self.directory is None:
            return [(h, None) for h in self.hosts_of(root) if h != ZERO_ADDRESS]
        hosts, endpoints = self._raw_view(
            self.directory, "providersOf", [_root(root)], ["address[]", "bytes[]"]
        )
        return [
            (to_checksum_address(h), bytes(e).decode("utf-8", errors="replace") or None)
            for h, e in zip(hosts, endpoints, strict=True)
        ]

    # -- DataAvailability: challenges ---------------------------------------------------------

    def challenge(self, root: bytes | str, slot: int) -> tuple[TxResult, Challenge]:
        """Challenge the host of slot ``slot`` of ``root``, paying the bond."""
        fn = self.da.functions.challenge(_root(root), slot)
        res = self._tx(fn, value=self.challenge_bond)
        issued = res.event("ChallengeIssued")
        return res, self.get_challenge(int(issued.args["id"]))

    def respond(
        self, challenge_id: int, segments: Sequence[bytes], proofs: Sequence[Sequence[bytes]]
    ) -> TxResult:
        """Answer a challenge. A wrong answer is not a revert: look for ``ChallengeFailed``."""
        fn = self.da.functions.respond(
            challenge_id, [bytes(s) for s in segments], [list(p) for p in proofs]
        )
        return self._tx(fn)

    def slash_expired(self, challenge_id: int) -> TxResult:
        return self._tx(self.da.functions.slashExpired(challenge_id))

    def sample_indices_of(self, challenge_id: int) -> tuple[int, ...] | None:
        """The drawn sample indices as the node's ``eth_call`` sees them (``None`` before)."""
        value = self._view(self.da.functions.sampleIndicesOf(challenge_id))
        # Empty before block seedBlock + 1 and once the seed hash is out of reach (samples >= 1).
        return tuple(int(i) for i in value) or None

    def draw_sample_indices(
        self, seed: bytes, challenge_id: int, samples: int, rows: int
    ) -> list[int]:
        """The contract's pure ``drawSampleIndices`` (checks node.content's twin)."""
        fn = self.da.functions.drawSampleIndices(bytes(seed), challenge_id, samples, rows)
        return [int(i) for i in self._view(fn)]

    def get_challenge(self, challenge_id: int) -> Challenge:
        """Challenge ``challenge_id``; ``indices`` is ``None`` until the seed is usable.

        Readiness is the contract's, as the node's ``eth_call`` sees it: geth and py-evm evaluate
        calls in the latest block, so the indices show once a block follows the seed block.
        """
        c = self._struct(self.da, "getChallenge", challenge_id)
        status = ChallengeStatus(int(_pick(c, "status", default=0)))
        indices = self.sample_indices_of(challenge_id) if status is ChallengeStatus.OPEN else None
        return Challenge(
            id=challenge_id,
            host=str(_pick(c, "host", default=ZERO_ADDRESS)),
            root=bytes(_pick(c, "root", default=bytes(32))),
            slot=int(_pick(c, "slot", default=0)),
            seed_block=int(_pick(c, "seedBlock", default=0)),
            deadline=int(_pick(c, "deadline", default=0)),
            scheduled=bool(_pick(c, "scheduled", default=False)),
            indices=indices,
            status=status,
            challenger=str(_pick(c, "challenger", default=ZERO_ADDRESS)),
        )

    def open_challenge(self, root: bytes | str, slot: int) -> int:
        """The open challenge id of a slot (0 if none)."""
        return int(self._view(self.da.functions.openChallenge(_root(root), slot)))

    def _open_from_logs(self, **filters: Any) -> list[Challenge]:
        out = []
        for event in self._logs(self.da, "ChallengeIssued", **filters):
            cid = int(event.args["id"])
            if cid in self._closed:
                continue
            c = self.get_challenge(cid)
            if c.status is ChallengeStatus.OPEN:
                out.append(c)
            else:
                self._closed.add(cid)
        return out

    def open_challenges_for(self, host: str, *, include_pending: bool = False) -> list[Challenge]:
        """Challenges against ``host`` still open, from ``ChallengeIssued`` logs.

        Only those whose samples are drawn (answerable now) unless ``include_pending``: a
        challenge whose seed block is not mined yet shows up on a later call.
        """
        found = self._open_from_logs(host=to_checksum_address(host))
        return [c for c in found if c.ready or include_pending]

    def expired_challenges(self) -> list[int]:
        """Open challenges past their deadline (anyone may ``slash_expired`` them)."""
        now = self.backend.timestamp()
        return [c.id for c in self._open_from_logs() if c.deadline < now]

    def due_commitments(self) -> list[tuple[bytes, int, str]]:
        """``(root, slot, host)`` of every taken slot due this period and not yet challenged in
        it (the validator's schedule). Roots come from the ``Committed`` logs; each root's slots
        from ``hostsOf`` (one call per root, at most 64 slots)."""
        period = self.current_period()
        roots = sorted({bytes(e.args["root"]) for e in self._logs(self.da, "Committed")})
        out: list[tuple[bytes, int, str]] = []
        for root in roots:
            for slot, host in enumerate(self.hosts_of(root)):
                if host == ZERO_ADDRESS:
                    continue
                c = self.commitment_of(root, slot)
                if c.open_challenge or c.challenged_period == period + 1 or c.terminated:
                    continue
                if self.is_due(root, slot):
                    out.append((root, slot, host))
        return out

    # -- DataAvailability: payments ------------------------------------------------------------

    def fund_storage(self, root: bytes | str, amount: int) -> TxResult:
        return self._tx(self.da.functions.fundStorage(_root(root)), value=amount)

    def storage_budget(self, root: bytes | str) -> int:
        return int(self._view(self.da.functions.storageBudgetOf(_root(root))))

    def fund_rewards(self, amount: int) -> TxResult:
        return self._tx(self.da.functions.fundRewards(), value=amount)

    def reward_pool(self) -> int:
        return int(self._view(self.da.functions.rewardPool()))

    def owed_to(self, address: str | None = None) -> int:
        fn = self.da.functions.owedTo(to_checksum_address(address or self.address))
        return int(self._view(fn))

    def withdraw_owed(self) -> TxResult:
        return self._tx(self.da.functions.withdrawOwed())

    def storage_fees_of(self, host: str, epoch: int) -> int:
        fn = self.da.functions.storageFeesOf(to_checksum_address(host), epoch)
        return int(self._view(fn))

    def storage_paid_of(self, host: str, epoch: int) -> int:
        fn = self.da.functions.storagePaidOf(to_checksum_address(host), epoch)
        return int(self._view(fn))

    # -- HostingRewards ------------------------------------------------------------------------

    def fund_epoch(self, epoch: int, amount: int, token: str | None = None) -> list[TxResult]:
        """Fund ``epoch`` with ETH (``token=None``) or an ERC-20 (approves first)."""
        if token is None or to_checksum_address(token) == ZERO_ADDRESS:
            return [self._tx(self.rewards.functions.fundEpoch(epoch), value=amount)]
        erc20 = self.backend.w3.eth.contract(address=to_checksum_address(token), abi=_ERC20_ABI)
        approve = self._tx(erc20.functions.approve(self.deployment.hosting_rewards, amount))
        fund = self._tx(
            self.rewards.functions.fundEpochToken(epoch, to_checksum_address(token), amount)
        )
        return [approve, fund]

    def funded(self, epoch: int, token: str = ZERO_ADDRESS) -> int:
        return int(self._view(self.rewards.functions.funded(epoch, to_checksum_address(token))))

    def sign_allocation(
        self,
        epoch: int,
        token: str,
        merkle_root: bytes,
        total: int,
        validator: LocalAccount | None = None,
    ) -> bytes:
        """Validator side: sign ``Allocation(epoch, token, merkleRoot, total)`` for this chain."""
        return sign_allocation(
            validator or self.account, self.rewards_domain, epoch, token, merkle_root, total
        )

    def post_allocation(
        self,
        epoch: int,
        token: str,
        merkle_root: bytes,
        total: int,
        signatures: Iterable[bytes] | Mapping[str, bytes],
        *,
        sort: bool = True,
    ) -> TxResult:
        """Post an allocation; signatures are sorted by signer (the contract wants ascending)."""
        sigs = list(signatures.values()) if isinstance(signatures, Mapping) else list(signatures)
        token = to_checksum_address(token)
        if sort:
            domain = self.rewards_domain
            keyed = []
            for sig in sigs:
                try:
                    signer = recover_allocation_signer(
                        domain, epoch, token, merkle_root, total, sig
                    )
                except Exception:
                    signer = ZERO_ADDRESS
                keyed.append((int(signer, 16), sig))
            sigs = [s for _, s in sorted(keyed, key=lambda pair: pair[0])]
        fn = self.rewards.functions.postAllocation(epoch, token, merkle_root, total, sigs)
        return self._tx(fn)

    def claim(
        self, epoch: int, token: str, host: str, amount: int, proof: Sequence[bytes]
    ) -> TxResult:
        """Pay ``host`` its allocation; ETH claims revert ``ExceedsFeeCap`` above the host's
        ``rebateBps`` share of the fees it burnt that epoch."""
        fn = self.rewards.functions.claim(
            epoch, to_checksum_address(token), to_checksum_address(host), amount, list(proof)
        )
        return self._tx(fn)

    def fee_cap(self, host: str, epoch: int) -> int:
        """The most ETH ``host`` can claim for ``epoch``: ``rebateBps`` of the receipt and
        storage fees its payments burnt that epoch."""
        fn = self.rewards.functions.feeCapOf(to_checksum_address(host), epoch)
        return int(self._view(fn))

    def rollover(self, epoch: int, to_epoch: int, token: str = ZERO_ADDRESS) -> TxResult:
        """Move what ``epoch`` did not pay out to the later, unposted ``to_epoch``."""
        fn = self.rewards.functions.rollover(epoch, to_checksum_address(token), to_epoch)
        return self._tx(fn)

    def claimed(self, epoch: int, token: str, host: str) -> bool:
        fn = self.rewards.functions.claimed(
            epoch, to_checksum_address(token), to_checksum_address(host)
        )
        return bool(self._view(fn))

    def paid(self, epoch: int, token: str = ZERO_ADDRESS) -> int:
        return int(self._view(self.rewards.functions.paid(epoch, to_checksum_address(token))))

    def validators(self) -> list[str]:
        return list(self._view(self.rewards.functions.validators()))

    def quorum(self) -> int:
        return int(self._view(self.rewards.functions.quorum()))

    # -- misc ----------------------------------------------------------------------------------

    def balance(self, address: str | None = None) -> int:
        with map_errors():
            return int(
                self.backend.w3.eth.get_balance(to_checksum_address(address or self.address))
            )

    def events(
        self, from_block: int | None = None, to_block: int | str = "latest"
    ) -> list[ChainEvent]:
        """Every suite event in a block range (small ranges; the indexer is for the long run)."""
        with map_errors():
            w3: Any = self.backend.w3
            logs = w3.eth.get_logs(
                {
                    "fromBlock": self.deployment.block if from_block is None else from_block,
                    "toBlock": to_block,
                    "address": self.decoder.addresses,
                }
            )
        return self.decoder.decode_all(logs)


def receipt_outcomes(
    res: TxResult, batch: Sequence[SignedReceipt], domain: ReceiptDomain
) -> list[str | None]:
    """Per receipt of a mined ``submitBatch``: ``None`` if credited, else the reject reason.

    ``ReceiptRejected`` names the batch index; ``ReceiptAccepted`` carries the digest. A receipt
    with neither (impossible with the suite's contract) is reported ``"NoOutcome"``.
    """
    out: list[str | None] = ["NoOutcome"] * len(batch)
    for e in res.events_named("ReceiptRejected"):
        index = int(e.args["index"])
        if 0 <= index < len(batch):
            try:
                out[index] = RejectReason(int(e.args["reason"])).label
            except ValueError:
                out[index] = f"Reason{int(e.args['reason'])}"
    digests = {bytes(e.args["digest"]) for e in res.events_named("ReceiptAccepted")}
    for i, signed in enumerate(batch):
        if out[i] == "NoOutcome" and receipt_digest(signed.receipt, domain) in digests:
            out[i] = None
    return out


def _topic_of(abi_type: str, value: Any) -> str:
    """The 32-byte topic of an indexed value type (address, bytesN, uintN, bool)."""
    if abi_type == "address":
        return "0x" + "00" * 12 + to_checksum_address(value)[2:].lower()
    if abi_type.startswith("bytes") and abi_type != "bytes":
        raw = bytes(value)
        return "0x" + raw.hex() + "00" * (32 - len(raw))
    if abi_type.startswith(("uint", "int")) or abi_type == "bool":
        return "0x" + int(value).to_bytes(32, "big").hex()
    raise ChainUsageError(f"cannot filter logs by an indexed {abi_type}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return bool(a == b)
