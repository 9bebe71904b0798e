"""Simulcast from a browser: asking for it in the relay's offer, and telling its layers apart.

aiortc knows nothing of simulcast (no ``a=rid``/``a=simulcast``, no rtp-stream-id extension), so the
relay edits the SDP text of its own offer: on a publish m-line it adds the rtp-stream-id and
repaired-rtp-stream-id extensions and ``a=rid:<id> recv`` + ``a=simulcast:recv h;m;l``. Chromium, as the
answerer, then gives the transceiver that m-line created one send encoding per rid and answers
``a=rid:<id> send`` + ``a=simulcast:send ...`` (checked: MACHINE.md). aiortc ignores those lines and the
extensions it does not know when it applies the answer; the relay reads them from the answer's text.

The encodings arrive on SSRCs the answer does not announce. The demuxer routes them to the source by
their MID extension; :class:`SimulcastSource` then tells the layers apart by the rid each packet
carries (libwebrtc sends MID and rid until RTCP shows the SSRC is known) and remembers the SSRC.
No RTX is offered (the relay never offers it): retransmissions come on each layer's own SSRC.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from edge_relay.sfu.demux import extension_value
from edge_relay.sfu.layers import Layer
from edge_relay.sfu.rtp import RtpHeader

EXT_RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
EXT_REPAIRED_RID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
#: Extension ids the relay gives them in its offers (aiortc uses 1..3 for its own).
RID_EXTENSION_ID = 10
REPAIRED_RID_EXTENSION_ID = 11
RIDS = ("h", "m", "l")
_RID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


def _sections(sdp: str) -> list[list[str]]:
    """The SDP's lines, split at each ``m=`` line (the first part is the session section)."""
    parts: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            parts.append([])
        parts[-1].append(line)
    return parts


def _mid(section: list[str]) -> str | None:
    return next((line[len("a=mid:") :] for line in section if line.startswith("a=mid:")), None)


def offer_simulcast(sdp: str, mids: set[str], rids: tuple[str, ...] = RIDS) -> str:
    """``sdp`` (the relay's offer) with simulcast asked for on the m-lines of ``mids``."""
    parts = _sections(sdp)
    for section in parts[1:]:
        if _mid(section) not in mids:
            continue
        extmaps = [i for i, line in enumerate(section) if line.startswith("a=extmap:")]
        at = extmaps[-1] + 1 if extmaps else len(section)
        section[at:at] = [
            f"a=extmap:{RID_EXTENSION_ID} {EXT_RID}",
            f"a=extmap:{REPAIRED_RID_EXTENSION_ID} {EXT_REPAIRED_RID}",
        ]
        section.extend([*(f"a=rid:{rid} recv" for rid in rids), "a=simulcast:recv " + ";".join(rids)])
    return "".join(line + "\r\n" for part in parts for line in part)


def answered_simulcast(sdp: str, mid: str) -> tuple[list[str], int | None]:
    """(rids the answer sends on ``mid``, its rtp-stream-id extension id); ([], None) without
    simulcast. Only rids that ``a=simulcast:send`` lists and ``a=rid`` declares ``send`` count."""
    section = next((s for s in _sections(sdp)[1:] if _mid(s) == mid), None)
    if section is None:
        return [], None
    declared: set[str] = set()
    listed: list[str] = []
    ext_id: int | None = None
    for line in section:
        if line.startswith("a=rid:"):
            fields = line[len("a=rid:") :].split()
            if len(fields) >= 2 and fields[1] == "send" and _RID.match(fields[0]):
                declared.add(fields[0])
        elif line.startswith("a=simulcast:"):
            fields = line[len("a=simulcast:") :].split()
            if len(fields) >= 2 and fields[0] == "send":
                # alternatives (a,b) and paused (~a) rids: take each listed one
                listed = [r.lstrip("~") for group in fields[1].split(";") for r in group.split(",")]
        elif line.startswith("a=extmap:"):
            head, _, uri = line[len("a=extmap:") :].partition(" ")
            if uri.strip() == EXT_RID and head.split("/")[0].isdigit():
                ext_id = int(head.split("/")[0])
    rids = [r for r in dict.fromkeys(listed) if r in declared]
    if len(rids) < 2 or ext_id is None or not 1 <= ext_id <= 255:
        return [], None
    return rids, ext_id


class SimulcastSource:
    """The layers of one published source, by rid and by the SSRC each turned out to use."""

    def __init__(self, rids: list[str], rid_extension_id: int, clock_rate: int) -> None:
        self.layers = {rid: Layer(rid, clock_rate) for rid in rids}
        self.rid_extension_id = rid_extension_id
        self._by_ssrc: dict[int, Layer] = {}
        self.unknown_rid = 0  # packets of this source with no rid, or one never negotiated
        #: Called with each SSRC learnt (so the publisher's SRs for it are routed to the track).
        self.on_ssrc: Callable[[int], None] | None = None

    def layer_of(self, data: bytes, header: RtpHeader) -> Layer | None:
        """The layer a packet belongs to; None (count it, drop it) if it cannot be told."""
        layer = self._by_ssrc.get(header.ssrc)
        if layer is not None:
            return layer
        rid = extension_value(data, header, self.rid_extension_id)
        layer = self.layers.get(rid.decode("ascii", "replace")) if rid else None
        if layer is None:
            self.unknown_rid += 1
            return None
        if layer.ssrc:  # the layer moved to a new SSRC (the encoder restarted): forget the old one
            self._by_ssrc.pop(layer.ssrc, None)
        layer.learn(header.ssrc)
        self._by_ssrc[header.ssrc] = layer
        if self.on_ssrc is not None:
            self.on_ssrc(header.ssrc)
        return layer

    def by_ssrc(self, ssrc: int) -> Layer | None:
        return self._by_ssrc.get(ssrc)
