"""``lcore runs compare A B``: per endpoint, what changed from run A to run B, and whether the
change is larger than run-to-run noise (pure: no I/O).

Three tests per row, each on data the store keeps whole:

- Response times: the Mann-Whitney U test (Wilcoxon rank-sum) on the two histograms. Every
  request of A and of B is ranked together; ties (requests in the same histogram bucket, whose
  width is under 1/64 of its value) share their mid-rank. U counts the pairs (a, b) where b is
  slower, ties counting half; under "same distribution" U is about normal with mean nA*nB/2 and
  a variance corrected for ties, which gives z and a two-sided p-value. It needs no
  assumption on the shape of the distribution (response times are skewed, multi-modal), and
  the histograms give it exactly. The effect size is P(B slower) = U / (nA*nB): 0.5 means no
  change.
- Requests/s: requests of a run as a Poisson count over its duration; the two rates are
  compared with the z-test on their difference (variance n/t^2 each).
- Failures: the failure ratios compared with the two-proportion z-test.

A row is "slower" (or "faster", "fewer rps"...) when its test's p-value is under ``alpha``
(default 0.01): the difference is unlikely to be noise. It is a *regression* when it is also
larger than ``tolerance``: the median, p95 or p99 up by more than tolerance %, requests/s
down by more, or the failure ratio up by more than tolerance % of A's (any significant rise
from zero failures counts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lcore.histogram import Histogram
from lcore.stats import MergedStats, StatsEntry

__all__ = [
    "ALPHA",
    "Comparison",
    "RowComparison",
    "compare_stats",
    "mann_whitney",
    "poisson_rates",
    "two_proportions",
]

ALPHA = 0.01
TOLERANCE = 10.0
# the percentiles whose rise makes a regression (the others are shown, not judged: p100 is
# one request)
_JUDGED = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class TestResult:
    name: str
    statistic: float  # z
    p_value: float
    effect: float  # U/(nA nB) for Mann-Whitney; B/A - 1 for rates and ratios


def _two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def mann_whitney(a: Histogram, b: Histogram) -> TestResult | None:
    """The Mann-Whitney U test of B against A over their buckets; None without requests."""
    n_a, n_b = a.count, b.count
    if not n_a or not n_b:
        return None
    counts: dict[int, list[int]] = {}
    for low, _, n in a.buckets():
        counts.setdefault(low, [0, 0])[0] += n
    for low, _, n in b.buckets():
        counts.setdefault(low, [0, 0])[1] += n
    below = 0  # requests of both runs in lower buckets
    rank_sum_b = 0.0
    ties = 0
    for low in sorted(counts):
        in_a, in_b = counts[low]
        group = in_a + in_b
        mid_rank = below + (group + 1) / 2
        rank_sum_b += in_b * mid_rank
        ties += group**3 - group
        below += group
    n = n_a + n_b
    u_b = rank_sum_b - n_b * (n_b + 1) / 2
    mean = n_a * n_b / 2
    variance = n_a * n_b / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    effect = u_b / (n_a * n_b)
    if variance <= 0:  # every request in one bucket in both runs: nothing to tell apart
        return TestResult("Mann-Whitney U", 0.0, 1.0, effect)
    z = (u_b - mean) / math.sqrt(variance)
    return TestResult("Mann-Whitney U", z, _two_sided(z), effect)


def poisson_rates(n_a: int, t_a: float, n_b: int, t_b: float) -> TestResult | None:
    """Two Poisson rates (n requests over t seconds) compared: z on their difference."""
    if t_a <= 0 or t_b <= 0 or not (n_a or n_b):
        return None
    r_a, r_b = n_a / t_a, n_b / t_b
    se = math.sqrt(n_a / t_a**2 + n_b / t_b**2)
    z = (r_b - r_a) / se if se else 0.0
    return TestResult("Poisson rate z", z, _two_sided(z), r_b / r_a - 1 if r_a else math.inf)


def two_proportions(k_a: int, n_a: int, k_b: int, n_b: int) -> TestResult | None:
    """Two failure ratios (k of n) compared: the pooled two-proportion z-test."""
    if not n_a or not n_b:
        return None
    p_a, p_b = k_a / n_a, k_b / n_b
    pooled = (k_a + k_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = (p_b - p_a) / se if se else 0.0
    return TestResult("two-proportion z", z, _two_sided(z), p_b / p_a - 1 if p_a else (math.inf if p_b else 0.0))


@dataclass
class RowComparison:
    method: str
    name: str
    a: dict[str, Any]
    b: dict[str, Any]
    times: TestResult | None
    rate: TestResult | None
    failures: TestResult | None
    verdicts: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "Aggregated" if not self.method and self.name == "Aggregated" else f"{self.method} {self.name}"

    @property
    def verdict(self) -> str:
        return ", ".join(self.verdicts) if self.verdicts else "within noise"

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)


@dataclass
class Comparison:
    a_id: str
    b_id: str
    percentiles: list[float]
    alpha: float
    tolerance: float
    rows: list[RowComparison]

    @property
    def regressions(self) -> list[RowComparison]:
        return [r for r in self.rows if r.regressed]


def _figures(entry: StatsEntry | None, percentiles: Sequence[float], duration: float) -> dict[str, Any]:
    if entry is None:
        return {"requests": 0, "failures": 0, "rps": 0.0, "fail_ratio": 0.0, "avg": None,
                "percentiles": [None] * len(percentiles)}  # fmt: skip
    h = entry.histogram
    return {
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "rps": entry.num_requests / duration if duration > 0 else 0.0,
        "fail_ratio": entry.fail_ratio if entry.num_requests else 0.0,
        "avg": entry.avg_response_time if h.count else None,
        "percentiles": [v / 1000 for v in h.quantiles(percentiles)] if h.count else [None] * len(percentiles),
    }


def _duration(stats: MergedStats) -> float:
    """From the first request to the end of the last report: what total_rps divides by."""
    last = stats.last_request_timestamp
    return max(last - stats.start_time, 0.0) if last is not None else 0.0


def _change(a: float | None, b: float | None) -> float | None:
    """B relative to A, in %."""
    if a is None or b is None or a == 0:
        return None
    return (b / a - 1) * 100


def compare_stats(
    a_id: str,
    a: MergedStats,
    b_id: str,
    b: MergedStats,
    percentiles: Sequence[float],
    alpha: float = ALPHA,
    tolerance: float = TOLERANCE,
) -> Comparison:
    """Every endpoint of either run, then Aggregated, compared."""
    percentiles = list(percentiles)
    t_a, t_b = _duration(a), _duration(b)
    keys = sorted(set(a.entries) | set(b.entries))
    pairs: list[tuple[str, str, StatsEntry | None, StatsEntry | None]] = [
        (key[1], key[0], a.entries.get(key), b.entries.get(key)) for key in keys
    ]
    pairs.append(("", "Aggregated", a.total, b.total))
    rows = []
    for method, name, ea, eb in pairs:
        fa, fb = _figures(ea, percentiles, t_a), _figures(eb, percentiles, t_b)
        times = mann_whitney(ea.histogram, eb.histogram) if ea is not None and eb is not None else None
        rate = poisson_rates(fa["requests"], t_a, fb["requests"], t_b)
        fails = two_proportions(fa["failures"], fa["requests"], fb["failures"], fb["requests"])
        row = RowComparison(method, name, fa, fb, times, rate, fails)
        _judge(row, percentiles, alpha, tolerance)
        rows.append(row)
    return Comparison(a_id, b_id, percentiles, alpha, tolerance, rows)


def _judge(row: RowComparison, percentiles: Sequence[float], alpha: float, tolerance: float) -> None:
    if row.a["requests"] == 0 or row.b["requests"] == 0:
        row.verdicts.append("only in A" if row.b["requests"] == 0 else "only in B")
        return
    if row.times is not None and row.times.p_value < alpha:
        slower = row.times.effect > 0.5
        row.verdicts.append("slower" if slower else "faster")
        if slower:
            for q in _JUDGED:
                if q in percentiles:
                    i = percentiles.index(q)
                    change = _change(row.a["percentiles"][i], row.b["percentiles"][i])
                    if change is not None and change > tolerance:
                        row.regressions.append(f"{_percent(q)} +{change:.1f}%")
            change = _change(row.a["avg"], row.b["avg"])
            if not row.regressions and change is not None and change > tolerance and not any(
                q in percentiles for q in _JUDGED
            ):
                row.regressions.append(f"avg +{change:.1f}%")
    if row.rate is not None and row.rate.p_value < alpha:
        lower = row.rate.effect < 0
        row.verdicts.append("fewer requests/s" if lower else "more requests/s")
        if lower and -row.rate.effect * 100 > tolerance:
            row.regressions.append(f"requests/s {row.rate.effect * 100:.1f}%")
    if row.failures is not None and row.failures.p_value < alpha:
        more = row.b["fail_ratio"] > row.a["fail_ratio"]
        row.verdicts.append("more failures" if more else "fewer failures")
        if more and (row.a["fail_ratio"] == 0 or row.failures.effect * 100 > tolerance):
            row.regressions.append(f"failure ratio {row.a['fail_ratio']:.2%} -> {row.b['fail_ratio']:.2%}")


def _percent(q: float) -> str:
    value = q * 100
    return f"p{int(value) if value.is_integer() else round(value, 4)}"


def to_json(c: Comparison) -> dict[str, Any]:
    def test(t: TestResult | None) -> dict[str, Any] | None:
        if t is None:
            return None
        effect = t.effect if math.isfinite(t.effect) else None
        return {"test": t.name, "z": round(t.statistic, 4), "p_value": t.p_value, "effect": effect}

    return {
        "a": c.a_id,
        "b": c.b_id,
        "alpha": c.alpha,
        "tolerance": c.tolerance,
        "percentiles": c.percentiles,
        "rows": [
            {
                "method": r.method,
                "name": r.name,
                "a": r.a,
                "b": r.b,
                "response_times": test(r.times),
                "requests_per_second": test(r.rate),
                "failures": test(r.failures),
                "verdict": r.verdict,
                "regressions": r.regressions,
            }
            for r in c.rows
        ],
        "regression": bool(c.regressions),
    }
