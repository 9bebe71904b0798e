"""Three regions, one cluster: relays in three network namespaces, participants in the regions.

Real hosts in network namespaces, real IP between them through the user-space WAN router
(tests/regions/wan.py: this kernel has no netem, so the router applies the delays and the partitions).
Every participant is an agent process using the real SDK in its region: the API ranks the relays, the
SDK's RTT probe picks the nearest, media is WebRTC through the relays (tests/regions/world.py).

The tests share one set of relays and run in order; the crash test is last (it kills a relay).
"""

from __future__ import annotations

import time
from contextlib import ExitStack

from tests.regions.world import (
    ACROSS_THE_CUT,
    DETECTION_BOUND_S,
    FROM_1,
    FROM_2,
    HEAL_BOUND_S,
    PRESET,
    REGIONS,
    World,
    agent,
    all_receive_all,
    chats,
    needs_namespaces,
    one_per_region,
    receiving,
    seconds_until_declared_dead,
    still_receiving,
    wait,
    world,
)

__all__ = ["world"]  # the module-scoped fixture: one set of relays for this module
pytestmark = needs_namespaces


def test_each_participant_on_its_nearest_relay_receives_everyone(world: World) -> None:
    host = world.api.new_user("Host")
    meeting = world.api.new_meeting(host)
    users = {site: host if site == 1 else world.api.new_user(f"User {site}") for site in REGIONS}
    with ExitStack() as stack:
        agents = {site: agent(world, stack, site, users[site], meeting, f"a{site}") for site in REGIONS}
        for site, a in agents.items():  # the SDK's RTT probe picked the relay of its own region
            assert a.latest()["relay"] == world.regions[site].relay.url, (site, a.latest()["relay"])
        all_receive_all(list(agents.values()))

        # The cascade carries each track once per relay pair: two links per relay, and on each link
        # the two tracks (camera, microphone) of the one participant on either side.
        for region in world.regions.values():
            m = region.metrics()
            assert m["relay_cascade_links"] == 2, (region.name, m)
            for other in world.regions.values():
                if other is not region:
                    peer = f'{{peer="{other.relay_id}"}}'
                    assert m[f"relay_cascade_tracks_out{peer}"] == 2, (region.name, other.name)
                    assert m[f"relay_cascade_tracks_in{peer}"] == 2, (region.name, other.name)
                    assert m[f"relay_cascade_packets_out{peer}"] > 0
            assert m['relay_codec_instances_total{type="decoder"}'] == 0
        # Nobody left: once all leave, every link is gone (the cascade stops with the last subscriber).
    assert wait(lambda: all(r.metrics()["relay_cascade_links"] == 0 for r in world.regions.values()), 15)


def test_partition_keeps_each_side_serving_and_merges_after_heal(world: World) -> None:
    host = world.api.new_user("Host")
    meeting = world.api.new_meeting(host)
    with ExitStack() as stack:
        a1 = agent(world, stack, 1, host, meeting, "a1")
        a2 = agent(world, stack, 1, world.api.new_user("A2"), meeting, "a2")
        b = agent(world, stack, 2, world.api.new_user("B"), meeting, "b")
        c = agent(world, stack, 3, world.api.new_user("C"), meeting, "c")
        all_receive_all([a1, a2, b, c])

        # Cut region 1 off from regions 2 and 3.
        world.isolate(1)
        detected_s = seconds_until_declared_dead(world, 1, since=time.monotonic())
        # Each side keeps its own media flowing.
        assert still_receiving(a2, a1) and still_receiving(a1, a2)
        assert still_receiving(b, c) and still_receiving(c, b)

        # During the partition: a join (region 2), a leave (region 3), chat on both sides.
        d = agent(world, stack, 2, world.api.new_user("D"), meeting, "d")
        c_id = c.latest()["participant_id"]
        c.stop()
        b.send(f"chat {FROM_2}")
        a1.send(f"chat {FROM_1}")
        b.wait_for(lambda s: s["sent"], 20)
        a1.wait_for(lambda s: s["sent"], 20)
        d_id = d.wait_for(lambda s: s["participant_id"], 5)["participant_id"]

        world.heal(1)
        healed_at = time.monotonic()
        survivors = [a1, a2, b, d]
        all_receive_all(survivors, HEAL_BOUND_S + 30)
        for a in survivors:  # the join and the leave, everywhere
            status = a.wait_for(lambda s: d_id in s["participants"] or s["participant_id"] == d_id, 10)
            assert c_id not in status["participants"], (a.name, status["participants"])
        for a, text in [(a1, FROM_2), (a2, FROM_2), (d, FROM_2), (a2, FROM_1), (b, FROM_1), (d, FROM_1)]:
            a.wait_for(lambda s, text=text: any(c["text"] == text for c in s["chats"]), HEAL_BOUND_S)
        merged_s = time.monotonic() - healed_at
        time.sleep(2)  # a duplicate would arrive by the other path (link or gossip) meanwhile
        for a in survivors:
            for text in (FROM_1, FROM_2):
                assert chats(a, text) <= 1, (a.name, a.latest()["chats"])
        print(f"\npartition: dead after {detected_s:.1f} s (bound {DETECTION_BOUND_S:.1f} s)", end=", ")
        print(f"joins, leaves, chat and media merged {merged_s:.1f} s after the heal")


