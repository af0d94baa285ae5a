"""Errors of the ``chain`` package, one root, split by whose fault it is.

- ``ChainUsageError``: local misuse (missing artifacts, no deployment configured, bad argument).
- ``ChainUnavailable``: the node is down or unreachable (retry later).
- ``ChainRevert``: the chain ran the call and a contract refused it. Custom errors declared in
  the ABIs become subclasses named after the error (``NonceUsed``, ``QuorumNotMet``, ...) with
  the decoded arguments in ``args_``; build them with ``revert_class(name)`` so callers can write
  ``except revert_class("NonceUsed")`` or compare ``exc.name``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "KNOWN_REVERTS",
    "AllocationExceedsFunding",
    "AllocationExhausted",
    "AllocationExists",
    "AlreadyChallengedThisPeriod",
    "AlreadyClaimed",
    "AlreadyRegistered",
    "ArtifactMissing",
    "ChainError",
    "ChainRevert",
    "ChainUnavailable",
    "ChainUsageError",
    "ChallengeAlreadyOpen",
    "ChallengeExpired",
    "ChallengeNotExpired",
    "ChallengeNotOpen",
    "ChallengeStillOpen",
    "ClaimWindowOpen",
    "DeploymentMissing",
    "EmptyBatch",
    "EndpointTooLong",
    "EpochClosed",
    "ExceedsFeeCap",
    "ExitAlreadyRequested",
    "ExitDelayNotElapsed",
    "ExitNotRequested",
    "FailedCall",
    "HostHasSlot",
    "ImmutableParam",
    "InsufficientBalance",
    "InsufficientFunds",
    "InsufficientStake",
    "InvalidGeometry",
    "InvalidParams",
    "InvalidProof",
    "InvalidQuorum",
    "InvalidRebate",
    "InvalidRolloverTarget",
    "InvalidShortString",
    "InvalidSlot",
    "InvalidSlotProof",
    "InvalidSlots",
    "LengthMismatch",
    "NoAllocation",
    "NoWithdrawalRequested",
    "NotChallengeable",
    "NotChallengedHost",
    "NotCommitted",
    "NotContentOwner",
    "NotHost",
    "NotPosted",
    "NotRegistered",
    "NotValidator",
    "NothingToWithdraw",
    "OwnableInvalidOwner",
    "OwnableUnauthorizedAccount",
    "QuorumNotMet",
    "ReentrancyGuardReentrantCall",
    "RegistrationMismatch",
    "ReorgTooDeep",
    "RootNotRegistered",
    "SafeERC20FailedOperation",
    "SampleCountMismatch",
    "SeedNotReady",
    "SignersNotSorted",
    "SizeProofInvalid",
    "SlotTaken",
    "StringTooLong",
    "ValidatorExists",
    "WithdrawalLocked",
    "WrongBond",
    "ZeroAddress",
    "ZeroAmount",
    "ZeroRows",
    "revert_class",
]


class ChainError(Exception):
    """Root of every error raised by the ``chain`` package."""


class ChainUsageError(ChainError, ValueError):
    """Local fault: the caller asked for something that cannot work as configured."""


class ArtifactMissing(ChainUsageError):
    """A compiled contract artifact (chain/artifacts/<Name>.json) is absent or unreadable."""


class DeploymentMissing(ChainUsageError):
    """No contract addresses are configured (run ``bcai chain up`` or ``bcai chain deploy``)."""


class ChainUnavailable(ChainError, ConnectionError):
    """The chain node did not answer (down, unreachable, or timed out)."""


class InsufficientFunds(ChainError):
    """The account cannot pay for a transaction: ``balance`` wei, ``needed`` = value plus the
    gas limit at the fee cap (what a node checks before it accepts the transaction)."""

    def __init__(self, address: str, balance: int, needed: int) -> None:
        self.address = address
        self.balance = balance
        self.needed = needed
        super().__init__(
            f"account {address} has {_ether(balance)} ETH, the transaction needs up to "
            f"{_ether(needed)} ETH: fund it (a dev chain: `bcai chain fund`)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.address, self.balance, self.needed))


def _ether(wei: int) -> str:
    whole, frac = divmod(wei, 10**18)
    return f"{whole}.{frac:018d}".rstrip("0").rstrip(".")


class ReorgTooDeep(ChainError):
    """A reorganisation reached below the blocks the indexer keeps hashes for."""


class RegistrationMismatch(ChainError):
    """The root is registered already, with another size or slot layout than ours.

    Not "already registered, fine": a host holding the real content could not prove it against
    that registration, so publishing must stop and say so."""

    def __init__(self, root: bytes, ours: tuple[object, ...], theirs: tuple[object, ...]) -> None:
        self.root = root
        self.ours = ours
        self.theirs = theirs
        super().__init__(
            f"0x{root.hex()} is registered as (size, dataShards, slotCount, slotsRoot) = "
            f"{_shown(theirs)}, not {_shown(ours)}"
        )


def _shown(values: tuple[object, ...]) -> str:
    return "(" + ", ".join(_show(v) for v in values) + ")"


class ChainRevert(ChainError):
    """A contract reverted; ``name`` is the custom error (or ``Error``, ``Panic``, ``Unknown``)."""

    name: str = "Unknown"

    def __init__(
        self, name: str, args: dict[str, Any] | None = None, data: bytes = b"", message: str = ""
    ) -> None:
        self.name = name
        self.args_ = dict(args or {})
        self.data = data
        detail = ", ".join(f"{k}={_show(v)}" for k, v in self.args_.items())
        super().__init__(message or f"{name}({detail})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.name, self.args_, self.data, str(self)))


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


_CLASSES: dict[str, type[ChainRevert]] = {}


def revert_class(name: str) -> type[ChainRevert]:
    """The ``ChainRevert`` subclass for custom error ``name`` (created once, then cached)."""
    cls = _CLASSES.get(name)
    if cls is None:
        cls = type(name, (ChainRevert,), {"name": name, "__module__": __name__})
        _CLASSES[name] = cls
    return cls


def _rebuild(name: str, args: dict[str, Any], data: bytes, message: str) -> ChainRevert:
    return revert_class(name)(name, args, data, message)


# -- the suite's custom errors, by name --------------------------------------------------------
# Each is ``revert_class(name)``: the same class the decoders build from revert data on py-evm
# and on anvil, so ``except chain.errors.SizeProofInvalid`` catches it from either backend.
# tests/chain/test_errors.py checks that every error in the ABIs is listed here.

# ContentRegistry
AlreadyRegistered = revert_class("AlreadyRegistered")
NotRegistered = revert_class("NotRegistered")
InvalidGeometry = revert_class("InvalidGeometry")
InvalidSlots = revert_class("InvalidSlots")
SizeProofInvalid = revert_class("SizeProofInvalid")
NotContentOwner = revert_class("NotContentOwner")
ZeroAddress = revert_class("ZeroAddress")
# TransferReceipts (submitBatch reverts only on these two; receipts are judged one by one)
LengthMismatch = revert_class("LengthMismatch")
EmptyBatch = revert_class("EmptyBatch")
InvalidParams = revert_class("InvalidParams")
ZeroAmount = revert_class("ZeroAmount")
NoWithdrawalRequested = revert_class("NoWithdrawalRequested")
WithdrawalLocked = revert_class("WithdrawalLocked")
NothingToWithdraw = revert_class("NothingToWithdraw")
# DataAvailability
ImmutableParam = revert_class("ImmutableParam")
RootNotRegistered = revert_class("RootNotRegistered")
InvalidSlot = revert_class("InvalidSlot")
InvalidSlotProof = revert_class("InvalidSlotProof")
SlotTaken = revert_class("SlotTaken")
HostHasSlot = revert_class("HostHasSlot")
InsufficientStake = revert_class("InsufficientStake")
NotCommitted = revert_class("NotCommitted")
NotHost = revert_class("NotHost")
ExitAlreadyRequested = revert_class("ExitAlreadyRequested")
ExitNotRequested = revert_class("ExitNotRequested")
ExitDelayNotElapsed = revert_class("ExitDelayNotElapsed")
ChallengeStillOpen = revert_class("ChallengeStillOpen")
WrongBond = revert_class("WrongBond")
NotChallengeable = revert_class("NotChallengeable")
ChallengeAlreadyOpen = revert_class("ChallengeAlreadyOpen")
AlreadyChallengedThisPeriod = revert_class("AlreadyChallengedThisPeriod")
ChallengeNotOpen = revert_class("ChallengeNotOpen")
NotChallengedHost = revert_class("NotChallengedHost")
SeedNotReady = revert_class("SeedNotReady")
ChallengeExpired = revert_class("ChallengeExpired")
ChallengeNotExpired = revert_class("ChallengeNotExpired")
SampleCountMismatch = revert_class("SampleCountMismatch")
ZeroRows = revert_class("ZeroRows")
# HostingRewards
NotValidator = revert_class("NotValidator")
ValidatorExists = revert_class("ValidatorExists")
InvalidQuorum = revert_class("InvalidQuorum")
SignersNotSorted = revert_class("SignersNotSorted")
QuorumNotMet = revert_class("QuorumNotMet")
AllocationExceedsFunding = revert_class("AllocationExceedsFunding")
AllocationExists = revert_class("AllocationExists")
NoAllocation = revert_class("NoAllocation")
AlreadyClaimed = revert_class("AlreadyClaimed")
InvalidProof = revert_class("InvalidProof")
AllocationExhausted = revert_class("AllocationExhausted")
InvalidRebate = revert_class("InvalidRebate")
ExceedsFeeCap = revert_class("ExceedsFeeCap")
EpochClosed = revert_class("EpochClosed")
InvalidRolloverTarget = revert_class("InvalidRolloverTarget")
ClaimWindowOpen = revert_class("ClaimWindowOpen")
NotPosted = revert_class("NotPosted")
# HostDirectory
EndpointTooLong = revert_class("EndpointTooLong")
# OpenZeppelin (Ownable, ReentrancyGuardTransient, Address, SafeERC20, ShortStrings)
OwnableUnauthorizedAccount = revert_class("OwnableUnauthorizedAccount")
OwnableInvalidOwner = revert_class("OwnableInvalidOwner")
ReentrancyGuardReentrantCall = revert_class("ReentrancyGuardReentrantCall")
FailedCall = revert_class("FailedCall")
InsufficientBalance = revert_class("InsufficientBalance")
SafeERC20FailedOperation = revert_class("SafeERC20FailedOperation")
InvalidShortString = revert_class("InvalidShortString")
StringTooLong = revert_class("StringTooLong")

#: Every named revert above (the custom errors of the suite's ABIs).
KNOWN_REVERTS: tuple[str, ...] = tuple(sorted(_CLASSES))
