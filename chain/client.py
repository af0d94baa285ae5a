"""``ChainClient``: typed wrappers over the four contracts, for one account.

Every state-changing call returns a ``TxResult`` (hash, gas used from the receipt, block, decoded
events). Reverts from either backend arrive as ``ChainRevert`` subclasses named after the
contract's custom error (``revert_class("NonceUsed")``); a node that does not answer raises
``ChainUnavailable``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from node.receipt import ReceiptDomain, ReceiptError, SignedReceipt, verify_receipt

from .backend import ChainBackend
from .contracts import load_artifact
from .deploy import Deployment
from .eip712 import ZERO_ADDRESS, RewardsDomain, recover_allocation_signer, sign_allocation
from .errors import ChainUsageError
from .events import ChainEvent, EventDecoder
from .reverts import map_errors
from .tx import TxResult, send_transaction

__all__ = [
    "Availability",
    "ChainClient",
    "Challenge",
    "ChallengeStatus",
    "ContentInfo",
    "FailReason",
    "RejectedReceipt",
    "SubmitReport",
    "draw_segment_index",
]

#: Receipts per submitBatch transaction (the gas goal is stated for 100).
DEFAULT_BATCH = 100
#: DataAvailability.SEGMENT_SIZE.
DA_SEGMENT_SIZE = 4096
#: Blocks whose hash the EVM's BLOCKHASH still returns (a challenge's seed must be in reach).
BLOCKHASH_WINDOW = 256

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
    EXPIRED = 1
    WRONG_LENGTH = 2
    INVALID_PROOF = 3


@dataclass(frozen=True)
class ContentInfo:
    root: bytes
    owner: str
    size: int
    chunk_size: int
    segment_size: int
    registered_at: int
    metadata_uri: str


@dataclass(frozen=True)
class Challenge:
    """A data-availability challenge.

    The segment is drawn from the hash of ``seed_block`` (the block after the challenge's), so
    ``index`` is ``None`` until that block is mined and followed by one more (and again once its
    hash is older than 256 blocks). ``segment_index`` is the drawn index and raises
    ``ChainUsageError`` while there is none.
    """

    id: int
    host: str
    root: bytes
    index: int | None
    deadline: int
    status: ChallengeStatus
    seed_block: int

    @property
    def ready(self) -> bool:
        """Whether the segment is drawn (a ``respond`` sent now can be judged)."""
        return self.index is not None

    @property
    def segment_index(self) -> int:
        """The segment asked for; ``ChainUsageError`` until the seed block is mined."""
        if self.index is None:
            raise ChainUsageError(
                f"challenge {self.id}: segment not drawn yet (seed block {self.seed_block})"
            )
        return self.index


@dataclass(frozen=True)
class Availability:
    hosts: int
    last_proven_at: int


@dataclass(frozen=True)
class RejectedReceipt:
    receipt: SignedReceipt
    reason: str  #: NotProvider | InvalidSignature | NonceUsed | DuplicateNonce | IssuedInFuture


@dataclass(frozen=True)
class SubmitReport:
    """Outcome of ``submit_receipts``: what went on chain, what was dropped and why."""

    accepted: list[SignedReceipt] = field(default_factory=list)
    rejected: list[RejectedReceipt] = field(default_factory=list)
    txs: list[TxResult] = field(default_factory=list)

    @property
    def gas_used(self) -> int:
        return sum(t.gas_used for t in self.txs)

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": len(self.accepted),
            "rejected": [
                {
                    "nonce": r.receipt.receipt.nonce,
                    "receiver": r.receipt.receipt.receiver,
                    "reason": r.reason,
                }
                for r in self.rejected
            ],
            "txs": [t.to_json() for t in self.txs],
            "gas_used": self.gas_used,
        }


def draw_segment_index(
    seed_hash: bytes, host: str, root: bytes, challenge_id: int, size: int
) -> int:
    """The segment ``DataAvailability`` asks for: keccak256(abi.encode(blockhash(seedBlock),
    host, root, id)) modulo the segment count of a ``size``-byte root."""
    segments = -(-size // DA_SEGMENT_SIZE)
    enc = abi_encode(
        ["bytes32", "address", "bytes32", "uint256"],
        [seed_hash, to_checksum_address(host), root, challenge_id],
    )
    return int.from_bytes(keccak(enc), "big") % segments


def _root(root: bytes | str) -> bytes:
    if isinstance(root, str):
        raw = bytes.fromhex(root[2:] if root.startswith("0x") else root)
    else:
        raw = bytes(root)
    if len(raw) != 32:
        raise ChainUsageError(f"a content root is 32 bytes, got {len(raw)}")
    return raw


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
        self.decoder = EventDecoder(w3, deployment.contracts())

    @property
    def address(self) -> str:
        return str(self.account.address)

    def as_account(self, account: LocalAccount) -> ChainClient:
        """The same client acting as another account (shares the decoder and contracts)."""
        other = object.__new__(ChainClient)
        other.__dict__.update(self.__dict__)
        other.account = account
        return other

    def _tx(self, fn: Any, value: int = 0) -> TxResult:
        return send_transaction(self.backend, self.account, fn, value=value, decoder=self.decoder)

    def _view(self, fn: Any) -> Any:
        with map_errors():
            return fn.call({"from": self.address})

    # -- domains -------------------------------------------------------------------------------

    @property
    def receipt_domain(self) -> ReceiptDomain:
        return ReceiptDomain(self.backend.chain_id, self.deployment.transfer_receipts)

    @property
    def rewards_domain(self) -> RewardsDomain:
        return RewardsDomain(self.backend.chain_id, self.deployment.hosting_rewards)

    # -- ContentRegistry -----------------------------------------------------------------------

    def register_content(
        self,
        root: bytes | str,
        size: int,
        chunk_size: int = 1 << 20,
        segment_size: int = 4096,
        metadata_uri: str = "",
    ) -> TxResult:
        fn = self.registry.functions.register(
            _root(root), size, chunk_size, segment_size, metadata_uri
        )
        return self._tx(fn)

    def get_content(self, root: bytes | str) -> ContentInfo:
        raw = _root(root)
        c = self._view(self.registry.functions.getContent(raw))
        return ContentInfo(raw, c[0], int(c[1]), int(c[2]), int(c[3]), int(c[4]), str(c[5]))

    def is_registered(self, root: bytes | str) -> bool:
        return bool(self._view(self.registry.functions.isRegistered(_root(root))))

    def segment_count(self, root: bytes | str) -> int:
        return int(self._view(self.registry.functions.segmentCount(_root(root))))

    def set_metadata_uri(self, root: bytes | str, uri: str) -> TxResult:
        return self._tx(self.registry.functions.setMetadataURI(_root(root), uri))

    # -- TransferReceipts ----------------------------------------------------------------------

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

    def precheck_receipts(
        self, batch: Iterable[SignedReceipt]
    ) -> tuple[list[SignedReceipt], list[RejectedReceipt]]:
        """Split ``batch`` into receipts the contract will accept and ones it would reject.

        Same checks as the contract (provider is us, issuedAt not ahead of the chain, signature
        by the receiver, low-s, nonce unused on chain and not repeated inside the batch).
        """
        domain = self.receipt_domain
        # The including block's timestamp is at least the wall clock on anvil (automine) and on
        # live chains, so a receipt issued a moment ago is not "in the future" just because the
        # chain has been quiet; 2 s of slack for clock skew (a younger receipt waits a round).
        now = max(self.backend.timestamp(), int(time.time()) - 2)
        good: list[SignedReceipt] = []
        bad: list[RejectedReceipt] = []
        seen: set[tuple[str, int]] = set()
        for signed in batch:
            r = signed.receipt
            if r.provider != self.address:
                bad.append(RejectedReceipt(signed, "NotProvider"))
                continue
            if r.issued_at > now:
                bad.append(RejectedReceipt(signed, "IssuedInFuture"))
                continue
            try:
                verify_receipt(signed, domain)
            except ReceiptError:
                bad.append(RejectedReceipt(signed, "InvalidSignature"))
                continue
            key = (r.receiver, r.nonce)
            if key in seen:
                bad.append(RejectedReceipt(signed, "DuplicateNonce"))
                continue
            if self.is_nonce_used(r.receiver, r.nonce):
                bad.append(RejectedReceipt(signed, "NonceUsed"))
                continue
            seen.add(key)
            good.append(signed)
        return good, bad

    def submit_receipts(
        self, batch: Iterable[SignedReceipt], batch_size: int = DEFAULT_BATCH, precheck: bool = True
    ) -> SubmitReport:
        """Pre-check, then submit the good receipts in batches of ``batch_size``."""
        items = list(batch)
        good, bad = self.precheck_receipts(items) if precheck else (items, [])
        report = SubmitReport(rejected=bad)
        for start in range(0, len(good), batch_size):
            part = good[start : start + batch_size]
            fn = self.receipts.functions.submitBatch(
                [s.receipt.as_tuple() for s in part], [s.signature for s in part]
            )
            report.txs.append(self._tx(fn))
            report.accepted.extend(part)
        return report

    # -- DataAvailability ----------------------------------------------------------------------

    def commit(self, root: bytes | str, stake: int) -> TxResult:
        return self._tx(self.da.functions.commit(_root(root)), value=stake)

    def request_exit(self, root: bytes | str) -> TxResult:
        return self._tx(self.da.functions.requestExit(_root(root)))

    def withdraw(self, root: bytes | str) -> TxResult:
        return self._tx(self.da.functions.withdraw(_root(root)))

    def challenge(self, host: str, root: bytes | str) -> tuple[TxResult, Challenge]:
        res = self._tx(self.da.functions.challenge(to_checksum_address(host), _root(root)))
        issued = res.event("ChallengeIssued")
        return res, self.get_challenge(int(issued.args["id"]))

    def respond(self, challenge_id: int, segment: bytes, proof: Sequence[bytes]) -> TxResult:
        """Answer a challenge. A wrong answer is not a revert: look for ``ChallengeFailed``."""
        return self._tx(self.da.functions.respond(challenge_id, segment, list(proof)))

    def slash_expired(self, challenge_id: int) -> TxResult:
        return self._tx(self.da.functions.slashExpired(challenge_id))

    def get_challenge(self, challenge_id: int) -> Challenge:
        """Challenge ``challenge_id``; its ``index`` is ``None`` until the seed block is mined.

        Readiness is the contract's, as the node's ``eth_call`` sees it: geth and py-evm evaluate
        calls in the latest block, so the index shows once a block follows the seed block (one
        block later than a transaction could use it; a respond is then sure to pass).
        """
        c = self._view(self.da.functions.getChallenge(challenge_id))
        host, root, index, deadline, status, seed_block, ready = c
        return Challenge(
            id=challenge_id,
            host=host,
            root=bytes(root),
            index=int(index) if ready else None,
            deadline=int(deadline),
            status=ChallengeStatus(int(status)),
            seed_block=int(seed_block),
        )

    def segment_index_of(self, challenge_id: int) -> tuple[bool, int]:
        """The contract's ``segmentIndexOf`` as evaluated by the node's ``eth_call`` (which may
        lag ``get_challenge`` by a block, see there)."""
        ready, index = self._view(self.da.functions.segmentIndexOf(challenge_id))
        return bool(ready), int(index)

    def open_challenge(self, host: str, root: bytes | str) -> int:
        fn = self.da.functions.openChallenge(to_checksum_address(host), _root(root))
        return int(self._view(fn))

    def stake_of(self, host: str, root: bytes | str) -> int:
        return int(self._view(self.da.functions.stakeOf(to_checksum_address(host), _root(root))))

    def availability(self, root: bytes | str) -> Availability:
        hosts, last = self._view(self.da.functions.availability(_root(root)))
        return Availability(int(hosts), int(last))

    def is_available(self, root: bytes | str, min_hosts: int, max_age: int) -> bool:
        return bool(self._view(self.da.functions.isAvailable(_root(root), min_hosts, max_age)))

    def hosts_of(self, root: bytes | str) -> list[str]:
        return list(self._view(self.da.functions.hostsOf(_root(root))))

    def open_challenges_for(self, host: str, *, include_pending: bool = False) -> list[Challenge]:
        """Challenges against ``host`` still open, found from ``ChallengeIssued`` logs.

        Only those whose segment is drawn (answerable now) unless ``include_pending``: a
        challenge whose seed block is not mined yet shows up on a later call.
        """
        host = to_checksum_address(host)
        topic = self.da.events.ChallengeIssued().topic
        host_topic = "0x" + "00" * 12 + host[2:].lower()
        with map_errors():
            w3: Any = self.backend.w3
            logs = w3.eth.get_logs(
                {
                    "fromBlock": self.deployment.block,
                    "toBlock": "latest",
                    "address": self.deployment.data_availability,
                    "topics": [topic, None, host_topic],
                }
            )
        out: list[Challenge] = []
        for event in self.decoder.decode_all(logs):
            c = self.get_challenge(int(event.args["id"]))
            if c.status is ChallengeStatus.OPEN and (c.ready or include_pending):
                out.append(c)
        return out

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
        fn = self.rewards.functions.claim(
            epoch, to_checksum_address(token), to_checksum_address(host), amount, list(proof)
        )
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
