"""The shipped contract artifacts must be built from the current contracts/src.

If this fails, run ``python -m chain.build_artifacts`` and commit chain/artifacts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain.build_artifacts import ARTIFACTS, CONTRACTS, source_hash, stale_artifacts

REQUIRED_KEYS = {"abi", "bytecode", "deployedBytecode", "sourceHash"}


@pytest.mark.parametrize("name", CONTRACTS)
def test_artifact_is_complete(name: str) -> None:
    artifact = json.loads((ARTIFACTS / f"{name}.json").read_text())
    assert artifact.keys() >= REQUIRED_KEYS
    assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 2
    assert artifact["deployedBytecode"].startswith("0x") and len(artifact["deployedBytecode"]) > 2
    assert isinstance(artifact["abi"], list) and artifact["abi"]


def test_artifacts_match_sources() -> None:
    stale = stale_artifacts()
    assert not stale, f"stale artifacts {stale}: run `python -m chain.build_artifacts` and commit"


def test_source_hash_covers_paths_and_contents(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "X.sol").write_text("contract X {}")
    first = source_hash(tmp_path)
    (tmp_path / "a" / "X.sol").write_text("contract X { }")
    assert source_hash(tmp_path) != first
    (tmp_path / "a" / "X.sol").write_text("contract X {}")
    assert source_hash(tmp_path) == first
    (tmp_path / "a" / "X.sol").rename(tmp_path / "Y.sol")
    assert source_hash(tmp_path) != first
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "Y.sol").rename(tmp_path / "a" / "X.sol")
    assert source_hash(tmp_path) == first


def test_interface_names_present() -> None:
    """The names the Python client relies on (contracts_iface) exist in the ABIs."""
    expected = {
        "ContentRegistry": {
            "register",
            "getContent",
            "isRegistered",
            "segmentCount",
            "setMetadataURI",
            "transferContentOwnership",
            "ContentRegistered",
            "MetadataUpdated",
            "ContentOwnershipTransferred",
        },
        "TransferReceipts": {
            "submitBatch",
            "hashReceipt",
            "isNonceUsed",
            "servedBytes",
            "receiptCount",
            "epochOf",
            "currentEpoch",
            "genesis",
            "epochLength",
            "ReceiptAccepted",
            "NonceUsed",
            "InvalidSignature",
            "NotProvider",
            "IssuedInFuture",
            "LengthMismatch",
            "EmptyBatch",
        },
        "DataAvailability": {
            "commit",
            "requestExit",
            "withdraw",
            "challenge",
            "respond",
            "slashExpired",
            "getChallenge",
            "openChallenge",
            "stakeOf",
            "availability",
            "isAvailable",
            "hostsOf",
            "segmentIndexOf",
            "Committed",
            "ExitRequested",
            "Withdrawn",
            "ChallengeIssued",
            "ChallengePassed",
            "ChallengeFailed",
            "HostSlashed",
            "ChallengeVoided",
            "SeedNotReady",
        },
        "HostingRewards": {
            "addValidator",
            "removeValidator",
            "setQuorum",
            "isValidator",
            "quorum",
            "validators",
            "fundEpoch",
            "fundEpochToken",
            "funded",
            "postAllocation",
            "claim",
            "claimed",
            "paid",
            "EpochFunded",
            "AllocationPosted",
            "Claimed",
            "SignersNotSorted",
            "NotValidator",
            "QuorumNotMet",
            "AllocationExceedsFunding",
            "AllocationExists",
            "AlreadyClaimed",
            "InvalidProof",
        },
    }
    for name, names in expected.items():
        abi = json.loads((ARTIFACTS / f"{name}.json").read_text())["abi"]
        have = {entry.get("name") for entry in abi}
        assert names <= have, f"{name} lacks {sorted(names - have)}"
