"""Edge relay: a WebRTC SFU on aiortc that forwards RTP without decoding.

Layout: ``signalling/`` (the WebSocket server and sessions; the protocol is
``meetup_protocol.signalling``), ``rooms/`` (meetings, participants, negotiation), ``sfu/`` (packet-level
forwarding: rewriting, keyframes, NACK, RTCP, and the aiortc seams), ``ops/`` (metrics, logs),
``main.py`` (the process). It imports ``meetup_protocol`` and nothing of the control plane or the SDK.
"""
