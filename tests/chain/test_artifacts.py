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
    """The names the Python client and indexer rely on exist in the ABIs (docs §3)."""
    expected = {
        "ContentRegistry": {
            "register",
            "getContent",
            "isRegistered",
            "registeredSize",
            "sizeOf",
            "segmentCount",
            "layoutOf",
            "setMetadataURI",
            "ContentRegistered",
            "AlreadyRegistered",
            "SizeProofInvalid",
            "InvalidSlots",
            "NotRegistered",
        },
        "TransferReceipts": {
            "deposit",
            "requestWithdrawal",
            "withdrawEscrow",
            "escrowOf",
            "earningsOf",
            "withdrawEarnings",
            "submitBatch",
            "hashReceipt",
            "isNonceUsed",
            "servedBytes",
            "receiptCount",
            "paymentsOf",
            "feesOf",
            "pairBytes",
            "epochOf",
            "currentEpoch",
            "minPricePerGiB",
            "feeBps",
            "totalBurnt",
            "ReceiptAccepted",
            "ReceiptRejected",
            "LengthMismatch",
            "EmptyBatch",
        },
        "DataAvailability": {
            "commit",
            "topUp",
            "requestExit",
            "withdraw",
            "challenge",
            "respond",
            "slashExpired",
            "getChallenge",
            "sampleIndicesOf",
            "drawSampleIndices",
            "openChallenge",
            "commitmentOf",
            "hostsOf",
            "availability",
            "isAvailable",
            "isDue",
            "currentPeriod",
            "startBlock",
            "challengeBond",
            "params",
            "fundStorage",
            "storageBudgetOf",
            "fundRewards",
            "rewardPool",
            "owedTo",
            "withdrawOwed",
            "storageFeesOf",
            "storagePaidOf",
            "Committed",
            "ChallengeIssued",
            "ChallengePassed",
            "ChallengeFailed",
            "ChallengeVoided",
            "StoragePaid",
            "SeedNotReady",
        },
        "HostingRewards": {
            "addValidator",
            "setQuorum",
            "quorum",
            "validators",
            "fundEpoch",
            "fundEpochToken",
            "funded",
            "postAllocation",
            "claim",
            "claimed",
            "paid",
            "rollover",
            "feeCapOf",
            "hashAllocation",
            "EpochFunded",
            "AllocationPosted",
            "Claimed",
            "ExceedsFeeCap",
        },
    }
    for name, names in expected.items():
        abi = json.loads((ARTIFACTS / f"{name}.json").read_text())["abi"]
        have = {entry.get("name") for entry in abi}
        assert names <= have, f"{name} lacks {sorted(names - have)}"
