"""Short-lived TURN credentials: the "TURN REST API" scheme, and what a TURN URL says about its path.

The scheme is draft-uberti-behave-turn-rest-00 ("A REST API For Access To TURN Services", section 2.2),
which coturn implements as ``use-auth-secret`` with ``static-auth-secret`` (turnserver(1), "TURN REST
API"): the API and the TURN server share a secret; a client gets

* ``username = "<expiry, unix seconds>:<user id>"`` (here the participant id), and
* ``credential = base64(HMAC-SHA1(secret, username))``,

and the TURN server recomputes the credential from the username, refusing (401) one whose expiry has
passed. coturn checks the expiry when an allocation is made, not afterwards: an allocation made in time
lives on (coturn issue 774), so a credential needs to outlive only the join that hands it out.

The secret never leaves the API (and the TURN servers); clients get only the derived pair.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Literal

#: The media paths a client may connect through, in the order it tries them (as LiveKit's and Jitsi's
#: clients do): straight to the relay over UDP, then through TURN over UDP, TCP, and TLS.
MediaPath = Literal["direct", "turn/udp", "turn/tcp", "turn/tls"]
PATH_ORDER: tuple[MediaPath, ...] = ("direct", "turn/udp", "turn/tcp", "turn/tls")

_URL = re.compile(
    r"^(?P<scheme>turns?):(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp|tls))?$"
)


def turn_credentials(secret: str, user: str, expires_at: int) -> tuple[str, str]:
    """``(username, credential)`` valid until ``expires_at`` (unix seconds) for ``user``."""
    if ":" in user:
        raise ValueError("the user part of a TURN REST username must not contain ':'")
    username = f"{int(expires_at)}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def turn_url_path(url: str) -> MediaPath | None:
    """Which path a TURN URL (RFC 7065) gives: ``turn:H[:P][?transport=udp]`` -> turn/udp,
    ``?transport=tcp`` -> turn/tcp, ``turns:H[:P]`` -> turn/tls. None for anything else, notably
    ``turn:...?transport=tls`` (no such URL in RFC 7065; browsers and aiortc ignore it: use ``turns:``)."""
    match = _URL.match(url)
    if match is None:
        return None
    scheme, transport = match["scheme"], match["transport"]
    if scheme == "turns":
        return "turn/tls" if transport in (None, "tcp") else None
    if transport in (None, "udp"):
        return "turn/udp"
    return "turn/tcp" if transport == "tcp" else None
