"""TCP proxies on loopback that fail on purpose: a lost answer, and a network outage.

* :class:`AnswerLosingProxy`: the request reaches the server, its answer never comes back (the failure
  idempotency keys exist for: the client cannot tell whether its write happened).
* :class:`SwitchableProxy`: ``down()`` cuts every connection and refuses new ones until ``restore()``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter | None) -> None:
    """Copy until EOF; with ``dst=None`` read one chunk (the answer arrived) and drop it."""
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await src.read(65536):
            if dst is None:
                return
            dst.write(data)
            await dst.drain()
    if dst is not None:
        dst.close()


class _Proxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.connections = 0
        self.port = 0
        self._open: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, lose_answer: bool
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._open.update((writer, up_writer))
        try:
            to_server = asyncio.ensure_future(_pump(reader, up_writer))
            await _pump(up_reader, None if lose_answer else writer)
            if lose_answer:
                to_server.cancel()
            else:
                await to_server
        finally:
            self._open.difference_update((writer, up_writer))
            for w in (writer, up_writer):
                w.transport.abort()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[_Proxy]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for writer in list(self._open):
                writer.transport.abort()


class AnswerLosingProxy(_Proxy):
    """Forward connections; for the first ``lose`` of them, swallow the server's answer."""

    def __init__(self, upstream_host: str, upstream_port: int, lose: int = 1) -> None:
        super().__init__(upstream_host, upstream_port)
        self.lose = lose

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await self._relay(reader, writer, lose_answer=self.connections <= self.lose)


class SwitchableProxy(_Proxy):
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        super().__init__(upstream_host, upstream_port)
        self.up = True
        self.refused = 0

    def down(self) -> None:
        self.up = False
        for writer in list(self._open):
            writer.transport.abort()

    def restore(self) -> None:
        self.up = True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if not self.up:
            self.refused += 1
            writer.transport.abort()
            return
        await self._relay(reader, writer, lose_answer=False)
