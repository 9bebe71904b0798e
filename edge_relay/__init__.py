"""Edge relay: a WebRTC SFU on aiortc that forwards RTP without decoding.

Layout: ``signalling/`` (the WebSocket server and one session class per kind of peer; the protocol is
``meetup_protocol.signalling``), ``rooms/`` (meetings, participants, cascade links, negotiation),
``sfu/`` (packet-level forwarding: rewriting, keyframes, NACK, RTCP, the aiortc seams, and the peer
transport that binds a connection to them), ``cluster/`` (membership, room state, the coordinator, the
registry, dialing links), ``ops/`` (metrics, logs), ``main.py`` (the process).
It imports ``meetup_protocol`` and nothing of the control plane or the SDK.
"""
