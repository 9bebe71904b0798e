"""The relay learns its public address from a STUN server (a real STUN exchange on loopback)."""

from __future__ import annotations

import asyncio

import pytest
from aioice import stun

from edge_relay.cluster.public_address import NoPublicAddress, public_ip


class StunServer(asyncio.DatagramProtocol):
    """Answers binding requests as a STUN server does, reporting a fixed "public" mapping."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = stun.parse_message(data)
        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = ("203.0.113.7", addr[1])
        self.transport.sendto(bytes(response), addr)  # type: ignore[attr-defined]


async def test_public_ip_from_a_stun_server() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(StunServer, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        # The first server does not answer: the next one is asked.
        silent = f"stun:127.0.0.1:{port + 1 if port < 65535 else port - 1}"
        address = await public_ip([silent, f"stun:127.0.0.1:{port}"], attempts=1, timeout_s=0.3)
        assert address == "203.0.113.7"
    finally:
        transport.close()


async def test_no_answer_is_a_clear_error() -> None:
    with pytest.raises(NoPublicAddress, match="no STUN server answered"):
        await public_ip(["stun:127.0.0.1:9"], attempts=1, timeout_s=0.2)
