"""Relays on loopback: membership, failure detection, partitions and healing, hostile datagrams.

Bounds come from the configuration (``detection_bound_s``, ``convergence_bound_s``: the formulas are
documented in edge_relay/cluster/config.py), so the assertions say what the relay promises.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

from edge_relay.cluster.members import State
from edge_relay.cluster.node import Cluster
from edge_relay.cluster.swim import PING
from edge_relay.cluster.testing import LocalCluster, wait_until
from edge_relay.cluster.wire import Codec


async def test_five_relays_converge_with_metadata_and_a_crash_is_detected_within_the_bound() -> None:
    async with LocalCluster(5) as lc:
        ids = {n.node_id for n in lc.nodes}
        await wait_until(lambda: lc.sees(lc.nodes, ids), 5.0)
        m = lc.nodes[0].member("relay-03")
        assert m is not None and m.region == "region-0" and m.cascade_url.endswith("/cascade")

        lc.nodes[3].update_meta(load=0.75)
        await wait_until(lambda: all(n.member("relay-03").load == 0.75 for n in lc.nodes), 3.0)  # type: ignore[union-attr]

        events: list[tuple[str, str]] = []
        lc.nodes[0].on_member_change(lambda kind, member: events.append((kind, member.id)))
        victim, survivors = lc.nodes[4], lc.nodes[:4]
        await victim.stop(leave=False)  # a crash: no goodbye
        bound = lc.nodes[0].config.detection_bound_s(5)
        took = await wait_until(lambda: lc.state_of(survivors, victim.node_id, State.DEAD), bound + 0.5)
        assert took <= bound, f"detected after {took:.2f} s, bound {bound:.2f} s"
        assert ("dead", victim.node_id) in events
        assert lc.sees(survivors, ids - {victim.node_id})  # nobody else was falsely declared dead
        lc.nodes = survivors


async def test_graceful_leave_is_seen_at_once() -> None:
    async with LocalCluster(3) as lc:
        ids = {n.node_id for n in lc.nodes}
        await wait_until(lambda: lc.sees(lc.nodes, ids), 5.0)
        leaver = lc.nodes.pop()
        await leaver.stop(leave=True)
        await wait_until(lambda: lc.state_of(lc.nodes, leaver.node_id, State.LEFT), 1.0)


async def test_partition_both_sides_work_then_heal_converges_within_the_bound() -> None:
    # Eviction after 1 s: each side evicts the other's participants during the partition, and after
    # healing the relays hosting them re-assert them (they never left). Gossip to the dead stops after
    # 0.5 s, so the sides find each other again through the reconnect push-pull, as after a long cut.
    async with LocalCluster(3, evict_after_s=1.0, gossip_to_dead_s=0.5) as lc:
        a, b, c = lc.nodes
        ids = {n.node_id for n in lc.nodes}
        await wait_until(lambda: lc.sees(lc.nodes, ids), 5.0)
        a.join("m1", "ann", "Ann", "host")
        a.publish_track("m1", "ann", "ann-cam", "video", "camera")
        c.join("m1", "carl", "Carl", "guest")
        b.join("m1", "bob", "Bob", "guest")
        c.join("m2", "dora", "Dora", "host")
        await wait_until(lambda: lc.rooms_identical(lc.nodes), 3.0)

        seen_on_a: list[tuple[str, object]] = []
        a.on_room_change(lambda mid, diff: seen_on_a.append((mid, diff)))
        lc.partition([a, b], [c])
        bound = a.config.detection_bound_s(3)
        await wait_until(lambda: lc.state_of([a, b], c.node_id, State.DEAD), bound + 2)
        await wait_until(lambda: lc.state_of([c], a.node_id, State.DEAD), bound + 2)
        await wait_until(lambda: "carl" not in a.room("m1").participants(), 3.0)  # type: ignore[union-attr]

        # Each side records joins, leaves, chat and a meeting end on its own.
        a.leave("m1", "ann")
        b.join("m1", "bea", "Bea", "guest")
        b.add_chat("m1", "chat-ab", "bea", "hello from A|B")
        c.join("m1", "cid", "Cid", "guest")
        c.add_chat("m1", "chat-c", "cid", "hello from C")
        c.end_meeting("m2", "host ended")
        assert "cid" not in a.room("m1").participants()  # type: ignore[union-attr]
        assert "bea" not in c.room("m1").participants()  # type: ignore[union-attr]

        lc.heal()
        healed = time.monotonic()
        bound = a.config.convergence_bound_s(3)
        took = await wait_until(lambda: lc.rooms_identical(lc.nodes), bound + 5)
        assert took <= bound, f"rooms converged after {took:.2f} s, bound {bound:.2f} s"
        await wait_until(lambda: lc.sees(lc.nodes, ids), bound + 5)
        membership_took = time.monotonic() - healed

        room = c.room("m1")
        assert room is not None
        assert set(room.participants()) == {"bob", "bea", "carl", "cid"}  # carl re-asserted by C
        assert room.participants()["cid"].relay_id == c.node_id
        assert {m.message_id for m in room.chat()} == {"chat-ab", "chat-c"}
        assert room.tracks() == {}  # ann left, her camera with her
        assert a.room("m2").ended is not None and a.room("m2").ended.reason == "host ended"  # type: ignore[union-attr]
        changes = {mid for mid, _ in seen_on_a}
        assert {"m1", "m2"} <= changes
        chat_on_a = [m.message_id for mid, d in seen_on_a for m in d.chat]  # type: ignore[attr-defined]
        assert chat_on_a.count("chat-c") == 1  # fanned out once, not once per path
        assert membership_took <= bound + 5
        assert sum(n.counters["push_pulls"] for n in lc.nodes) > 0
        assert all(n.stats().get("udp_oversize_out", 0) == 0 for n in lc.nodes)  # each within one MTU


async def test_a_participant_who_moved_is_not_removed_by_the_old_relay() -> None:
    async with LocalCluster(3, evict_after_s=1.5) as lc:
        a, b, c = lc.nodes
        await wait_until(lambda: lc.sees(lc.nodes, {n.node_id for n in lc.nodes}), 5.0)
        moves: list[str] = []
        a.on_room_change(lambda mid, diff: moves.extend(p.relay_id for p in diff.joined))
        a.join("m", "pat", "Pat", "guest")
        await wait_until(lambda: lc.rooms_identical(lc.nodes), 3.0)
        b.join("m", "pat", "Pat", "guest")  # reconnected to relay B
        await wait_until(lambda: moves == [b.node_id], 3.0)
        a.leave("m", "pat")  # relay A closes the stale session: must not undo the move
        await asyncio.sleep(0.3)
        assert all(n.room("m").participants()["pat"].relay_id == b.node_id for n in lc.nodes)  # type: ignore[union-attr]

        await b.stop(leave=False)
        lc.nodes.remove(b)
        await wait_until(lambda: "pat" not in a.live_participants("m"), b.config.detection_bound_s(3))
        assert "pat" in a.room("m").participants()  # type: ignore[union-attr]  # eviction comes later
        await wait_until(lambda: "pat" not in c.room("m").participants(), b.config.evict_after_s + 3)  # type: ignore[union-attr]
        assert a.room("m").p["pat"].reason == "evicted"  # type: ignore[union-attr]


async def test_a_late_leave_from_the_old_relay_during_a_partition_does_not_undo_a_move() -> None:
    """Cut off from A, the participant rejoins on B; A closes its stale session later still (a later
    timestamp than B's join). After the heal the participant is on B everywhere: B still holds it, so
    B puts it back over A's tombstone."""
    async with LocalCluster(2) as lc:
        a, b = lc.nodes
        await wait_until(lambda: lc.sees(lc.nodes, {n.node_id for n in lc.nodes}), 5.0)
        a.join("m", "pat", "Pat", "guest")
        await wait_until(lambda: lc.rooms_identical(lc.nodes), 3.0)
        lc.partition([a], [b])
        b.join("m", "pat", "Pat", "guest")
        await asyncio.sleep(0.05)
        a.leave("m", "pat")  # A's tombstone is the newest write
        assert a.room("m").p["pat"].ts > b.room("m").p["pat"].ts  # type: ignore[union-attr]
        lc.heal()

        def on_b_everywhere() -> bool:
            rooms = [n.room("m") for n in lc.nodes]
            return all(r is not None and r.participants().get("pat", None) is not None
                       and r.participants()["pat"].relay_id == b.node_id for r in rooms)  # fmt: skip

        await wait_until(on_b_everywhere, a.config.convergence_bound_s(2) + 3)
        await wait_until(lambda: lc.rooms_identical(lc.nodes), 3.0)


async def test_loss_still_converges() -> None:
    async with LocalCluster(4) as lc:
        ids = {n.node_id for n in lc.nodes}
        await wait_until(lambda: lc.sees(lc.nodes, ids), 5.0)
        for node in lc.nodes:
            node.faults.loss = 0.2  # type: ignore[union-attr]
        for i, node in enumerate(lc.nodes):
            node.join("m", f"p{i}", f"P{i}", "guest")
            node.add_chat("m", f"c{i}", f"p{i}", "hi")
        await wait_until(lambda: lc.rooms_identical(lc.nodes), lc.nodes[0].config.push_pull_interval_s * 2)
        assert len(lc.nodes[0].room("m").participants()) == 4  # type: ignore[union-attr]


async def test_a_delta_too_big_for_a_datagram_goes_over_tcp_at_once() -> None:
    async with LocalCluster(4, max_datagram=600, push_pull_interval_s=60.0) as lc:
        ids = {n.node_id for n in lc.nodes}
        await wait_until(lambda: lc.sees(lc.nodes, ids), 5.0)
        lc.nodes[0].add_chat("m", "long", "p", "x" * 1000)
        await wait_until(lambda: lc.rooms_identical(lc.nodes), 2.0)  # well before any push-pull
        assert lc.nodes[3].room("m").chat()[0].text == "x" * 1000  # type: ignore[union-attr]
        assert lc.nodes[0].counters["pushes"] >= 1
        assert all(n.stats().get("udp_oversize_out", 0) == 0 for n in lc.nodes)


async def test_hostile_datagrams_and_streams_are_counted_and_never_crash() -> None:
    async with LocalCluster(3) as lc:
        ids = {n.node_id for n in lc.nodes}
        await wait_until(lambda: lc.sees(lc.nodes, ids), 5.0)
        target: Cluster = lc.nodes[0]
        forger = Codec("relay-01", ["test-secret"])  # claims to be a member, has the key
        stranger = Codec("relay-99", ["wrong-secret"])
        replayed = forger.seal(PING, {"s": 1, "to": target.node_id})
        stale = Codec("relay-01", ["test-secret"], clock=lambda: time.time() - 600).seal(PING, {"s": 2})
        datagrams = [
            b"",
            b"\x00",
            os.urandom(1200),
            b"MC\x01" + os.urandom(100),  # garbage
            stranger.seal(PING, {"s": 3, "to": target.node_id}),  # forged: wrong key
            replayed,
            replayed,
            stale,  # a replay, and an old capture
            forger.seal(PING, ["not", "a", "map"]),
            forger.seal(PING, {"s": "x", "g": "nope"}),
            forger.seal(PING, {"g": [["relay-02", "bad"]], "r": [["m", {"p": [[1]]}]]}),
            os.urandom(70_000)[:65_000],  # oversize
        ]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for data in datagrams:
                sock.sendto(data, target.address)
        finally:
            sock.close()
        for junk in (os.urandom(64), b"\xff\xff\xff\xff" + os.urandom(10), b""):
            _, writer = await asyncio.open_connection(*target.address)
            writer.write(junk)
            await writer.drain()
            writer.close()
        await asyncio.sleep(0.5)
        rejected = target.stats()["rejected"]
        assert rejected["malformed"] >= 5, rejected
        assert rejected["bad_mac"] >= 1 and rejected["replay"] >= 1 and rejected["stale"] >= 1, rejected
        assert rejected["oversize"] >= 1 and rejected["malformed_room"] >= 1, rejected
        # still a working member
        lc.nodes[1].join("m", "p", "P", "guest")
        await wait_until(lambda: lc.rooms_identical(lc.nodes), 3.0)
        assert lc.sees(lc.nodes, ids)
