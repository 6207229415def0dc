"""Two proportions and their difference, with 95 % intervals (issue 15, item 4).

A campaign's treated and held-out owners each convert at some rate; the report shows both
rates with Wilson score intervals and the uplift (treated minus held-out) with Newcombe's
hybrid score interval (method 10 in Newcombe 1998), which behaves at 0 % and 100 % where the
plain normal approximation collapses to a width of zero. Below ``min_group`` owners in either
group the verdict is "too few owners to tell" and no number is printed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for ``successes`` out of ``n`` (``None`` for n = 0)."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float] | None:
    """Interval for p1 - p2 from the two Wilson intervals (Newcombe's method 10)."""
    a, b = wilson(x1, n1, z), wilson(x2, n2, z)
    if a is None or b is None:
        return None
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = a
    l2, u2 = b
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, lower), min(1.0, upper)


@dataclass(frozen=True)
class Comparison:
    """Treated against held out, in percentage points where it is a number at all."""

    treated_n: int
    treated_x: int
    holdout_n: int
    holdout_x: int
    min_group: int

    @property
    def too_few(self) -> bool:
        return min(self.treated_n, self.holdout_n) < self.min_group

    @property
    def rate_ci(self) -> tuple[float, float] | None:
        return _pp(wilson(self.treated_x, self.treated_n))

    @property
    def holdout_ci(self) -> tuple[float, float] | None:
        return _pp(wilson(self.holdout_x, self.holdout_n))

    @property
    def uplift(self) -> float | None:
        if self.too_few or not self.treated_n or not self.holdout_n:
            return None
        return round((self.treated_x / self.treated_n - self.holdout_x / self.holdout_n) * 100, 1)

    @property
    def uplift_ci(self) -> tuple[float, float] | None:
        if self.too_few:
            return None
        return _pp(newcombe(self.treated_x, self.treated_n, self.holdout_x, self.holdout_n))


def _pp(interval: tuple[float, float] | None) -> tuple[float, float] | None:
    return None if interval is None else (round(interval[0] * 100, 1), round(interval[1] * 100, 1))
