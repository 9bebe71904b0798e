"""Edge relay: a WebRTC SFU on aiortc that forwards RTP without decoding.

Layout: ``signalling/`` (the JSON protocol and the WebSocket server), ``rooms/`` (meetings, participants,
negotiation), ``sfu/`` (packet-level forwarding: rewriting, keyframes, NACK, RTCP, and the aiortc seams),
``ops/`` (metrics, logs), ``main.py`` (the process). Kept import-light: the SDK imports the protocol.
"""
