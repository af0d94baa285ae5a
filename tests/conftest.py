"""Suite-wide set-up: the Hypothesis profile (see tests/_hyp.py). Loaded before any test module is
imported, so `examples(n)` in a module's decorators already sees the chosen profile."""

from __future__ import annotations

from ._hyp import load_profile

load_profile()