def test_cut_between_two_regions_only(world: World) -> None:
    """Regions 1 and 2 lose each other while both still reach region 3: SWIM's indirect probes (via 3)
    keep both alive, so nobody is evicted; the 1-2 link fails and is re-dialed after the heal. Region 3
    keeps receiving both sides throughout, and chat crosses the cut by gossip through region 3."""
    with ExitStack() as stack:
        a, b, c = one_per_region(world, stack)
        all_receive_all([a, b, c])
        world.wan.cut(1, 2)
        try:
            time.sleep(PRESET.suspicion_timeout_s(3) + 2)  # long enough to be declared dead, were it so
            for region in world.regions.values():
                states = [v for k, v in region.metrics().items() if k.startswith("relay_cluster_peer_state")]
                assert states == [0.0, 0.0], (region.name, states)  # alive: indirect probes go via 3
            assert still_receiving(c, a) and still_receiving(c, b)
            b.send(f"chat {ACROSS_THE_CUT}")
            a.wait_for(lambda s: chats(a, ACROSS_THE_CUT) == 1, 15)  # by gossip, through region 3
        finally:
            world.wan.heal(1, 2)
        healed_at = time.monotonic()
        for x, other in ((a, b), (b, a)):
            pid = other.latest()["participant_id"]
            seen = x.latest()["frames"].get(pid, {}).get("video", 0)
            x.wait_for(lambda s, pid=pid, seen=seen: s["frames"][pid]["video"] > seen + 5, 45)
        print(
            f"\ntwo-region cut: media between them back {time.monotonic() - healed_at:.1f} s after the heal"
        )
        assert chats(a, ACROSS_THE_CUT) == 1 and chats(c, ACROSS_THE_CUT) == 1


def test_host_end_during_a_partition_reaches_everyone_after_heal(world: World) -> None:
    """The host ends the meeting on its relay alone, which is cut off from the others: they learn it
    from the cluster state at the heal. (An end through the API reaches every relay at once: below.)"""
    with ExitStack() as stack:
        a1, b, c = one_per_region(world, stack)
        b.wait_for(receiving(b, [a1, c]), 60)
        world.isolate(1)
        try:
            a1.send("end-on-relay")
            a1.wait_for(lambda s: s["ended"], 10)
            time.sleep(1)
            assert b.latest()["ended"] is None and c.latest()["ended"] is None  # cut off: not yet
        finally:
            world.heal(1)
        for a in (b, c):
            status = a.wait_for(lambda s: s["ended"], HEAL_BOUND_S)
            assert status["ended"] == "host_ended", status["ended"]
        # An ended meeting stays ended on every relay: a late join is refused.


def test_end_through_the_api_reaches_relays_cut_off_from_the_hosts(world: World) -> None:
    """Region 1 is cut off from the other relays (not from the API): ending the meeting through the API
    reaches regions 2 and 3 at once, because the API tells every registered relay itself."""
    with ExitStack() as stack:
        a1, b, c = one_per_region(world, stack)
        b.wait_for(receiving(b, [a1, c]), 60)
        world.isolate(1)
        try:
            a1.send("end")
            for a in (a1, b, c):
                status = a.wait_for(lambda s: s["ended"], 10)
                assert status["ended"] == "host_ended", (a.name, status["ended"])
        finally:
            world.heal(1)


def test_crashed_relay_is_declared_dead_and_its_participants_move(world: World) -> None:
    with ExitStack() as stack:
        a1, b, c = one_per_region(world, stack)
        all_receive_all([a1, b, c])

        world.regions[3].relay.kill()  # SIGKILL: no drain, no goodbye
        detected_s = seconds_until_declared_dead(world, 3, since=time.monotonic())
        # C reconnects to the next nearest relay (region 2: 20 ms; region 1 is 40 ms away) and receives
        # everyone again; everyone receives C again.
        status = c.wait_for(lambda s: s["reconnects"] >= 1, 30)
        assert status["relay"] == world.regions[2].relay.url, status["relays"]
        before = {o.name: dict(c.latest()["frames"].get(o.latest()["participant_id"], {})) for o in (a1, b)}
        for o in (a1, b):
            pid, seen = o.latest()["participant_id"], before[o.name].get("video", 0)
            c.wait_for(lambda s, pid=pid, seen=seen: s["frames"][pid]["video"] > seen + 5, 30)
        c_id = c.latest()["participant_id"]
        for o in (a1, b):
            seen = o.latest()["frames"][c_id]["video"]
            o.wait_for(lambda s, seen=seen: s["frames"][c_id]["video"] > seen + 5, 30)
        print(f"\ncrash: dead after {detected_s:.1f} s (bound {DETECTION_BOUND_S:.1f})")
