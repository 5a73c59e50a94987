"""Time spans as Locust writes them on the command line: ``90``, ``90s``, ``10m``, ``1h30m``."""

from __future__ import annotations

import re

# Units in Locust's fixed order; each at most once. Locust knows no days (use 24h).
_TIMESPAN = re.compile(r"(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?", re.ASCII)
_FORMS = "20, 20s, 3m, 2h, 1h20m, 3h30m10s"


def parse_timespan(text: str) -> int:
    """Seconds in ``text``; a bare number means seconds. Raises ValueError on anything else."""
    span = text.strip() if isinstance(text, str) else ""
    if span.isascii() and span.isdigit():
        return int(span)
    # fullmatch, where Locust's match() would silently drop a bad tail ("1h30x" -> 1h).
    found = _TIMESPAN.fullmatch(span) if span else None
    if found is None or not any(found.groupdict().values()):
        raise ValueError(f"invalid time span {text!r}; valid forms: {_FORMS}")
    hours, minutes, seconds = (int(found.group(unit) or 0) for unit in "hms")
    return hours * 3600 + minutes * 60 + seconds
