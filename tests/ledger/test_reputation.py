"""The pure reputation and allocation rule (docs/incentives.md §4), without a database."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.ledger import (
    ONE,
    Reputation,
    ReputationParams,
    RewardParams,
    allocate_amounts,
    update_reputation,
)

from .._hyp import examples

P = ReputationParams()
A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
C = "0x" + "cc" * 20


def run(outcomes, params=P) -> Reputation:
    rep = Reputation.initial(params)
    for o in outcomes:
        rep = update_reputation(rep, o, params)
    return rep


def test_initial_state_is_alpha0_and_vetting() -> None:
    rep = Reputation.initial(P)
    assert rep == Reputation(10 * ONE, 0, 0, False)
    assert rep.score == 1
    assert rep.vetting(P)


def test_update_is_the_documented_integer_recurrence() -> None:
    rep = Reputation(7 * ONE + 123, 3 * ONE + 999, 2, False)
    after = update_reputation(rep, "pass", P)
    assert after.alpha == (7 * ONE + 123) * 999 // 1000 + ONE
    assert after.beta == (3 * ONE + 999) * 999 // 1000
    assert after.passes == 3
    fault = update_reputation(rep, "expired", P)
    assert (fault.alpha, fault.beta) == (
        (7 * ONE + 123) * 999 // 1000,
        (3 * ONE + 999) * 999 // 1000 + ONE,
    )
    bad = update_reputation(rep, "invalid", P)
    assert bad.beta == (3 * ONE + 999) * 999 // 1000 + 20 * ONE
    assert fault.passes == bad.passes == 2


def test_a_fault_costs_less_than_deletion_evidence() -> None:
    seasoned = run(["pass"] * 50)
    after_fault = update_reputation(seasoned, "expired", P)
    after_invalid = update_reputation(seasoned, "invalid", P)
    assert after_invalid.score < after_fault.score < seasoned.score
    # a fresh host survives one fault but not one wrong proof
    assert not run(["expired"]).disqualified
    assert run(["invalid"]).disqualified


def test_memory_lets_a_host_recover_from_downtime() -> None:
    rep = run(["pass"] * 20 + ["expired"] * 5)
    low = rep.score
    for _ in range(200):
        rep = update_reputation(rep, "pass", P)
    assert rep.score > low
    assert not rep.disqualified


def test_disqualification_is_permanent() -> None:
    rep = run(["expired"] * 10)
    assert rep.disqualified
    for _ in range(3000):
        rep = update_reputation(rep, "pass", P)
    assert rep.score > P.dq_score  # the score recovered, the flag did not
    assert rep.disqualified


def test_disqualification_threshold_is_exact() -> None:
    # score exactly at dq_score is not below it
    params = ReputationParams(alpha0=1, w_invalid=1, lam=Fraction(1))
    rep = update_reputation(Reputation.initial(params), "expired", params)
    assert rep.score == Fraction(1, 2)
    assert not rep.disqualified
    assert update_reputation(rep, "expired", params).disqualified


def test_unknown_outcome_and_bad_params_are_refused() -> None:
    with pytest.raises(ValueError):
        update_reputation(Reputation.initial(P), "slashed", P)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RewardParams(rebate_bps=10_000)
    with pytest.raises(ValueError):
        ReputationParams(lam=Fraction(0))
    with pytest.raises(ValueError):
        ReputationParams(dq_score=Fraction(1))
    with pytest.raises(ValueError):
        allocate_amounts({A: 1}, {}, -1)


def test_vetting_halves_the_weight_until_enough_passes() -> None:
    vetted = run(["pass"] * 3)
    vetting = run(["pass"] * 2)
    assert not vetted.vetting(P) and vetting.vetting(P)
    # same fees, scores both 1: the vetting host weighs half as much
    assert vetted.score == vetting.score == 1
    amounts = allocate_amounts({A: 10**18, B: 10**18}, {A: vetted, B: vetting}, 3000)
    assert amounts == {A: 2000, B: 1000}


def test_no_fees_or_disqualified_get_nothing_and_missing_reps_are_initial() -> None:
    dq = run(["invalid"])
    amounts = allocate_amounts({A: 10**18, B: 0, C: 10**18}, {C: dq}, 1000)
    assert amounts == {A: 1000}  # A: initial reputation (vetting), alone in the sum


def test_rebate_caps_the_share() -> None:
    amounts = allocate_amounts({A: 100, B: 10**18}, {}, 10**18, RewardParams(rebate_bps=5000))
    assert amounts[A] == 50  # share would be ~100, capped at fees * 0.5
    assert amounts[B] == 10**18 // 2  # capped too: its share is almost the whole budget
    assert sum(amounts.values()) <= 10**18


def reference(fees, reps, budget, bps, params=P) -> dict[str, int]:
    """The §4 formula written with Fractions (score taken to 18 decimals)."""
    w = {}
    for h, f in fees.items():
        rep = reps.get(h, Reputation.initial(params))
        if f == 0 or rep.disqualified:
            continue
        w[h] = f * Fraction(rep.score_q, ONE) * (Fraction(1, 2) if rep.vetting(params) else 1)
    total = sum(w.values(), Fraction(0))
    out = {}
    for h, wh in w.items():
        if total:
            a = min(int(budget * wh / total), fees[h] * bps // 10_000)
            if a:
                out[h] = a
    return out


outcomes = st.lists(st.sampled_from(["pass", "expired", "invalid"]), max_size=40)
hosts = [f"0x{i:040x}" for i in range(6)]


@settings(max_examples=examples(200), deadline=None)
@given(
    fees=st.lists(st.one_of(st.integers(0, 10**6), st.integers(0, 2**200)), min_size=6, max_size=6),
    histories=st.lists(outcomes, min_size=6, max_size=6),
    budget=st.one_of(st.integers(0, 10**6), st.integers(0, 2**256)),
    bps=st.integers(0, 9999),
)
def test_allocation_invariants(fees, histories, budget, bps) -> None:
    fee_map = dict(zip(hosts, fees, strict=True))
    reps = {h: run(hist) for h, hist in zip(hosts, histories, strict=True)}
    amounts = allocate_amounts(fee_map, reps, budget, RewardParams(bps), P)
    assert amounts == reference(fee_map, reps, budget, bps)
    assert sum(amounts.values()) <= budget
    for h, a in amounts.items():
        assert 0 < a <= fee_map[h] * bps // 10_000
        assert a < fee_map[h]  # self-dealing always loses fees - a > 0
        assert not reps[h].disqualified


@settings(max_examples=examples(200), deadline=None)
@given(
    fee=st.integers(1, 2**256),
    budget=st.integers(0, 2**256),
    bps=st.integers(0, 9999),
    others=st.integers(0, 2**128),
)
def test_a_self_dealer_never_gets_back_what_it_burnt(fee, budget, bps, others) -> None:
    amounts = allocate_amounts({A: fee, B: others}, {}, budget, RewardParams(bps), P)
    assert amounts.get(A, 0) < fee


@settings(max_examples=examples(100), deadline=None)
@given(hist=outcomes)
def test_score_is_a_probability_and_state_stays_positive(hist) -> None:
    rep = run(hist)
    assert 0 <= rep.score <= 1
    assert rep.alpha + rep.beta > 0
    assert rep.passes == hist.count("pass")
    dq_prefix = any(run(hist[:i]).score < P.dq_score for i in range(len(hist) + 1))
    assert rep.disqualified == dq_prefix
