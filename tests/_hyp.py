"""Hypothesis profiles (`HYPOTHESIS_PROFILE=dev|ci|deep`) and `examples(n)`, which scales a test's
own example count by the active profile, so a count written in a test never caps a deeper run.

A test that wants fewer or more examples than the profile default (because one example is slow,
or the input space is small or large) writes `@settings(max_examples=examples(40))`: 40 under
`dev`, 80 under `ci`, 800 under `deep`. A plain `@given` test gets the profile's default (100,
200, 2000). `pytest --hypothesis-profile NAME` works as well as the variable.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

BASE_EXAMPLES = 100
"""Hypothesis's own default `max_examples`; a profile's factor is its default over this."""

FACTORS = {"dev": 1, "ci": 2, "deep": 20}
"""dev: the counts written in the tests, i.e. what `make test` ran before profiles existed; ci:
twice that, for the run nobody waits on interactively; deep: a soak, run by hand."""

# Timing deadlines are noise on a loaded runner or in a long soak (dev keeps Hypothesis's 200 ms,
# so a test that became slow is noticed by whoever is watching); print_blob lets a failure seen in
# a log be replayed with @reproduce_failure.
_UNATTENDED = settings(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])

settings.register_profile("dev", settings.get_profile("default"), max_examples=BASE_EXAMPLES)
# ci keeps what Hypothesis's built-in `ci` profile gave CI before (derandomized, so a CI failure is
# a property of the commit and not of the seed, and no example database on a fresh clone).
settings.register_profile(
    "ci",
    _UNATTENDED,
    max_examples=BASE_EXAMPLES * FACTORS["ci"],
    derandomize=True,
    database=None,
)
# deep explores: random seeds, and the local example database replays what it found last time.
settings.register_profile("deep", _UNATTENDED, max_examples=BASE_EXAMPLES * FACTORS["deep"])


def profile_name(environ: dict[str, str] | None = None) -> str:
    """`HYPOTHESIS_PROFILE` if set, else `ci` when `CI` is set (as CI runners and .ci/run do),
    else `dev`."""
    env = os.environ if environ is None else environ
    explicit = env.get("HYPOTHESIS_PROFILE", "")
    if explicit:
        if explicit not in FACTORS:
            raise ValueError(
                f"HYPOTHESIS_PROFILE={explicit!r}: expected one of {', '.join(FACTORS)}"
            )
        return explicit
    return "ci" if env.get("CI", "").lower() not in ("", "0", "false", "no") else "dev"


def load_profile() -> str:
    """Load the profile `profile_name()` chooses; return its name."""
    name = profile_name()
    settings.load_profile(name)
    return name


def examples(n: int) -> int:
    """`n` scaled by the active profile's factor; never below 1. Evaluated when the decorator runs
    (test collection), after the profile is loaded."""
    return max(1, round(n * settings().max_examples / BASE_EXAMPLES))
