"""Reading a request body, at most N bytes of it: the one bounded reader of every route.

The webhook ingress (a bare ASGI endpoint) calls `read_body` with its `receive`; Starlette
routes call `request_body`. A declared `Content-Length` over the limit is refused before
anything is read, and a body that grows past it (chunked, or lying about its length) as
soon as it does. A client that goes away first raises `ClientGone`; one that stalls is cut
off by the server's body deadline (collector.web.serving, 30 s), which its task sees as
that same disconnect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request

from collector.errors import PayloadTooLarge
from collector.web.digits import ascii_int

__all__ = ["ClientGone", "PayloadTooLarge", "read_body", "request_body"]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class ClientGone(Exception):
    """The client disconnected before its body arrived."""


async def read_body(receive: Receive, declared: bytes | str | None, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes without reading them all."""
    length = ascii_int(declared)
    if length is not None and length > limit:
        raise PayloadTooLarge(f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def request_body(request: Request, limit: int) -> bytes:
    """A Starlette request's body, bounded as `read_body`."""
    return await read_body(request.receive, request.headers.get("content-length"), limit)
