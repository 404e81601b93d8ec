"""A tiny round-robin HTTP/1.1 proxy: each request to the next backend in turn.

    python -m bench.round_robin PORT BACKEND_URL [BACKEND_URL ...]

What a load balancer in front of several collector instances does, as simply as it can:
every request, whatever connection it came on, goes to the next backend (so one call's
webhooks are spread over every instance), over a kept-alive connection of that client
connection's own to it. A client connection's requests are forwarded one after the other,
as they arrive, so the order of a call's webhooks on one connection is kept. It reads
`Content-Length` bodies only (no chunked encoding: wrk and the collector send none).
`GET /_rr/stats` answers how many requests went to each backend.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from urllib.parse import urlsplit

import orjson
import uvloop

MAX_HEAD = 64 * 1024


async def read_message(reader: asyncio.StreamReader) -> bytes | None:
    """One HTTP/1.1 message (head and Content-Length body); None at a clean end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    if len(head) > MAX_HEAD:
        raise ValueError("head too large")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + (await reader.readexactly(length) if length else b"")


class RoundRobin:
    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self._next = itertools.cycle(range(len(backends)))
        self.sent = [0] * len(backends)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        try:
            while (request := await read_message(reader)) is not None:
                if request.startswith(b"GET /_rr/stats "):
                    body = orjson.dumps({"sent": self.sent})
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                    continue
                n = next(self._next)
                if n not in upstream:
                    host, port = self.backends[n]
                    upstream[n] = await asyncio.open_connection(host, port)
                up_reader, up_writer = upstream[n]
                up_writer.write(request)
                response = await read_message(up_reader)
                if response is None:
                    raise ConnectionError("the backend closed the connection")
                self.sent[n] += 1
                writer.write(response)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            for _, up_writer in upstream.values():
                up_writer.close()


async def main(port: int, urls: list[str]) -> None:
    backends = []
    for url in urls:
        parts = urlsplit(url)
        backends.append((parts.hostname or "127.0.0.1", parts.port or 80))
    proxy = RoundRobin(backends)
    server = await asyncio.start_server(proxy.serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main(int(sys.argv[1]), sys.argv[2:]))
