"""What the control plane, the relays and the clients share: the bottom layer of meetup-edge.

* ``tokens``: join tokens and notices (issue and verify), access tokens; PyJWT only.
* ``signalling``: the relay's WebSocket protocol (client <-> relay, relay <-> relay), typed and versioned.
* ``schemas``: the API's request and response bodies, which the SDK parses too.
* ``registry``: the relay registry record (what a relay heartbeats, what the API reads).
* ``metrics``: reading back the relays' ``/metrics`` exposition (demo, load test, tests, benchmarks).

Nothing here imports the control plane, the relay or the SDK, and nothing here does I/O: each of those
imports this package, never each other's internals.
"""
