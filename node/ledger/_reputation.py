"""Reputation with memory and the reward allocation rule: pure, exact, integer functions.

This is docs/incentives.md §4 in code; :class:`~node.ledger.PayoutLedger` stores the state and
the simulations call these functions directly (so they are kept cheap: plain ints, no Fraction
on the hot path).

Reputation (Storj's beta reputation). Per host a state ``(alpha, beta)`` of integers scaled by
``ONE = 10**18``, starting at ``(alpha0 * ONE, 0)``. On every proof outcome::

    alpha = alpha * lam.numerator // lam.denominator + w * s * ONE
    beta  = beta  * lam.numerator // lam.denominator + w * (1 - s) * ONE

with ``s = 1`` for a pass, ``0`` for a failure, ``w = 1`` for a pass or a fault (``"expired"``:
downtime) and ``w = w_invalid`` for deletion evidence (``"invalid"``). With the defaults,
``lam = 999/1000``: old outcomes fade, so a host recovers from a bad week but not from lying
often. ``score = alpha / (alpha + beta)`` (exact, a Fraction). A host is *vetting* while it has
fewer than ``vetting_passes`` passes, and *disqualified* for good the first time its score falls
below ``dq_score`` (checked exactly: ``alpha * q < p * (alpha + beta)`` for ``dq_score = p/q``).
A disqualified host's ``alpha``/``beta`` keep moving but the flag never clears.

Allocation of ``budget`` for one epoch::

    fees(h)   = receipt fees + storage fees of h in the epoch
    weight(h) = fees(h) * score_q(h) * (1 if vetting else 2)       0 if disqualified or no fees
    share(h)  = budget * weight(h) // sum(weights)
    amount(h) = min(share(h), fees(h) * rebate_bps // 10000)

where ``score_q(h) = alpha * ONE // (alpha + beta)`` is the score rounded down to 18 decimals
(the common denominator that keeps the sum of weights an integer; halving a vetting host's
weight is doubling everybody else's). Every step is integer arithmetic, so every validator gets
the same amounts bit for bit; shares are floors, so ``sum(amounts) <= budget``; and
``amount(h) <= fees(h) * rebate_bps / 10000 < fees(h)``: a host that pays fees to itself always
loses ``fees - amount > 0``, whatever the budget. Hosts with amount 0 are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

ONE = 10**18
"""Fixed-point scale of ``alpha`` and ``beta``."""

BPS = 10_000

Outcome = Literal["pass", "expired", "invalid"]


@dataclass(frozen=True)
class ReputationParams:
    """Parameters of the beta reputation (docs/incentives.md §4)."""

    alpha0: int = 10  #: initial alpha (in units of ONE): the benefit of the doubt
    w_invalid: int = 20  #: weight of deletion evidence; a pass or a fault weighs 1
    vetting_passes: int = 3  #: passes before a host's weight stops being halved
    dq_score: Fraction = Fraction(1, 2)  #: disqualified for good below this score
    lam: Fraction = Fraction(999, 1000)  #: memory: both alpha and beta decay by lam per outcome
    # Derived integers, so the hot path does no Fraction or attribute arithmetic.
    _lam_n: int = field(init=False, repr=False, compare=False)
    _lam_d: int = field(init=False, repr=False, compare=False)
    _dq_n: int = field(init=False, repr=False, compare=False)
    _dq_d: int = field(init=False, repr=False, compare=False)
    _w_invalid: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lam, dq = Fraction(self.lam), Fraction(self.dq_score)
        if not (isinstance(self.alpha0, int) and self.alpha0 > 0):
            raise ValueError("alpha0 must be a positive int")
        if not (isinstance(self.w_invalid, int) and self.w_invalid >= 1):
            raise ValueError("w_invalid must be an int >= 1")
        if not (isinstance(self.vetting_passes, int) and self.vetting_passes >= 0):
            raise ValueError("vetting_passes must be an int >= 0")
        if not 0 <= dq < 1:
            raise ValueError("dq_score must be in [0, 1)")
        if not 0 < lam <= 1:
            raise ValueError("lam must be in (0, 1]")
        object.__setattr__(self, "_lam_n", lam.numerator)
        object.__setattr__(self, "_lam_d", lam.denominator)
        object.__setattr__(self, "_dq_n", dq.numerator)
        object.__setattr__(self, "_dq_d", dq.denominator)
        object.__setattr__(self, "_w_invalid", self.w_invalid * ONE)


@dataclass(frozen=True)
class RewardParams:
    """Parameters of the allocation; ``rebate_bps < 10000`` is what makes self-dealing lose."""

    rebate_bps: int = 5000

    def __post_init__(self) -> None:
        if not (isinstance(self.rebate_bps, int) and 0 <= self.rebate_bps < BPS):
            raise ValueError("rebate_bps must be an int in [0, 10000)")


@dataclass(frozen=True)
class Reputation:
    """One host's reputation state (``alpha``, ``beta`` scaled by :data:`ONE`)."""

    alpha: int
    beta: int
    passes: int
    disqualified: bool

    @classmethod
    def initial(cls, params: ReputationParams | None = None) -> Reputation:
        p = params if params is not None else DEFAULT_REPUTATION
        return cls(p.alpha0 * ONE, 0, 0, False)

    @property
    def score(self) -> Fraction:
        """``alpha / (alpha + beta)`` exactly (0 for the degenerate all-zero state)."""
        total = self.alpha + self.beta
        return Fraction(self.alpha, total) if total else Fraction(0)

    @property
    def score_q(self) -> int:
        """The score rounded down to 18 decimals, as an integer over :data:`ONE`."""
        total = self.alpha + self.beta
        return self.alpha * ONE // total if total else 0

    def vetting(self, params: ReputationParams | None = None) -> bool:
        p = params if params is not None else DEFAULT_REPUTATION
        return self.passes < p.vetting_passes


