"""What ``locust.web`` resolves to. lcore's status page is aiohttp on the master, not Flask, so
there is no ``WebUI`` to extend: ``environment.web_ui`` is None (or false) in lcore's
processes, and locustfile code guarded by ``if environment.web_ui:`` is skipped."""

from __future__ import annotations

from typing import Any


class WebUI:
    """Locust's Flask web UI class, named for imports and type hints only."""

    app: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("lcore's status page is not Flask; it cannot be extended with routes")


__all__ = ["WebUI"]
