"""The relay's ICE guard (edge_relay/sfu/ice_guard.py) on two real aioice connections over loopback:
garbage sent at one's ICE socket from a stranger's socket is refused and counted by reason, and the
connection goes on carrying data both ways. The guard is removed after each test (aioice is process-wide)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import aioice
import pytest

from edge_relay.sfu import ice_guard

#: One of each kind: not WebRTC at all, STUN-looking but broken, DTLS and RTP from a stranger.
GARBAGE = {
    "not_webrtc": [b"\xff" * 40, b"GET / HTTP/1.1\r\n\r\n", b"\x7f"],
    "malformed_stun": [
        b"\x00\x01\x00\x08" + b"\x00" * 4,
        b"\x00\x01\x00\x00\x21\x12\xa4\x42" + b"x" * 12 + b"!",
    ],
    "unknown_source": [
        b"\x16\xfe\xfd" + b"\x00" * 30,
        b"\x80\x60" + b"\x01" * 30,
        b"\x81\xc8" + b"\x00" * 26,
    ],
}


@pytest.fixture
async def pair() -> AsyncIterator[tuple[aioice.Connection, aioice.Connection]]:
    undo = ice_guard.install()
    a = aioice.Connection(ice_controlling=True, components=1, use_ipv6=False)
    b = aioice.Connection(ice_controlling=False, components=1, use_ipv6=False)
    try:
        for one in (a, b):
            await one.gather_candidates()
        for one, other in ((a, b), (b, a)):
            for candidate in other.local_candidates:
                await one.add_remote_candidate(candidate)
            await one.add_remote_candidate(None)
            one.remote_username, one.remote_password = other.local_username, other.local_password
        await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 10)
        yield a, b
    finally:
        undo()
        await a.close()
        await b.close()


async def test_garbage_from_a_stranger_is_refused_counted_and_the_connection_carries_on(pair, caplog) -> None:
    caplog.set_level(logging.WARNING, "edge_relay.ice")
    a, b = pair
    before = dict(ice_guard.DROPPED)
    target = a._nominated[1].local_addr  # a's socket in use (a host candidate)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind((target[0], 0))
        for datagrams in GARBAGE.values():
            for datagram in datagrams:
                stranger.sendto(datagram, target)
        await asyncio.sleep(0.3)
    for reason, datagrams in GARBAGE.items():
        assert ice_guard.DROPPED[reason] - before.get(reason, 0) == len(datagrams), reason
    logged = [r for r in caplog.records if r.getMessage() == "ice datagram dropped"]
    assert {r.reason for r in logged} == set(GARBAGE)  # type: ignore[attr-defined]
    assert all(r.source.startswith(target[0] + ":") for r in logged)  # type: ignore[attr-defined]
    # Media-range data from the real peer still goes through, both ways, and nothing stray got in.
    await b.send(b"\x80hello from b")
    assert await asyncio.wait_for(a.recv(), 5) == b"\x80hello from b"
    await a.send(b"\x80hello from a")
    assert await asyncio.wait_for(b.recv(), 5) == b"\x80hello from a"


def test_verdicts_by_first_byte() -> None:
    class Protocol:  # a socket with no candidate pairs (the check list is empty)
        receiver = type("Receiver", (), {"_check_list": []})()

    where = ("10.0.0.1", 5000)
    assert ice_guard.verdict(Protocol(), b"", where) == "not_webrtc"
    assert ice_guard.verdict(Protocol(), b"\x16" + b"\x00" * 20, where) == "unknown_source"
    assert ice_guard.verdict(Protocol(), b"\x04" * 20, where) == "not_webrtc"
    assert ice_guard.verdict(Protocol(), b"\xc0" * 20, where) == "not_webrtc"  # above RTP's range


def test_a_flood_is_logged_at_powers_of_two_only(caplog) -> None:
    caplog.set_level(logging.WARNING, "edge_relay.ice")
    protocol = type("P", (), {"receiver": type("R", (), {"_check_list": []})()})()
    start = ice_guard.DROPPED["not_webrtc"]
    for _ in range(1000):
        assert not ice_guard.accept(protocol, b"\xff", ("10.0.0.9", 9))
    counts = [r.count for r in caplog.records]  # type: ignore[attr-defined]
    assert ice_guard.DROPPED["not_webrtc"] == start + 1000
    assert len(counts) <= 11 and all(c & (c - 1) == 0 for c in counts)
