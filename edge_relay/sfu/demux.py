"""Which published track an incoming packet belongs to: by SSRC, else by the MID header extension.

aiortc's own router demuxes by SSRC and then by payload type, which mis-routes a second video m-line of a
browser (aiortc issues 1414, 1437). The relay taps packets before that router and routes them itself:
SSRCs come from the publisher's SDP; a packet with an unknown SSRC (a browser may announce none, or
change it) is matched by its MID extension, and its SSRC is learnt for the packets that follow.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from edge_relay.sfu.rtp import PROFILE_ONE_BYTE, RtpHeader

T = TypeVar("T")


def extension_value(data: bytes, header: RtpHeader, ext_id: int) -> bytes | None:
    """The value of header extension ``ext_id`` (one- or two-byte profile), or None."""
    if header.ext_profile is None:
        return None
    one_byte = header.ext_profile == PROFILE_ONE_BYTE
    i, end = header.ext_start, header.ext_end
    while i < end:
        b = data[i]
        if b == 0:  # padding
            i += 1
            continue
        if one_byte:
            eid, length, i = b >> 4, (b & 0x0F) + 1, i + 1
            if eid == 15:
                return None
        else:
            if i + 1 >= end:
                return None
            eid, length, i = b, data[i + 1], i + 2
        if i + length > end:
            return None
        if eid == ext_id:
            return data[i : i + length]
        i += length
    return None


class Demuxer(Generic[T]):
    """Routes packets of one peer connection to their track objects."""

    def __init__(self) -> None:
        self._by_ssrc: dict[int, T] = {}
        self._by_mid: dict[bytes, T] = {}
        self.mid_extension_id: int | None = None

    def add(self, target: T, mid: str, ssrc: int | None) -> None:
        self._by_mid[mid.encode()] = target
        if ssrc is not None:
            self._by_ssrc[ssrc] = target

    def remove(self, target: T) -> None:
        self._by_ssrc = {k: v for k, v in self._by_ssrc.items() if v is not target}
        self._by_mid = {k: v for k, v in self._by_mid.items() if v is not target}

    def route(self, data: bytes, header: RtpHeader) -> T | None:
        target = self._by_ssrc.get(header.ssrc)
        if target is not None or self.mid_extension_id is None:
            return target
        mid = extension_value(data, header, self.mid_extension_id)
        if mid is None:
            return None
        target = self._by_mid.get(mid)
        if target is not None:
            self._by_ssrc[header.ssrc] = target
        return target
