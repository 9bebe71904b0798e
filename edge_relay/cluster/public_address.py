"""This relay's public IPv4 address, asked of a STUN server: what the other relays gossip with.

A Fargate task's interface has only its private address; the internet gateway maps the public one 1:1.
ICE learns it the same way (server-reflexive candidates); the gossip needs it once, at start-up, as the
address it advertises (``MEETUP_RELAY_CLUSTER_ADVERTISE=stun``). One binding request per server, a few
retries, aioice's STUN codec (a dependency of aiortc already).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools

from aioice import stun


class NoPublicAddress(RuntimeError):
    pass


def _server(url: str) -> tuple[str, int]:
    """``stun:host:port`` (or ``stun:host``) -> (host, port)."""
    rest = url.split(":", 1)[1] if url.startswith("stun:") else url
    host, _, port = rest.partition(":")
    return host, int(port or 3478)


class _Binding(asyncio.DatagramProtocol):
    def __init__(self, transaction_id: bytes) -> None:
        self.transaction_id = transaction_id
        self.result: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(ValueError):
            message = stun.parse_message(data)
            mapped = message.attributes.get("XOR-MAPPED-ADDRESS") or message.attributes.get("MAPPED-ADDRESS")
            if message.transaction_id == self.transaction_id and mapped and not self.result.done():
                self.result.set_result(str(mapped[0]))


async def public_ip(stun_urls: list[str], attempts: int = 3, timeout_s: float = 1.0) -> str:
    """The address the STUN servers see us at; raises NoPublicAddress if none answers."""
    loop = asyncio.get_running_loop()
    for url in stun_urls:
        host, port = _server(url)
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        transport, protocol = await loop.create_datagram_endpoint(
            functools.partial(_Binding, request.transaction_id), remote_addr=(host, port)
        )
        try:
            for _ in range(attempts):
                transport.sendto(bytes(request))
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(protocol.result), timeout_s)
        finally:
            transport.close()
    raise NoPublicAddress(f"no STUN server answered ({', '.join(stun_urls) or 'none configured'})")
