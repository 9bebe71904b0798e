"""The cluster under faults: one-way cuts, flapping links, a participant moving between live relays.

After every fault heals, what each participant sees is checked against who is really connected where:
its list of participants is exactly the others, it decodes every other participant's audio and video,
and it receives nothing of its own. (tests/regions/world.py: three relays behind the WAN router.)
"""

from __future__ import annotations

import time
from contextlib import ExitStack

from tests.regions.agents import Agent
from tests.regions.world import (
    HEAL_BOUND_S,
    World,
    agent,
    all_receive_all,
    needs_namespaces,
    one_per_region,
    wait,
    world,
)

__all__ = ["world"]  # the module-scoped fixture: one set of relays for this module
pytestmark = needs_namespaces


def ids(agents: list[Agent]) -> dict[str, str]:
    return {a.name: a.latest()["participant_id"] for a in agents}


def sees_the_truth(agents: list[Agent], seconds: float = 2.0) -> dict[str, str]:
    """What is wrong with each participant's view (empty: nothing). Frames must keep arriving from each
    of the others over ``seconds``: a list that is right while the media is stuck is not right."""
    pids = ids(agents)
    before = {a.name: a.latest()["frames"] for a in agents}
    time.sleep(seconds)
    wrong: dict[str, str] = {}
    for a in agents:
        status = a.latest()
        others = {pids[o.name] for o in agents if o is not a}
        if set(status["participants"]) != others:
            wrong[a.name] = f"lists {sorted(status['participants'])}, truth {sorted(others)}"
        elif pids[a.name] in status["frames"]:
            wrong[a.name] = "receives its own tracks"
        else:
            for pid in others:
                now, then = status["frames"].get(pid, {}), before[a.name].get(pid, {})
                if (
                    now.get("video", 0) <= then.get("video", 0) + 3
                    or now.get("audio", 0) <= then.get("audio", 0) + 10
                ):
                    name = next(o.name for o in agents if pids[o.name] == pid)
                    wrong[a.name] = f"no media from {name}: {then} -> {now}"
    return wrong


def converges(agents: list[Agent], timeout_s: float = HEAL_BOUND_S, stays_s: float = 10.0) -> None:
    """The truth holds within ``timeout_s`` of the heal, and still holds ``stays_s`` later."""
    wrong: dict[str, str] = {}

    def right() -> bool:
        nonlocal wrong
        wrong = sees_the_truth(agents)
        return not wrong

    started = time.monotonic()
    events = lambda: {n: next(a for a in agents if a.name == n).latest()["events"][-12:] for n in wrong}  # noqa: E731
    if not wait(right, timeout_s, step_s=0.0):
        print("\n  last events:", events())
        raise AssertionError(wrong)
    print(f"\n  converged {time.monotonic() - started:.1f} s after the heal", end="")
    time.sleep(stays_s)
    assert right(), wrong


def test_a_participant_moves_between_live_relays_during_a_one_way_cut(world: World) -> None:
    """Relay 1's packets to relay 3 are dropped (the reverse delivered) for 20 s; meanwhile the
    participant on relay 3 moves to relay 2, keeping its participant id. Everyone, and the mover
    on its new relay, must see and decode everyone else, and the mover not itself."""
    with ExitStack() as stack:
        a, b, c = one_per_region(world, stack)
        all_receive_all([a, b, c])
        world.wan.cut(1, 3, oneway=True)
        try:
            time.sleep(8)
            c.send("move")
            c.wait_for(lambda s: s["relay"] == world.regions[2].relay.url and s["reconnects"] >= 1, 30)
            time.sleep(10)
        finally:
            world.wan.heal(1, 3, oneway=True)
        converges([a, b, c])


def test_a_participant_moves_while_a_link_flaps(world: World) -> None:
    """The link between relays 1 and 2 fails and heals every 2 s for 30 s, while the participant on
    relay 3 moves to relay 2 and back to relay 3."""
    with ExitStack() as stack:
        a, b, c = one_per_region(world, stack)
        all_receive_all([a, b, c])
        moves = {4: "move", 16: "move"}
        try:
            for step in range(15):
                if step in moves:
                    c.send(moves[step])
                world.wan.cut(1, 2) if step % 2 == 0 else world.wan.heal(1, 2)
                time.sleep(2)
        finally:
            world.wan.heal(1, 2)
        converges([a, b, c])


def chat_texts(a: Agent) -> list[str]:
    return [c["text"] for c in a.latest()["chats"]]


def test_chat_confirmed_while_cut_off_from_its_relay_reaches_everyone_once(world: World) -> None:
    """D sits in region 1 but is pinned to region 2's relay. Regions 1 and 2 are cut apart for 25 s:
    D still reaches the API, which stores and confirms its three messages, but not its relay (its
    connection dies, and what it had sent on it). After the heal, everyone gets each message once."""
    host = world.api.new_user("Host")
    meeting = world.api.new_meeting(host)
    with ExitStack() as stack:
        a, b, c = one_per_region(world, stack, meeting, host)
        d = agent(world, stack, 1, world.api.new_user("D"), meeting, "d", region="r2", args=("--pin-region",))
        assert d.latest()["relay"] == world.regions[2].relay.url
        everyone = [a, b, c, d]
        all_receive_all(everyone)
        texts = [f"confirmed while cut off {i}" for i in range(3)]
        world.wan.cut(1, 2)
        try:
            time.sleep(2)
            for text in texts:
                d.send(f"chat {text}")
            d.wait_for(lambda s: len(s["sent"]) == 3, 20)  # the API stored and confirmed them
            time.sleep(23)
        finally:
            world.wan.heal(1, 2)
        for x in (a, b, c):
            x.wait_for(lambda s: all(t in [m["text"] for m in s["chats"]] for t in texts), HEAL_BOUND_S + 20)
        time.sleep(3)  # a second copy by another path would arrive meanwhile
        for x in (a, b, c):
            assert all(chat_texts(x).count(t) == 1 for t in texts), (x.name, chat_texts(x))
        # D's own connection came back after the heal (within the SDK's 5 s retry back-off).
        converges(everyone, timeout_s=HEAL_BOUND_S + 15)


def test_isolating_a_region_again_and_again_loses_nobody(world: World) -> None:
    """Region 1 is cut off from both others and healed, every 2 s for 30 s: afterwards every list is
    complete and true again (a late state from a replaced link must not remove anyone for good)."""
    host = world.api.new_user("Host")
    meeting = world.api.new_meeting(host)
    with ExitStack() as stack:
        a1, b, c = one_per_region(world, stack, meeting, host)
        a2 = agent(world, stack, 1, world.api.new_user("A2"), meeting, "a2")
        everyone = [a1, a2, b, c]
        all_receive_all(everyone)
        try:
            for step in range(15):
                world.isolate(1) if step % 2 == 0 else world.heal(1)
                time.sleep(2)
        finally:
            world.heal(1)
        converges(everyone)
