"""``DNSUser``: DNS queries over dnspython, each recorded as one request of type ``DNS``.

``self.client`` has every function of ``dns.query`` (``udp``, ``tcp``, ``https``, ``tls``,
``quic``...), called as dnspython's are, with one more keyword, ``name``, for the request's
name (the function's name otherwise), as in Locust. A response without an answer (NXDOMAIN,
an empty answer section) and any DNS or socket error are failures. The size recorded is the
response's size on the wire. Needs the ``dns`` extra.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dns.message
import dns.query
import dns.rcode
from dns.exception import DNSException

from ..users import User
from ._record import ContribError, elapsed_ms, fire, in_request


class DNSClient:
    """``client.udp(message, "127.0.0.1", port=5353, name="lookup")`` and so on."""

    def __init__(self, request_event: Any, user: Any = None) -> None:
        self.request_event = request_event
        self.user = user

    def __getattr__(self, function_name: str) -> Callable[..., dns.message.Message | None]:
        if function_name.startswith("_"):
            raise AttributeError(function_name)
        query = getattr(dns.query, function_name)  # AttributeError for what dns.query lacks

        def recorded(
            message: dns.message.Message, *args: Any, name: str | None = None, **kwargs: Any
        ) -> dns.message.Message | None:
            response = None
            error: BaseException | None = None
            with in_request(self.user):
                started = time.perf_counter()
                try:
                    response = query(message, *args, **kwargs)
                except (DNSException, OSError, EOFError) as e:  # EOF: TCP closed early
                    error = e
                response_time = elapsed_ms(started)
            size = 0
            if response is not None:
                size = len(response.to_wire())
                if not response.answer:
                    rcode = dns.rcode.to_text(response.rcode())
                    error = ContribError(f"No answer in DNS response ({rcode})")
            fire(
                self.request_event, "DNS", name or function_name, response_time, size, error,
                response=response,
            )  # fmt: skip
            return response

        return recorded


class DNSUser(User):
    """A user with ``self.client``, a ``DNSClient``."""

    abstract = True

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.client = DNSClient(environment.events.request, self)
