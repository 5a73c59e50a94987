"""``locust.util.rounding``: Locust's rounding of a figure, half away from zero."""

from __future__ import annotations


def proper_round(val: float, digits: int = 0) -> float:
    """``val`` rounded to ``digits`` with halves rounded up, where ``round`` rounds them to
    even (Locust's ``proper_round``: 2.5 gives 3.0, not 2)."""
    return float(round(val + 10.0 ** (-len(str(val)) - 1), digits))
