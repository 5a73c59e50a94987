"""A hub timer at an absolute ``time.monotonic()`` deadline, to the microsecond (gevent side).

libev's timers wait in ``epoll_wait``, whose timeout is whole milliseconds, rounded up: a timer
fires up to 1 ms late, 0.5 ms on average. At 1,000 arrivals a second that is half a schedule
step. On Linux a ``timerfd`` armed at the absolute deadline (``TFD_TIMER_ABSTIME`` on
``CLOCK_MONOTONIC``, the clock of ``time.monotonic()``) becomes readable on time, and the hub
watches it as it watches a socket. Elsewhere, or if the timerfd cannot be made, this falls back
to libev's timer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import time
from collections.abc import Callable
from typing import Any

_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = 0o2000000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p,
        ]  # fmt: skip
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


class PreciseTimer:
    """Calls ``callback()`` in the hub once ``time.monotonic()`` reaches the deadline set."""

    def __init__(self, loop: Any, callback: Callable[[], None]) -> None:
        self.loop = loop
        self.callback = callback
        self._fd = -1
        self._watcher: Any = None
        self._fallback: Any = None
        self._spec = _Itimerspec()
        if _LIBC is not None:
            fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                self._watcher = loop.io(fd, 1)  # readable when the deadline is reached

    @property
    def precise(self) -> bool:
        return self._fd >= 0

    def set(self, deadline: float) -> None:
        """Fire at ``deadline`` (``time.monotonic()``); replaces a deadline set before."""
        if self._fd < 0:
            self._set_fallback(deadline)
            return
        spec = self._spec
        sec = int(deadline)
        nsec = int((deadline - sec) * 1e9)
        if sec <= 0 and nsec <= 0:
            nsec = 1  # 0 would disarm the timer
        spec.it_value.tv_sec, spec.it_value.tv_nsec = sec, nsec
        if _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            self._set_fallback(deadline)  # (EINVAL: a deadline out of range)
            return
        if not self._watcher.active:
            self._watcher.start(self._fired)

    def _set_fallback(self, deadline: float) -> None:
        if self._fallback is not None:
            self._fallback.stop()
            self._fallback.close()
        self.loop.update_now()
        self._fallback = self.loop.timer(max(0.0, deadline - time.monotonic()))
        self._fallback.start(self.callback)

    def _fired(self) -> None:
        try:
            os.read(self._fd, 8)  # the expiry count: read to make it unreadable again
        except BlockingIOError:
            return  # re-armed since it fired: not due yet
        # the watcher stays on (a disarmed timerfd is never readable): starting and stopping it
        # would cost libev an epoll_ctl each time
        self.callback()

    def cancel(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._spec.it_value.tv_sec = self._spec.it_value.tv_nsec = 0
            _LIBC.timerfd_settime(self._fd, 0, ctypes.byref(self._spec), None)  # disarm
        if self._fallback is not None:
            self._fallback.stop()
            self._fallback.close()
            self._fallback = None

    def close(self) -> None:
        self.cancel()
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
