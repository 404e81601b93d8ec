"""Running the HTTP server: the listening socket, the event loop, uvicorn, the GC.

Slow clients: uvicorn arms no timer until a connection's first response is sent, so a
client that never finishes its request head, or never sends the body it announced, would
hold its connection (and, for a body, the request's task) forever. The protocol classes
here are uvicorn's own (httptools when installed, as uvicorn's "auto" picks, else h11)
with two deadlines: a request head must arrive within `HEAD_TIMEOUT_SECONDS` (from the
connection's start, or from the first byte of a later request on a kept-alive one) and
its body within `BODY_TIMEOUT_SECONDS` of the head; otherwise the server answers 408 (if
no response is under way) and closes the connection. They sit under every route: the
webhook ingress, the admin API and the dashboard. Idle kept-alive connections stay
uvicorn's (`timeout_keep_alive`, 5 s); a response may take as long as it needs (the live
event streams last for hours).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_SECONDS = 10.0  # a request head (request line and headers) must arrive within
BODY_TIMEOUT_SECONDS = 30.0  # and then its whole body within
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 18\r\nconnection: close\r\n\r\nrequest timed out\n"
)


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop (installed with uvicorn[standard]) when available: a cheaper loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def tune_gc() -> None:
    """Shorter, rarer collections: what exists at start-up (modules, forms, the app) is
    frozen out of every pass, and the webhook path's objects mostly die young anyway."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (bound before start-up, so port 0 gives a known port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns TCP_NODELAY on only for sockets that say so, and
    # without it each response (headers, then body) waits ~40 ms on a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def self_url(host: str, port: int) -> str:
    """How this process reaches itself (the sandbox's fake posts its webhooks there)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


class _Deadlines:
    """The head and body deadlines, for either of uvicorn's HTTP/1.1 protocols."""

    head_timeout: ClassVar[float] = HEAD_TIMEOUT_SECONDS
    body_timeout: ClassVar[float] = BODY_TIMEOUT_SECONDS
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    _deadline: asyncio.TimerHandle | None = None
    _waiting_for: str | None = None  # "head", "body" or None

    def _arm(self, what: str) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        seconds = self.head_timeout if what == "head" else self.body_timeout
        self._deadline = self.loop.call_later(seconds, self._expired, what)
        self._waiting_for = what

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiting_for = None

    def _expired(self, what: str) -> None:
        self._deadline = None
        self._waiting_for = None
        transport = self.transport
        if transport.is_closing():
            return
        cycle = self.cycle
        if what == "head":
            idle = cycle is None or cycle.response_complete  # no response under way
        else:
            idle = cycle is not None and not cycle.response_started
        if idle:
            transport.write(_TIMED_OUT)
        transport.close()  # the request's task, if any, receives http.disconnect

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm("head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def handle_websocket_upgrade(self, *args: Any) -> None:
        self._disarm()  # the connection is a WebSocket's now
        super().handle_websocket_upgrade(*args)  # type: ignore[misc]


class DeadlineH11Protocol(_Deadlines, H11Protocol):
    """h11's protocol with the deadlines, driven by h11's view of the client's side."""

    def handle_events(self) -> None:
        super().handle_events()
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._waiting_for != "body":
                self._arm("body")
        elif state is h11.IDLE:
            # the start of a head is buffered (an idle kept-alive connection is uvicorn's)
            if self._waiting_for != "head" and self.conn.trailing_data[0]:
                self._arm("head")
        else:
            self._disarm()


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn[standard] installs httptools
    DeadlineHttpToolsProtocol: type[asyncio.Protocol] | None = None
else:

    class DeadlineHttpToolsProtocol(_Deadlines, HttpToolsProtocol):  # type: ignore[no-redef]
        """httptools' protocol with the deadlines, driven by the parser's callbacks."""

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._waiting_for != "head":
                self._arm("head")

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._arm("body")

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()


def http_protocol(
    head_timeout: float = HEAD_TIMEOUT_SECONDS,
    body_timeout: float = BODY_TIMEOUT_SECONDS,
    parser: str = "auto",
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class (`parser`: "auto", "httptools" or "h11", as uvicorn's
    own `http` setting) with these deadlines."""
    base: type[asyncio.Protocol]
    if parser == "h11" or DeadlineHttpToolsProtocol is None:
        base = DeadlineH11Protocol
    else:
        base = DeadlineHttpToolsProtocol
    if (head_timeout, body_timeout) == (HEAD_TIMEOUT_SECONDS, BODY_TIMEOUT_SECONDS):
        return base
    attrs = {"head_timeout": head_timeout, "body_timeout": body_timeout}
    return type(base.__name__, (base,), attrs)


class Server(uvicorn.Server):
    """uvicorn's server, but a SIGTERM/SIGINT shutdown exits 0 instead of re-raising."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


async def serve(
    runtime: Any,
    sock: socket.socket,
    ready: asyncio.Event | None = None,
    *,
    head_timeout: float = HEAD_TIMEOUT_SECONDS,
    body_timeout: float = BODY_TIMEOUT_SECONDS,
    parser: str = "auto",
) -> Any:
    """Serve the runtime's app on `sock`: until shutdown, or (with `ready`) in a task that
    is returned with the server once it accepts connections. A request's head must arrive
    within `head_timeout` seconds and its body within `body_timeout` (see above)."""
    from collector.web.app import create_app

    app = create_app(runtime)
    if ready is None:  # the long-running server (not `collector simulate`'s short one)
        tune_gc()  # now that every module and the app exist: all of it is frozen out
    config = uvicorn.Config(
        app,
        http=http_protocol(head_timeout, body_timeout, parser),
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    server = Server(config)
    if ready is None:
        await server.serve(sockets=[sock])
        return server
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("server stopped during start-up")
        await asyncio.sleep(0.01)
    ready.set()
    return server, task
