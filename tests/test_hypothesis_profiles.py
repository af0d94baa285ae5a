"""The Hypothesis profiles scale every test's example count, including counts written in tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ._hyp import FACTORS, examples, profile_name


@pytest.fixture
def restore_profile() -> Iterator[None]:
    before = settings.get_current_profile_name()
    yield
    settings.load_profile(before)


@pytest.mark.parametrize(
    "environ,expected",
    [
        ({}, "dev"),
        ({"CI": "true"}, "ci"),
        ({"CI": "false"}, "dev"),
        ({"CI": "true", "HYPOTHESIS_PROFILE": "deep"}, "deep"),
        ({"HYPOTHESIS_PROFILE": "ci"}, "ci"),
    ],
)
def test_profile_choice(environ: dict[str, str], expected: str) -> None:
    assert profile_name(environ) == expected


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="HYPOTHESIS_PROFILE='fast'"):
        profile_name({"HYPOTHESIS_PROFILE": "fast"})


@pytest.mark.parametrize("name", list(FACTORS))
def test_examples_scale_with_the_profile(name: str, restore_profile: None) -> None:
    settings.load_profile(name)
    assert examples(40) == 40 * FACTORS[name]
    assert examples(0) == 1
    assert settings().max_examples == 100 * FACTORS[name]


def test_deep_runs_more_examples_than_a_hard_coded_count(restore_profile: None) -> None:
    """The decorator is evaluated under `deep`, as it would be at collection with that profile."""
    settings.load_profile("deep")
    runs = []

    @settings(max_examples=examples(5), database=None)
    @given(st.integers())
    def prop(n: int) -> None:
        runs.append(n)

    prop()
    assert len(runs) > 5
