"""Running the HTTP server: the listening socket, the event loop, uvicorn, the GC."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from typing import Any

import uvicorn


def run(coro: Any) -> Any:
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


async def serve(runtime: Any, sock: socket.socket, ready: asyncio.Event | None = None) -> Any:
    """Serve the runtime's app on `sock`: until shutdown, or (with `ready`) in a task that
    is returned with the server once it accepts connections."""
    from collector.app import create_app

    app = create_app(runtime)
    if ready is None:  # the long-running server (not `collector simulate`'s short one)
        tune_gc()  # now that every module and the app exist: all of it is frozen out
    config = uvicorn.Config(
        app,
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