DEFAULT_REPUTATION = ReputationParams()
DEFAULT_REWARD = RewardParams()


def update_reputation(
    rep: Reputation, outcome: Outcome, params: ReputationParams = DEFAULT_REPUTATION
) -> Reputation:
    """The state after one proof outcome (``"pass"``, ``"expired"`` or ``"invalid"``)."""
    n, d = params._lam_n, params._lam_d
    alpha = rep.alpha * n // d
    beta = rep.beta * n // d
    passes = rep.passes
    if outcome == "pass":
        alpha += ONE
        passes += 1
    elif outcome == "expired":
        beta += ONE
    elif outcome == "invalid":
        beta += params._w_invalid
    else:
        raise ValueError(f"unknown proof outcome {outcome!r}")
    dq = rep.disqualified or alpha * params._dq_d < params._dq_n * (alpha + beta)
    return Reputation(alpha, beta, passes, dq)


def allocate_amounts(
    fees: Mapping[str, int],
    reps: Mapping[str, Reputation],
    budget: int,
    reward: RewardParams = DEFAULT_REWARD,
    rep_params: ReputationParams = DEFAULT_REPUTATION,
) -> dict[str, int]:
    """Split ``budget`` over hosts by fee-weighted score, each capped by its fee rebate.

    ``fees``: fees burnt on payments each host received in the epoch; ``reps``: each host's
    reputation for the epoch (a host missing from it has :meth:`Reputation.initial`). Returns
    the non-zero amounts only. Raises ValueError on a negative budget or fee.
    """
    if budget < 0:
        raise ValueError("budget must be non-negative")
    vet = rep_params.vetting_passes
    weights: dict[str, int] = {}
    total = 0
    for host, fee in fees.items():
        if fee <= 0:
            if fee < 0:
                raise ValueError(f"negative fees for {host}")
            continue
        rep = reps.get(host)
        if rep is None:
            rep = Reputation.initial(rep_params)
        if rep.disqualified:
            continue
        s = rep.alpha + rep.beta
        if not s:
            continue
        w = fee * (rep.alpha * ONE // s)
        if rep.passes >= vet:
            w *= 2
        if w:
            weights[host] = w
            total += w
    if not total or not budget:
        return {}
    bps = reward.rebate_bps
    out: dict[str, int] = {}
    for host, w in weights.items():
        amount = min(budget * w // total, fees[host] * bps // BPS)
        if amount:
            out[host] = amount
    return out
