"""The relay's WebSocket server and its sessions (the protocol itself: ``meetup_protocol.signalling``)."""
