"""The validator's round: due commitments challenged once, bounded rounds, expired ones slashed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import plyvel
import pytest

from node.service import ValidatorDuty

from .fakes import Commitment, FakeChain, FakePort, SimulatedCrash

VALIDATOR = "0x" + "11" * 20
HOSTS = ["0x" + f"{i:02x}" * 20 for i in range(0x20, 0x26)]


def _commit(chain: FakeChain, root: bytes, slot: int, host: str, *, due: bool = True) -> None:
    chain.commitments[(root, slot)] = Commitment(root, slot, host, b"\0" * 32, 4, due=due)


@pytest.fixture
def chain() -> FakeChain:
    c = FakeChain()
    for i, host in enumerate(HOSTS):
        _commit(c, bytes([i]) * 32, i % 3, host)
    _commit(c, b"\xee" * 32, 0, HOSTS[0], due=False)  # not due this period
    return c


@pytest.fixture
def db(tmp_path: Path) -> Iterator[plyvel.DB]:
    d = plyvel.DB(str(tmp_path / "v"), create_if_missing=True)
    yield d
    if not d.closed:
        d.close()


def test_due_commitments_are_challenged_bounded_per_round(chain: FakeChain, db: plyvel.DB) -> None:
    duty = ValidatorDuty(FakePort(chain, VALIDATOR), db, VALIDATOR, max_challenges=4)
    first = duty.run_once()
    assert len(first["challenged"]) == 4
    second = duty.run_once()
    assert len(second["challenged"]) == 2  # the rest; nothing twice
    assert duty.run_once()["challenged"] == []
    challenged = {(ch.root, ch.slot) for ch in chain.challenges.values()}
    assert challenged == {(k.root, k.slot) for k in chain.commitments.values() if k.due}
    assert duty.book.counts()["issued"] == 6
    assert all(ch.scheduled for ch in chain.challenges.values())


def test_own_commitments_are_not_challenged(chain: FakeChain, db: plyvel.DB) -> None:
    duty = ValidatorDuty(FakePort(chain, HOSTS[1]), db, HOSTS[1])
    duty.run_once()
    assert HOSTS[1] not in {ch.host for ch in chain.challenges.values()}
    assert len(chain.challenges) == 5


def test_restart_after_a_crash_mid_challenge_does_not_challenge_twice(
    chain: FakeChain, tmp_path: Path
) -> None:
    path = str(tmp_path / "v")
    db = plyvel.DB(path, create_if_missing=True)
    port = FakePort(chain, VALIDATOR)
    port.crash_after = "challenge"  # mined, then the process dies before recording it
    duty = ValidatorDuty(port, db, VALIDATOR, max_challenges=1)
    with pytest.raises(SimulatedCrash):
        duty.run_once()
    db.close()
    assert len(chain.challenges) == 1

    # An RPC node whose view lags still lists the commitment as due: the intent record holds.
    lagging = FakePort(chain, VALIDATOR)
    crashed_on = next(iter(chain.challenges.values()))
    stale = [(crashed_on.root, crashed_on.slot, crashed_on.host)]
    lagging.due_commitments = lambda: stale  # type: ignore[method-assign]
    db = plyvel.DB(path, create_if_missing=True)
    duty = ValidatorDuty(lagging, db, VALIDATOR, max_challenges=1)
    assert duty.run_once()["challenged"] == []
    assert "challenge" not in lagging.calls
    db.close()

    # With the chain's true view, the remaining due commitments are challenged, that one not.
    db = plyvel.DB(path, create_if_missing=True)
    duty = ValidatorDuty(FakePort(chain, VALIDATOR), db, VALIDATOR)
    duty.run_once()
    db.close()
    keys = [(ch.root, ch.slot) for ch in chain.challenges.values()]
    assert len(keys) == len(set(keys)) == 6


def test_a_refused_challenge_is_not_recorded(chain: FakeChain, db: plyvel.DB) -> None:
    other = ValidatorDuty(
        FakePort(chain, "0x" + "33" * 20), db.prefixed_db(b"o/"), "0x" + "33" * 20
    )
    port = FakePort(chain, VALIDATOR)
    seen = port.due_commitments()
    other.run_once()  # another validator takes them all first
    port.due_commitments = lambda: seen  # type: ignore[method-assign]
    duty = ValidatorDuty(port, db.prefixed_db(b"v/"), VALIDATOR)
    assert duty.run_once()["challenged"] == []
    assert duty.status.refused == 6
    assert duty.book.counts()["issued"] == 0
    assert all(duty.book.intent_at(r, s) is None for r, s, _ in seen)


def test_expired_challenges_are_slashed_once(chain: FakeChain, db: plyvel.DB) -> None:
    duty = ValidatorDuty(FakePort(chain, VALIDATOR), db, VALIDATOR, max_slashes=4)
    duty.run_once()
    assert duty.run_once()["slashed"] == []  # nothing expired yet
    chain.now += chain.response_window + 1
    assert len(duty.run_once()["slashed"]) == 4
    assert len(duty.run_once()["slashed"]) == 2
    assert duty.run_once()["slashed"] == []
    assert sum(k.slashed for k in chain.commitments.values()) == 6
    assert duty.book.counts()["slashed"] == 6
