"""Confidence intervals across seeds: Student's t, two-sided 95% (no scipy dependency)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

#: t_{0.975, df} for df = 1..30 (standard tables).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959963984540054


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975  # Cornish-Fisher expansion, error < 1e-4 for df > 30
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci95(values: Sequence[float] | npt.NDArray[np.float64]) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the t-interval of the mean; a single value has a zero-width one."""
    a = np.asarray(values, dtype=np.float64)
    mean = float(a.mean())
    if a.size < 2:
        return mean, mean, mean
    half = t975(a.size - 1) * float(a.std(ddof=1)) / math.sqrt(a.size)
    return mean, mean - half, mean + half


def band95(rows: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
    """Per column of ``rows`` (seeds x points): mean, lower and upper 95% bounds."""
    mean = rows.mean(axis=0)
    if rows.shape[0] < 2:
        return mean, mean, mean
    half = t975(rows.shape[0] - 1) * rows.std(axis=0, ddof=1) / math.sqrt(rows.shape[0])
    return mean, mean - half, mean + half
