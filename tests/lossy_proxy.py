"""A TCP proxy on loopback that can lose answers: the request reaches the server, the reply never returns.

That is the failure idempotency keys exist for (the client cannot tell whether its write happened).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class AnswerLosingProxy:
    """Forward connections to ``upstream``; for the first ``lose`` connections, swallow the reply."""

    def __init__(self, upstream_host: str, upstream_port: int, lose: int = 1) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.lose = lose
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        swallow = self.connections <= self.lose
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter | None) -> None:
            while data := await src.read(65536):
                if dst is not None:
                    dst.write(data)
                    await dst.drain()
                elif swallow:
                    return  # the server answered; drop the answer and hang up

        try:
            to_server = asyncio.create_task(pump(reader, up_writer))
            await pump(up_reader, None if swallow else writer)
            to_server.cancel()
        finally:
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[AnswerLosingProxy]:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._server.close()
            await self._server.wait_closed()
