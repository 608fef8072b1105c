"""A TCP forwarder in the test's event loop: what a load balancer does in
a deploy. Clients keep one address; the test switches which server is
behind it."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator


class Proxy:
    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.connections: Counter[int] = Counter()  # backend port -> connections made
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = self.backend_port
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()  # like a balancer with no backend: the client retries
            return
        self.connections[port] += 1
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def proxy(backend_port: int) -> AsyncIterator[Proxy]:
    p = Proxy(backend_port)
    p.server = await asyncio.start_server(p._handle, "127.0.0.1", 0)
    p.port = p.server.sockets[0].getsockname()[1]
    try:
        yield p
    finally:
        p.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(p.server.wait_closed(), 5)
