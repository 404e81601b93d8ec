"""The HTTP client under the SDK: aiohttp, like `telnyx.DefaultAioHttpClient`, minus layers.

AsyncTelnyx still does everything that makes a call-control request: its URL, auth header,
idempotency key, timeouts, error types and response parsing (its retries are off:
control.make_client passes `max_retries=0`, the outbox retries). It accepts any
`httpx.AsyncClient` as its `http_client`; this one sends each request straight to a small
aiohttp transport and reads the whole (small, JSON) response at once. Skipped:
httpx's cookie jar (Telnyx sets no cookies, yet the jar builds a urllib request for every
response), its auth flow (the SDK sends its own header), its redirect loop (the API does
not redirect) and the streamed-response wrappers. Those wrappers reference each other, so
every command used to leave about forty objects for the cyclic garbage collector, and
collecting them was the longest pause in the server. `build_request` skips merging
httpx's client-level base URL, cookies, query and default headers into every request: the
SDK sends a complete URL and its own headers (its User-Agent and Accept win anyway), and
aiohttp adds Accept-Encoding itself. Measured by `make bench`.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import aiohttp
import httpx

MAX_CONNECTIONS = 100  # the SDK's own default (DEFAULT_CONNECTION_LIMITS)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's TLS context (certifi's CA bundle, hostnames checked), as the SDK's own
    clients verify with; built once per process. Loading the bundle takes tens of
    milliseconds, so the server builds it at start-up, off the event loop."""
    return httpx.create_ssl_context()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (a keep-alive pool), opened on first use in the running loop."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=tls_context())
        # httpx decodes the body by its Content-Encoding; aiohttp must not decode it first
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        limits = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(
            connect=limits.get("pool"),
            sock_connect=limits.get("connect"),
            sock_read=limits.get("read"),
        )
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                body = await response.read()
                status, reason, headers = response.status, response.reason, response.raw_headers
        except TimeoutError as exc:  # aiohttp.ServerTimeoutError too
            raise httpx.TimeoutException(str(exc) or "timed out", request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(str(exc) or type(exc).__name__, request=request) from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason.encode("latin-1", "replace")
        return httpx.Response(
            status, headers=headers, content=body, request=request, extensions=extensions
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class CommandHttpClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` whose `send` goes straight to the aiohttp transport."""

    def __init__(self, *, timeout: float, max_connections: int = MAX_CONNECTIONS) -> None:
        super().__init__(timeout=timeout, transport=AiohttpTransport(max_connections))

    def build_request(  # type: ignore[override]
        self,
        method: str,
        url: httpx.URL | str,
        *,
        content: Any = None,
        params: Any = None,
        headers: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
        extensions: dict[str, Any] | None = None,
        **body: Any,
    ) -> httpx.Request:
        """The request as the SDK built it (URL, headers, body), with the timeout attached."""
        extensions = dict(extensions or {})
        if "timeout" not in extensions:
            default = timeout is httpx.USE_CLIENT_DEFAULT
            extensions["timeout"] = (self.timeout if default else httpx.Timeout(timeout)).as_dict()
        return httpx.Request(
            method,
            url,
            content=content,
            params=params,
            headers=headers,
            extensions=extensions,
            **{k: v for k, v in body.items() if v is not None},
        )

    async def send(
        self, request: httpx.Request, *, stream: bool = False, **_: Any
    ) -> httpx.Response:
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        # the transport has read the body already, so `stream` changes nothing
        return await self._transport.handle_async_request(request)
