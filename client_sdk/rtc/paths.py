"""Media paths to a relay, in the order they are tried: direct, then TURN over UDP, TCP and TLS.

Direct is ICE with this machine's own (host) candidates straight to the relay's. The TURN paths come from
the ``ice_servers`` of the join (short-lived credentials, meetup_protocol/turn.py). aiortc 1.16 takes
only the *first* TURN server of a configuration, and ignores ``turn:...?transport=tls`` (``turns:`` is
TLS), so each TURN path is one peer connection with one TURN URL, relay candidates only
(``iceTransportPolicy=relay``): the path it connects through is then the path it reports.

aioice hides a refused TURN allocation (a wrong or expired credential: 401): no relay candidate, no error,
ICE just never connects. :func:`probe_turn` makes the same allocation aiortc would (and releases it) to
learn why, so a refused credential is an error within seconds instead of a silent wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field, replace

from aioice import stun, turn
from aiortc import RTCIceServer

from meetup_protocol.schemas.meetings import IceServer
from meetup_protocol.turn import PATH_ORDER, MediaPath, turn_url_path

#: Bounds, each from a path's first signalling message to its media being connected.
DIRECT_TIMEOUT_S = 4.0  # ICE straight to the relay fails silently where UDP is dropped: wait no longer
TURN_TIMEOUT_S = 8.0  # a TCP or TLS handshake to the TURN server comes first
#: The last path to try (direct alone when no TURN is offered) has nothing to fall back to: a slow
#: connection (a loaded machine, a long route) is still better than none, so it waits this long.
LAST_PATH_TIMEOUT_S = 15.0
PROBE_TIMEOUT_S = 3.0
#: The TURN servers are checked only once direct has not connected for this long (where direct works it
#: has, mostly: no allocation is made for nothing), and then while direct goes on.
PROBE_DELAY_S = 0.5

_HOST_PORT = re.compile(r"^turns?:(?P<host>\[[^\]]+\]|[^:?]+)(?::(?P<port>\d+))?")


@dataclass(frozen=True)
class PathPlan:
    path: MediaPath
    #: The ICE server(s) of this path's peer connection: none for direct, one TURN URL otherwise.
    ice_servers: list[RTCIceServer] = field(default_factory=list)
    url: str = ""
    username: str = ""
    credential: str = ""
    #: Whether another path is tried after this one (see LAST_PATH_TIMEOUT_S).
    fallback: bool = True

    @property
    def relay_only(self) -> bool:
        return self.path != "direct"

    @property
    def timeout_s(self) -> float:
        bound = DIRECT_TIMEOUT_S if self.path == "direct" else TURN_TIMEOUT_S
        return bound if self.fallback else max(bound, LAST_PATH_TIMEOUT_S)


def plan_paths(ice_servers: list[IceServer]) -> list[PathPlan]:
    """Direct, then one plan per TURN transport offered (the first URL of each), in PATH_ORDER."""
    found: dict[MediaPath, PathPlan] = {}
    for server in ice_servers:
        for url in server.urls:
            path = turn_url_path(url)
            if path is not None and path not in found:
                rtc = RTCIceServer(urls=[url], username=server.username, credential=server.credential)
                found[path] = PathPlan(path, [rtc], url, server.username, server.credential)
    plans = [PathPlan("direct"), *(found[p] for p in PATH_ORDER if p in found)]
    return [*plans[:-1], replace(plans[-1], fallback=False)]


def force_path(plans: list[PathPlan], path: str) -> list[PathPlan]:
    """Only ``path``'s plan, with nothing to fall back to: for a user who knows which path their network
    allows, a test of one path, or the TURN benchmark (bench/turn_paths.py). ValueError when ``path`` is
    no media path, or the join offered no such path (no TURN server for that transport)."""
    if path not in PATH_ORDER:
        raise ValueError(f"no such media path: {path!r} (choose from {', '.join(PATH_ORDER)})")
    chosen = [replace(plan, fallback=False) for plan in plans if plan.path == path]
    if not chosen:
        offered = ", ".join(plan.path for plan in plans)
        raise ValueError(f"media path {path} was not offered by this join (offered: {offered})")
    return chosen


def _address(url: str) -> tuple[str, int]:
    match = _HOST_PORT.match(url)
    if match is None:
        raise ValueError(f"not a TURN URL: {url}")
    default = 5349 if url.startswith("turns:") else 3478
    return match["host"].strip("[]"), int(match["port"] or default)


async def probe_turn(plan: PathPlan, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``plan``'s TURN server grants an allocation; else why not ("refused: 401 Unauthorized
    ...", "unreachable: ..."). The allocation is released at once."""
    try:
        transport, _ = await asyncio.wait_for(
            turn.create_turn_endpoint(
                asyncio.DatagramProtocol,
                _address(plan.url),
                plan.username,
                plan.credential,
                ssl=plan.path == "turn/tls",  # as aiortc does: the default context
                transport="udp" if plan.path == "turn/udp" else "tcp",
            ),
            timeout_s,
        )
    except stun.TransactionFailed as exc:
        code, reason = exc.response.attributes.get("ERROR-CODE", (0, "error"))
        if code == 401:
            return f"refused: {code} {reason} (the TURN credential is wrong or expired)"
        return f"refused: {code} {reason}"
    except (TimeoutError, stun.TransactionTimeout):
        return f"unreachable: no answer within {timeout_s:g} s"
    except (OSError, ValueError) as exc:  # refused connection, TLS verification, a malformed URL
        return f"unreachable: {exc}"
    with contextlib.suppress(Exception):
        transport.close()
    return None


def refused(reason: str | None) -> bool:
    return bool(reason) and reason.startswith("refused: 401")  # type: ignore[union-attr]
