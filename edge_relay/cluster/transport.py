"""UDP datagrams for SWIM and gossip, TCP streams for push-pull and large deltas; one port number for both.

Faults are injected here because netem is not available on the test machines: a ``FaultInjector`` drops
datagrams to or from blocked addresses (a partition), drops a fraction of outgoing datagrams (loss), and
refuses streams to blocked addresses. Production relays pass none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable

log = logging.getLogger("edge_relay.cluster")

Addr = tuple[str, int]
_LEN = struct.Struct("!I")


class FaultInjector:
    """Per-node network faults for tests and benchmarks (a blocklist and random loss)."""

    def __init__(self, loss: float = 0.0, seed: int | None = None) -> None:
        self.blocked: set[Addr] = set()
        self.loss = loss
        self._rng = random.Random(seed)  # noqa: S311 (simulated loss, not secrets)
        self.dropped = 0

    def block(self, *addrs: Addr) -> None:
        self.blocked.update(addrs)

    def unblock(self, *addrs: Addr) -> None:
        self.blocked.difference_update(addrs)

    def heal(self) -> None:
        self.blocked.clear()
        self.loss = 0.0

    def drop_out(self, addr: Addr) -> bool:
        if addr in self.blocked or (self.loss and self._rng.random() < self.loss):
            self.dropped += 1
            return True
        return False

    def drop_in(self, addr: Addr) -> bool:
        if addr in self.blocked:
            self.dropped += 1
            return True
        return False


class Stream:
    """Length-prefixed frames over one TCP connection, each frame bounded and each read timed out."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: Transport
    ) -> None:
        self.reader, self.writer, self.transport = reader, writer, transport

    async def send(self, frame: bytes) -> None:
        self.writer.write(_LEN.pack(len(frame)) + frame)
        self.transport.stats["tcp_bytes_out"] += len(frame) + _LEN.size
        await asyncio.wait_for(self.writer.drain(), self.transport.stream_timeout_s)

    async def recv(self) -> bytes:
        timeout, limit = self.transport.stream_timeout_s, self.transport.max_frame
        (size,) = _LEN.unpack(await asyncio.wait_for(self.reader.readexactly(_LEN.size), timeout))
        if size > limit:
            raise ValueError(f"frame of {size} bytes is over the {limit}-byte bound")
        frame = await asyncio.wait_for(self.reader.readexactly(size), timeout)
        self.transport.stats["tcp_bytes_in"] += size + _LEN.size
        return frame

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):  # bounded: a peer that stopped reading must not hang us
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: Transport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        owner = self.owner
        src = (addr[0], addr[1])
        if owner.faults is not None and owner.faults.drop_in(src):
            return
        owner.stats["udp_packets_in"] += 1
        owner.stats["udp_bytes_in"] += len(data)
        try:
            owner.on_datagram(data, src)
        except Exception:  # a handler bug must not take the socket down; the message is lost, not the node
            log.exception("cluster datagram handler failed")

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable from a dead peer: expected
        self.owner.stats["udp_errors"] += 1


class Transport:
    def __init__(
        self,
        on_datagram: Callable[[bytes, Addr], None],
        on_stream: Callable[[Stream], Awaitable[None]],
        faults: FaultInjector | None = None,
        stream_timeout_s: float = 10.0,
        max_frame: int = 16 * 1024 * 1024,
    ) -> None:
        self.on_datagram, self.on_stream, self.faults = on_datagram, on_stream, faults
        self.stream_timeout_s, self.max_frame = stream_timeout_s, max_frame
        self.stats: Counter[str] = Counter()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Bind UDP and TCP on one port (a free one if ``port`` is 0, retried until TCP gets it too)."""
        loop = asyncio.get_running_loop()
        for _ in range(20):
            udp, _proto = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(host, port)
            )
            chosen = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._accept, host, chosen, reuse_address=True)
            except OSError:
                udp.close()
                if port:
                    raise
                continue
            self._udp, self.port = udp, chosen
            return chosen
        raise OSError("no port free for both UDP and TCP")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for task in list(self._handlers):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 1.0)

    def send(self, addr: Addr, data: bytes) -> None:
        if self._udp is None or self._udp.is_closing():
            return
        if self.faults is not None and self.faults.drop_out(addr):
            return
        self.stats["udp_packets_out"] += 1
        self.stats["udp_bytes_out"] += len(data)
        try:
            self._udp.sendto(data, addr)
        except OSError:
            self.stats["udp_errors"] += 1

    async def connect(self, addr: Addr) -> Stream:
        if self.faults is not None and self.faults.drop_out(addr):
            raise ConnectionRefusedError(f"{addr} is blocked by the fault injector")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*addr), self.stream_timeout_s)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stats["tcp_connects"] += 1
        return Stream(reader, writer, self)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        stream = Stream(reader, writer, self)
        try:
            await self.on_stream(stream)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, struct.error) as exc:
            self.stats["tcp_errors"] += 1
            log.debug("cluster stream failed: %r", exc)
        except Exception:
            self.stats["tcp_errors"] += 1
            log.exception("cluster stream handler failed")
        finally:
            self._handlers.discard(task)
            await stream.close()
