"""Statistics for held-out rates: a 95 % interval per rate and a paired test between two models.

Evaluation rates are k/n over a few hundred rows at most, so a change of a few rows is noise.
Every rate COSMO prints carries its counts and a Wilson score interval (well behaved at 0/n and
n/n, unlike the normal approximation); two checkpoints evaluated on the same rows are compared
with the exact McNemar test on the rows whose verdict differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054
"""The standard normal quantile of 0.975: two-sided 95 % intervals."""


def wilson_interval(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial rate hits/n; (0, 1) when there are no rows."""
    if n < 0 or not 0 <= hits <= n:
        raise ValueError(f"wilson_interval: expected 0 <= hits <= n, got hits={hits}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(hits_a: int, n_a: int, hits_b: int, n_b: int) -> tuple[float, float]:
    """95 % interval of the difference of two independent rates, hits_a/n_a - hits_b/n_b: Newcombe's hybrid
    score interval (method 10 of his 1998 comparison), built from the two Wilson intervals. COSMO's refusal-rate
    gap (harmful rows refused minus look-alikes refused) is such a difference, over two sets of rows."""
    if n_a <= 0 or n_b <= 0:
        raise ValueError(f"difference_interval: both rates need rows, got n_a={n_a}, n_b={n_b}")
    p_a, p_b = hits_a / n_a, hits_b / n_b
    (low_a, high_a), (low_b, high_b) = wilson_interval(hits_a, n_a), wilson_interval(hits_b, n_b)
    diff = p_a - p_b
    return (diff - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2),
            diff + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2))


def refusal_gap(harmful_refused: int, harmful_rows: int, benign_refused: int, benign_rows: int
                ) -> tuple[float, float, float]:
    """The refusal-rate gap, harmful rows refused minus benign look-alikes refused, with its 95 % interval
    (`difference_interval`): (gap, low, high). 1 for a model that refuses exactly the harmful rows, 0 for one
    that cannot tell the two apart, whatever it refuses."""
    low, high = difference_interval(harmful_refused, harmful_rows, benign_refused, benign_rows)
    return harmful_refused / harmful_rows - benign_refused / benign_rows, low, high


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: rows where only model A has the
    verdict (`only_a`) and rows where only model B has it (`only_b`). Under the null each discordant
    row is a fair coin, so p = min(1, 2 · P[Binomial(only_a + only_b, 1/2) <= min(only_a, only_b)])."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"mcnemar_exact: counts must be >= 0, got {only_a} and {only_b}")
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_change(a: Sequence[bool], b: Sequence[bool]) -> dict[str, float | int]:
    """How a per-row verdict changed from model A to model B on the same rows (same order): the
    discordant counts, the rate difference b - a and the exact McNemar p-value."""
    if len(a) != len(b):
        raise ValueError(f"paired_change: the two evaluations cover {len(a)} and {len(b)} rows; a paired "
                         "test needs the same rows")
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    n = len(a)
    return {"n": n, "only_a": only_a, "only_b": only_b, "diff": (only_b - only_a) / n if n else 0.0,
            "p_value": mcnemar_exact(only_a, only_b)}
