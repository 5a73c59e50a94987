"""A process watching its own CPU use, to warn when its figures can no longer be trusted."""

from __future__ import annotations

import os
import time
from collections import deque


class CpuMonitor:
    """CPU use of this process over a sliding window, as a percentage of one core.

    ``sample()`` is called about once a second; ``saturated`` is true when the average over
    the window is at or above ``threshold``.
    """

    def __init__(self, window: float = 5.0, threshold: float = 90.0) -> None:
        self.window = window
        self.threshold = threshold
        self._samples: deque[tuple[float, float]] = deque()
        self.percent = 0.0

    @staticmethod
    def _cpu_seconds() -> float:
        t = os.times()
        return t.user + t.system

    def sample(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._samples.append((now, self._cpu_seconds()))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()
        first_t, first_cpu = self._samples[0]
        elapsed = now - first_t
        if elapsed > 0:
            self.percent = 100.0 * (self._samples[-1][1] - first_cpu) / elapsed
        return self.percent

    @property
    def saturated(self) -> bool:
        if len(self._samples) < 2 or self._samples[-1][0] - self._samples[0][0] < self.window * 0.8:
            return False
        return self.percent >= self.threshold
