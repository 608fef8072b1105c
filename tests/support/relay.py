"""A TCP address that forwards to one server, then to another: what a
deploy's load balancer does while one server process replaces another. A
client keeps one address, bound once, and never races a restarting server
for its port."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter


class Relay:
    """Forwards each connection to the server ``point_at`` last named.
    While it names none (``hold``), connections wait for one, as a client
    waits on a load balancer between two servers."""

    def __init__(self) -> None:
        self._target: int | None = None
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        # Connections forwarded, by the port of the server they went to.
        self.connections: Counter[int] = Counter()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        await self._server.wait_closed()

    async def point_at(self, port: int | None) -> None:
        async with self._changed:
            self._target = port
            self._changed.notify_all()

    async def hold(self) -> None:
        await self.point_at(None)

    async def open_upstream(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The connection to the server behind; an OSError closes the
        client's (a subclass may refuse some on purpose)."""
        return await asyncio.open_connection("127.0.0.1", port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            async with self._changed:
                await self._changed.wait_for(lambda: self._target is not None)
                port = self._target
            try:
                up_reader, up_writer = await self.open_upstream(port)
            except OSError:
                writer.close()
                return
            self.connections[port] += 1
            # Either side closing closes both: a server cutting a response
            # is seen by the client as that server's cut.
            pipes = {
                asyncio.ensure_future(pipe(reader, up_writer)),
                asyncio.ensure_future(pipe(up_reader, writer)),
            }
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for copying in pipes:
                    copying.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
                up_writer.close()
        finally:
            writer.close()
            self._conns.discard(task)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction of a connection until it closes."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
