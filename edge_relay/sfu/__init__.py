"""The relay's forwarder (SFU): per-subscriber RTP rewriting, key-frame gating, NACK/RTX, RTCP.

The packet-level building blocks operate on plain bytes and touch no aiortc private seam, so each
is tested (and fuzzed) in isolation:

- :mod:`.rtp`       RTP header parsing, header-extension translation, per-subscriber header rewrite.
- :mod:`.keyframes` "can a decoder start at this packet?" for VP8 and H.264 (gating late joiners).
- :mod:`.history`   ring buffer of recent packets, to answer subscribers' NACKs.
- :mod:`.sequence`  upstream loss/jitter tracking for one incoming stream, NACK generation, RR blocks.
- :mod:`.rtcp`      RTCP builders (PLI, NACK, REMB, RR, SR) and the sender-report timestamp mapping.
- :mod:`.vp8`       the VP8 payload descriptor: parse, key-frame size, PictureID/TL0PICIDX munging.
- :mod:`.simulcast` simulcast asked for in the relay's offer, read from the answer, layers told by rid.
- :mod:`.layers`    one simulcast layer's state, and the per-subscriber layer policy (REMB, quality).
- :mod:`.switching` one subscriber's seamless switch between layers (seq, timestamp, VP8 counters).
- :mod:`.layered`   the simulcast half of a published track (per-layer hot path, layer selection).

The aiortc glue (taps, sends, RTCP interception) is kept apart from them.
"""
