"""The HTTP client a user calls as ``self.client``: Locust's HttpSession API on gevent sockets.

This is the hot path of the whole tool, so the common request is lean: the request head is
mostly precomputed per session and host, a keep-alive socket is reused, a response with a
Content-Length is framed in a few bytes operations (llhttp, through geventhttpclient's
parser, takes over for chunked, length-less and HTTP/1.0 answers), and headers, text and
content decoding wait until a locustfile asks for them.

Where lcore differs from Locust on purpose:

* ``response_length`` is the body size on the wire (before gzip/deflate decoding), so a
  response is only decompressed if someone reads it.
* An exception raised inside a ``catch_response`` block behaves as in Locust: a
  ``ResponseError`` is recorded as the failure and swallowed; any other exception propagates
  and, unless ``success()``/``failure()`` was called first, nothing is recorded.

The client lives in the private package ``lcore._http``, which nothing outside this facade
imports (one way: ``wire`` ← ``fields`` ← ``response`` ← ``session``; ``body`` and
``errors`` on their own):

    session    HttpSession: builds the request, sends it, follows redirects, records it
    response   Response, catch_response's ResponseContextManager, response.request, HTTPError
    errors     a failed request's error: requests' exception and the socket error's class at once
    body       request bodies and query strings: form, JSON, multipart, basic auth
    fields     the header mapping and the cookie jar
    wire       keep-alive pools per (scheme, host, port), one request/response exchange
"""

from __future__ import annotations

from ._http.fields import CaseInsensitiveDict, CookieJar
from ._http.response import HTTPError, Response, ResponseContextManager, TooManyRedirects
from ._http.session import FastHttpSession, HttpSession

__all__ = [
    "CaseInsensitiveDict",
    "CookieJar",
    "FastHttpSession",
    "FastResponse",
    "HTTPError",
    "HttpSession",
    "LocustResponse",
    "Response",
    "ResponseContextManager",
    "TooManyRedirects",
]

# the public names' home is this module (tracebacks, reprs and pickles say lcore.http.X)
for _cls in (
    CaseInsensitiveDict,
    CookieJar,
    FastHttpSession,
    HTTPError,
    HttpSession,
    Response,
    ResponseContextManager,
    TooManyRedirects,
):
    _cls.__module__ = __name__
del _cls

# Locust's names for the same things (locust.clients, locust.contrib.fasthttp).
FastResponse = Response
LocustResponse = Response
