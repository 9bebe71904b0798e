"""A TCP proxy on loopback that can be taken down and brought back: a client's network outage."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class SwitchableProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.up = True
        self.refused = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    def down(self) -> None:
        """Cut every connection and refuse new ones until ``restore()``."""
        self.up = False
        for writer in list(self._open):
            writer.transport.abort()

    def restore(self) -> None:
        self.up = True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            self.refused += 1
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._open.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        finally:
            self._open.difference_update((writer, up_writer))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SwitchableProxy]:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._server.close()
            for writer in list(self._open):
                writer.transport.abort()
