"""The relay's WebSocket server and its sessions (the protocol itself: ``meetup_protocol.signalling``).

``server`` (the Starlette app) hands each socket to a ``connection``, whose first message picks its
session: ``participant_session`` or ``link_session`` (another relay; also the reader of the links we
dial). ``wire`` turns what rooms say into wire messages.
"""
