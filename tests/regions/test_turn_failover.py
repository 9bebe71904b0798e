"""A TURN path that dies mid-meeting: the SDK notices (client_sdk/rtc/watchdog.py), keeps the meeting and
moves to another path within its bound (client_sdk.meeting.PATH_SWITCH_BOUND_S).

The sites are tests/regions/turn_world.py's; the firewall change is made in the client's namespace with
iptables while the meeting runs, and undone after the test.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest

from client_sdk.meeting import PATH_SWITCH_BOUND_S
from tests.regions.turn_world import TurnWorld, needs_turn_world, rule_while, spawn, turn_port, world
from tests.regions.world import receiving, still_receiving

pytestmark = needs_turn_world
__all__ = ["world"]  # the module's fixture


@pytest.mark.parametrize("then", ["turn/tls", "direct"])
def test_a_turn_path_that_dies_mid_meeting_moves_to_another_path_within_the_bound(
    world: TurnWorld, then: str
) -> None:
    """A client in site 2 (UDP dropped) is in the meeting through TURN over TCP; then its firewall drops
    TCP to the TURN port too (the TURN server is gone for it: no reset, segments just vanish). The SDK
    notices the silence, keeps the meeting and finds the next path: TURN over TLS (another coturn
    listener), or, when UDP was opened at the same time, direct. Media flows again both ways within the
    SDK's bound (PATH_SWITCH_BOUND_S), same participant, no rejoin by the application."""
    host = world.api.new_user("Direct")
    meeting = world.api.new_meeting(host)
    udp_drop = ("-p", "udp", "-j", "DROP")
    with ExitStack() as stack:
        direct = spawn(world, stack, 1, meeting, host, "direct")
        direct.wait_for(lambda s: s["media_path"], 30)
        moving = spawn(world, stack, 2, meeting, world.api.new_user("Moving"), "moving")
        joined = moving.wait_for(lambda s: s["media_path"], 40)
        assert joined["media_path"] == "turn/tcp", joined
        moving.wait_for(receiving(moving, [direct]), 40)
        direct.wait_for(receiving(direct, [moving]), 40)
        participant = joined["participant_id"]

        stack.enter_context(
            rule_while(world.wan, 2, "-I", "-p", "tcp", "--dport", turn_port(world), "-j", "DROP")
        )
        if then == "direct":
            stack.enter_context(rule_while(world.wan, 2, "-D", *udp_drop))
        cut = time.monotonic()

        def on_the_new_path(s: dict) -> bool:
            return s["media_path"] == then and "media_path_changed" in s["events"]

        moved = moving.wait_for(on_the_new_path, PATH_SWITCH_BOUND_S + 15)
        moved_s = time.monotonic() - cut
        assert moved["reconnects"] == 1 and moved["participant_id"] == participant, moved
        assert moved["reconnect_reasons"][0].startswith("media path lost (turn/tcp: "), moved
        # Media both ways again: frames keep arriving each way after the move.
        assert still_receiving(moving, direct) and still_receiving(direct, moving)
        resumed_s = time.monotonic() - cut
        print(f"turn/tcp cut: on {then} after {moved_s:.1f} s; frames both ways checked by {resumed_s:.1f} s")
        assert moved_s <= PATH_SWITCH_BOUND_S + 5, moved_s  # + a loaded 2-core machine
