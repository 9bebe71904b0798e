"""A TURN path that dies mid-meeting: the SDK notices (client_sdk/rtc/watchdog.py), keeps the meeting and
moves to another path within its bound (client_sdk.meeting.PATH_SWITCH_BOUND_S).

The sites are tests/regions/turn_world.py's. The client sits in site 2 (UDP dropped) and is in the
meeting through TURN over TCP when its TURN server goes: its firewall starts dropping TCP to the TURN
port (no reset: segments just vanish; undone after the test), or a coturn of its own is killed (the
TCP connection is reset). The rest of the world's coturn (TLS) or direct UDP is left to move to.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack

import pytest

from client_sdk.meeting import PATH_SWITCH_BOUND_S
from local_stack.turn import TurnServer
from meetup_protocol.turn import turn_credentials
from tests.regions.agents import Agent
from tests.regions.turn_world import TurnWorld, needs_turn_world, rule_while, spawn, turn_port, world
from tests.regions.world import receiving, still_receiving

pytestmark = needs_turn_world
__all__ = ["world"]  # the module's fixture


def moves_after(
    world: TurnWorld, stack: ExitStack, cut: Callable[[], None], then: str, what: str, **env: str
) -> None:
    """A direct participant and the site-2 client meet (the client on TURN/TCP); ``cut()`` takes its
    TURN server away; the client must be on ``then`` within the bound, same participant, one
    reconnection that says why, and media must flow both ways again."""
    host = world.api.new_user("Direct")
    meeting = world.api.new_meeting(host)
    direct = spawn(world, stack, 1, meeting, host, "direct")
    direct.wait_for(lambda s: s["media_path"], 30)
    moving: Agent = spawn(world, stack, 2, meeting, world.api.new_user("Moving"), "moving", **env)
    joined = moving.wait_for(lambda s: s["media_path"], 40)
    assert joined["media_path"] == "turn/tcp", joined
    moving.wait_for(receiving(moving, [direct]), 40)
    direct.wait_for(receiving(direct, [moving]), 40)

    cut()
    started = time.monotonic()

    def on_the_new_path(s: dict) -> bool:
        return s["media_path"] == then and "media_path_changed" in s["events"]

    moved = moving.wait_for(on_the_new_path, PATH_SWITCH_BOUND_S + 15)
    moved_s = time.monotonic() - started
    assert moved["reconnects"] == 1 and moved["participant_id"] == joined["participant_id"], moved
    assert moved["reconnect_reasons"][0].startswith("media path lost (turn/tcp: "), moved
    # Media both ways again: frames keep arriving each way after the move.
    assert still_receiving(moving, direct) and still_receiving(direct, moving)
    checked_s = time.monotonic() - started
    print(
        f"{what}: on {then} after {moved_s:.1f} s ({moved['reconnect_reasons'][0]}); "
        f"frames both ways checked by {checked_s:.1f} s"
    )
    assert moved_s <= PATH_SWITCH_BOUND_S + 5, moved_s  # + a loaded 2-core machine


@pytest.mark.parametrize("then", ["turn/tls", "direct"])
def test_a_turn_port_blocked_mid_meeting_moves_to_another_path_within_the_bound(
    world: TurnWorld, then: str
) -> None:
    """TCP to the TURN port dropped: TURN over TLS (coturn's other listener) is next; with UDP opened
    at the same moment, direct works again and wins."""
    with ExitStack() as stack:

        def cut() -> None:
            block = ("-p", "tcp", "--dport", turn_port(world), "-j", "DROP")
            stack.enter_context(rule_while(world.wan, 2, "-I", *block))
            if then == "direct":
                stack.enter_context(rule_while(world.wan, 2, "-D", "-p", "udp", "-j", "DROP"))

        moves_after(world, stack, cut, then, "TURN port blocked")


def test_a_turn_server_killed_mid_meeting_moves_to_another_within_the_bound(world: TurnWorld) -> None:
    """The client's TURN/UDP and TURN/TCP come from a coturn of its own (site 0's address, credentials of
    its own secret), TURN/TLS from the world's; the first is killed (SIGKILL: connections reset)."""
    with ExitStack() as stack:
        own = stack.enter_context(TurnServer(host=world.wan.site_ip(0)))
        expiry = int(time.time()) + 600
        mine = turn_credentials(own.secret, "p_killed", expiry)
        theirs = turn_credentials(world.turn["secret"], "p_killed", expiry)
        servers = [
            {"urls": own.urls[:2], "username": mine[0], "credential": mine[1]},
            {"urls": world.turn["urls"][2:], "username": theirs[0], "credential": theirs[1]},
        ]

        def cut() -> None:
            assert own.proc is not None
            own.proc.kill()
            own.proc.wait(5)

        moves_after(
            world, stack, cut, "turn/tls", "TURN server killed", MEETUP_AGENT_ICE_SERVERS=json.dumps(servers)
        )
