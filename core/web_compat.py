"""What ``locust.web`` resolves to. lcore's status page is aiohttp on the master, not Flask: a
locustfile extends the master's ``environment.web_ui`` (``lcore.web_ui``: its ``app`` is a
Flask app whose routes the master serves), but cannot start a Flask web UI of its own."""

from __future__ import annotations

from typing import Any


class WebUI:
    """Locust's Flask web UI class, named for imports and type hints only."""

    app: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("lcore's status page is not Flask; it cannot be extended with routes")


__all__ = ["WebUI"]
