"""The relay's forwarder (SFU): per-subscriber RTP rewriting, key-frame gating, NACK/RTX, RTCP.

The packet-level building blocks operate on plain bytes and touch no aiortc private seam, so each
is tested (and fuzzed) in isolation:

- :mod:`.rtp`       RTP header parsing, header-extension translation, per-subscriber header rewrite.
- :mod:`.keyframes` "can a decoder start at this packet?" for VP8 and H.264 (gating late joiners).
- :mod:`.history`   ring buffer of recent packets, to answer subscribers' NACKs.
- :mod:`.sequence`  upstream loss/jitter tracking for one incoming stream, NACK generation, RR blocks.
- :mod:`.rtcp`      RTCP builders (PLI, NACK, REMB, RR, SR) and the sender-report timestamp mapping.

The aiortc glue (taps, sends, RTCP interception) is kept apart from them.
"""
