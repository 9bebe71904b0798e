"""Pins the two aiortc/aioice internals the SDK depends on (client_sdk/rtc/seams.py)."""

from __future__ import annotations

import inspect

import aioice.ice
from aiortc import RTCRtpReceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport

from client_sdk.rtc import seams


def params(fn: object) -> list[str]:
    return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]


def test_receiver_rtp_is_routed_through_an_overridable_method() -> None:
    # meet load-test counts a track's bytes per receiver instance (seams.on_receiver_rtp).
    assert params(RTCRtpReceiver._handle_rtp_packet) == ["self", "packet", "arrival_time_ms"]
    assert "await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)" in inspect.getsource(
        RTCDtlsTransport._handle_rtp_data
    )


async def test_on_receiver_rtp_sees_each_packet_and_passes_it_on() -> None:
    receiver = object.__new__(RTCRtpReceiver)
    delivered: list[tuple[object, int]] = []

    async def original(packet: object, arrival_time_ms: int) -> None:
        delivered.append((packet, arrival_time_ms))

    receiver._handle_rtp_packet = original  # type: ignore[method-assign]
    seen: list[object] = []
    seams.on_receiver_rtp(receiver, seen.append)
    await receiver._handle_rtp_packet("packet", arrival_time_ms=7)
    assert seen == ["packet"]
    assert delivered == [("packet", 7)]


def test_loopback_host_candidates_can_be_chosen() -> None:
    assert params(aioice.ice.get_host_addresses) == ["use_ipv4", "use_ipv6"]
    original = aioice.ice.get_host_addresses
    try:
        seams.gather_on_loopback_only()
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
    finally:
        aioice.ice.get_host_addresses = original
