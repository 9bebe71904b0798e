"""Meetings on a relay: who is in them and whose tracks go to whom. Routing only: rooms tell their peers
what happened through ``signals`` (the signalling layer writes the messages).

``room`` (a meeting) and ``directory`` (all of them, what is refused) above the peers: ``participant``
and the two ends of a cascade link (``cascade_peer``: the other relay dialed us; ``dialed_link``: we
dialed it), seen by the room as a ``link.Link``. The peers the relay offers to share ``offering``; each
peer's media is one ``edge_relay.sfu.transport.PeerTransport``.
"""
