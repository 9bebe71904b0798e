"""What transport-cc costs the relay's hot path, as ratios to the per-subscriber rewrite in the same run.

``python -m bench.twcc_cost [--packets N]``. CPU time (``time.process_time``) of:

* baseline: the per-subscriber rewrite of one forwarded packet (header extensions translated, fixed header
  rewritten: ``ExtensionMap.rewrite`` + ``rewrite_packet``), what every subscriber costs today;
* stamp: the same plus the transport-cc hook (``SubscriberBandwidth.stamp``: number it, remember it);
* feedback: per acknowledged packet, parsing Chromium-style feedback (100 packets each) and running the
  estimator on it (``SubscriberBandwidth.on_rtcp``).

Printed as µs per packet and as ratios to the baseline. Nothing else is timed; no network.
"""

from __future__ import annotations

import argparse
import json
import struct
import time
from typing import Any

from edge_relay.sfu.bwe import SubscriberBandwidth
from edge_relay.sfu.rtp import EXT_ABS_SEND_TIME, EXT_MID, ExtensionMap, parse_header, rewrite_packet

TCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


def chromium_packet(seq: int) -> bytes:
    """A VP8 packet as Chromium sends it: abs-send-time, transport-cc, MID; 1100 bytes of payload."""
    body = (
        bytes((0x22,))
        + b"\x01\x02\x03"
        + bytes((0x31,))
        + struct.pack("!H", seq & 0xFFFF)
        + bytes((0x40,))
        + b"0"
    )
    body += bytes(-len(body) % 4)
    ext = struct.pack("!HH", 0xBEDE, len(body) // 4) + body
    return (
        struct.pack("!BBHII", 0x90, 96, seq & 0xFFFF, (seq * 3000) & 0xFFFFFFFF, 0x1234) + ext + bytes(1100)
    )


def feedback(base: int, count: int, reference: int) -> bytes:
    """One feedback packet: every packet received, 1 ms apart (small deltas, 2-bit vectors)."""
    chunks = b"".join(struct.pack("!H", 0xD555) for _ in range((count + 6) // 7))
    body = struct.pack("!IIHHI", 1, 2, base & 0xFFFF, count, (reference << 8) & 0xFFFFFFFF) + chunks
    body += bytes((4,)) * count
    body += bytes(-len(body) % 4)
    return struct.pack("!BBH", 0x8F, 205, len(body) // 4) + body


def measure(packets: int) -> dict[str, Any]:
    data = [chromium_packet(i) for i in range(packets)]
    headers = [parse_header(d) for d in data]
    ext = ExtensionMap({2: EXT_ABS_SEND_TIME, 3: TCC, 4: EXT_MID}, {EXT_MID: 1, EXT_ABS_SEND_TIME: 3}, b"1")

    def rewrite(d: bytes, h: Any) -> bytes:
        return rewrite_packet(d, h, 100, h.seq + 7, h.timestamp + 9, 0x5678, ext.rewrite(d, h))

    started = time.process_time()
    for d, h in zip(data, headers, strict=True):
        rewrite(d, h)
    baseline = time.process_time() - started

    bandwidth = SubscriberBandwidth("bench")
    bandwidth.enable(5)
    started = time.process_time()
    for d, h in zip(data, headers, strict=True):
        bandwidth.stamp(rewrite(d, h))
    stamped = time.process_time() - started

    reports = [feedback(base, 100, base // 64) for base in range(0, packets - 100, 100)]
    started = time.process_time()
    for report in reports:
        bandwidth.on_rtcp(report)
    acked = time.process_time() - started
    acked_packets = 100 * len(reports)

    per = {
        "baseline_us": baseline / packets * 1e6,
        "stamp_us": stamped / packets * 1e6,
        "feedback_us_per_packet": acked / acked_packets * 1e6,
    }
    return {
        **{k: round(v, 3) for k, v in per.items()},
        "ratios": {
            "stamp_vs_baseline": round(per["stamp_us"] / per["baseline_us"], 2),
            "feedback_vs_baseline": round(per["feedback_us_per_packet"] / per["baseline_us"], 2),
        },
        "packets": packets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    print(json.dumps(measure(parser.parse_args().packets), indent=2))


if __name__ == "__main__":
    main()
