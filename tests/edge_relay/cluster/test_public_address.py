"""The relay learns its public address from STUN servers (real STUN exchanges on loopback): several
servers at once, the first answer wins, retried with backoff (never an exit) while none answers; ICE then
announces the address without a STUN query per connection."""

from __future__ import annotations

import asyncio

import aioice.ice
import pytest
from aioice import stun

from edge_relay.cluster.public_address import NoPublicAddress, learn_public_ip, public_ip
from edge_relay.sfu import seams


class StunServer(asyncio.DatagramProtocol):
    """Answers binding requests as a STUN server does, reporting a fixed "public" mapping; ``down_for``:
    the first that many requests go unanswered (an outage that ends)."""

    def __init__(self, down_for: int = 0) -> None:
        self.down_for = down_for
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.requests += 1
        if self.requests <= self.down_for:
            return
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


async def test_the_first_answer_of_several_servers_wins() -> None:
    """All servers are asked at once: two silent ones cost nothing beyond the answering one's time."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(StunServer, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    silent = [f"stun:127.0.0.1:{p}" for p in (9, port + 1 if port < 65535 else port - 1)]
    try:
        started = loop.time()
        address = await public_ip([*silent, f"stun:127.0.0.1:{port}"], attempts=3, timeout_s=1.0)
        assert address == "203.0.113.7" and loop.time() - started < 1.0
    finally:
        transport.close()


async def test_a_stun_outage_is_waited_out_with_backoff_not_an_exit() -> None:
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(
        lambda: StunServer(down_for=4), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # the backoff, recorded instead of waited
        waits.append(seconds)

    try:
        address = await learn_public_ip(
            [f"stun:127.0.0.1:{port}"], attempts=1, timeout_s=0.1, max_backoff_s=4.0, sleep=sleep
        )
    finally:
        transport.close()
    assert address == "203.0.113.7" and server.requests == 5
    assert len(waits) == 4  # four silent rounds, each followed by a wait, then the answer
    # doubling from 1 s, capped at max_backoff_s, each within the +-20 % jitter
    assert all(0.8 * b <= w <= 1.2 * b for w, b in zip(waits, [1, 2, 4, 4], strict=True))


async def test_ice_announces_the_learnt_address_without_asking_stun() -> None:
    """Server-reflexive candidates come from the learnt address and the host candidate's port (a 1:1
    NAT keeps ports); the configured STUN server is never contacted (TEST-NET, nothing answers there)."""
    original_hosts = aioice.ice.get_host_addresses
    seams.use_ice_host_addresses(["127.0.0.1"])
    seams.announce_public_address("203.0.113.7")
    connection = aioice.ice.Connection(ice_controlling=True, stun_server=("192.0.2.1", 3478))
    try:
        await asyncio.wait_for(connection.gather_candidates(), 2)
        (host,) = [c for c in connection.local_candidates if c.type == "host"]
        (srflx,) = [c for c in connection.local_candidates if c.type == "srflx"]
        assert (srflx.host, srflx.port) == ("203.0.113.7", host.port)
        assert (srflx.related_address, srflx.related_port) == (host.host, host.port)
    finally:
        await connection.close()
        seams.announce_public_address(None)
        aioice.ice.get_host_addresses = original_hosts  # type: ignore[assignment]
