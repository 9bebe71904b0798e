"""The room on its own: who is told what, who negotiates, what crosses links (fake peers, no network)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from edge_relay.rooms.room import JoinRefused, Room
from tests.edge_relay.fakes import FakeLink, FakeParticipant, info, link_state


class Listener:
    def __init__(self) -> None:
        self.heard: list[tuple[str, Any]] = []

    def changed(self, room: Room) -> None:
        self.heard.append(("changed", room.meeting_id))

    def ended(self, meeting_id: str, reason: str) -> None:
        self.heard.append(("ended", reason))

    def revoked(self, meeting_id: str, participant_id: str, generation: int) -> None:
        self.heard.append(("revoked", participant_id))

    def chat(self, room: Room, event: dict[str, Any]) -> None:
        self.heard.append(("chat", event["message_id"]))


def new_room(max_participants: int = 10) -> tuple[Room, list[Room], Listener]:
    emptied: list[Room] = []
    room = Room("m1", max_participants, time.time() + 3600, emptied.append)
    room.relay_id = "relay-a"
    room.listener = Listener()
    return room, emptied, room.listener  # type: ignore[return-value]


async def test_a_join_is_told_to_the_others_not_to_the_joiner() -> None:
    room, _, listener = new_room()
    alice, bob = FakeParticipant("alice"), FakeParticipant("bob")
    await room.add(alice)  # type: ignore[arg-type]
    await room.add(bob)  # type: ignore[arg-type]
    assert [args[0].participant_id for args in alice.signals.of("participant_joined")] == ["bob"]
    assert bob.signals.calls == []
    assert [i.participant_id for i in room.everyone_else(bob)] == ["alice"]  # type: ignore[arg-type]
    assert ("changed", "m1") in listener.heard


async def test_admission_refuses_a_full_or_ended_meeting() -> None:
    room, _, _ = new_room(max_participants=1)
    await room.add(FakeParticipant("alice"))  # type: ignore[arg-type]
    with pytest.raises(JoinRefused) as full:
        room.check_admission("bob")
    assert full.value.code == "meeting_full"
    room.check_admission("alice")  # the same participant again (a reconnect) is let in
    await room.end("host_ended")
    with pytest.raises(JoinRefused) as ended:
        room.check_admission("alice")
    assert ended.value.code == "meeting_ended"


async def test_a_reconnect_replaces_the_old_session_silently() -> None:
    room, _, _ = new_room()
    alice, old_bob, new_bob = FakeParticipant("alice"), FakeParticipant("bob"), FakeParticipant("bob")
    for p in (alice, old_bob, new_bob):
        await room.add(p)  # type: ignore[arg-type]
    assert old_bob.closed and room.participants["bob"] is new_bob  # type: ignore[comparison-overlap]
    assert alice.signals.of("participant_left") == []


async def test_a_leave_unpublishes_tracks_and_the_last_one_out_empties_the_room() -> None:
    room, emptied, _ = new_room()
    alice, bob = FakeParticipant("alice"), FakeParticipant("bob", sources=("camera",))
    await room.add(alice)  # type: ignore[arg-type]
    await room.add(bob)  # type: ignore[arg-type]
    link = FakeLink("relay-b")
    await room.add_link(link)
    await room.remove(bob, reason="left")  # type: ignore[arg-type]
    assert bob.closed
    assert alice.signals.of("participant_left") == [("bob", "left")]
    assert alice.signals.of("track_unpublished") == [("bob/camera",)]
    assert alice.negotiations == 1
    assert link.states[-1].participants == [alice.info()]
    await room.remove(alice, reason="left")  # type: ignore[arg-type]
    assert link.closed and not room.links and emptied == [room]


async def test_the_end_is_told_to_everyone_and_relayed_once() -> None:
    room, emptied, listener = new_room()
    alice = FakeParticipant("alice", role="host")
    await room.add(alice)  # type: ignore[arg-type]
    link = FakeLink("relay-b")
    await room.add_link(link)
    await room.end("host_ended")
    await room.end("host_ended")  # twice: nothing more
    assert alice.signals.of("meeting_ended") == [("host_ended",)]
    assert alice.signals.of("disconnect") == [("host_ended",)]
    assert link.relayed == [{"type": "meeting_ended", "reason": "host_ended"}] and link.closed
    assert ("ended", "host_ended") in listener.heard and emptied == [room]


async def test_tracks_for_a_participant_leave_out_its_own_and_stale_linked_ones() -> None:
    room, _, _ = new_room()
    alice = FakeParticipant("alice", sources=("camera",))
    bob = FakeParticipant("bob", sources=("microphone",))
    await room.add(alice)  # type: ignore[arg-type]
    await room.add(bob)  # type: ignore[arg-type]
    carol, moved_bob = (
        FakeParticipant("carol", sources=("camera",)),
        FakeParticipant("bob", sources=("camera",)),
    )
    await room.add_link(FakeLink("relay-b", (carol, moved_bob)))
    ids = sorted(t.track_id for t, _ in room.tracks_for(alice))  # type: ignore[arg-type]
    assert ids == ["bob/microphone", "carol/camera"]  # bob is here: his linked camera is stale
    assert sorted(t.track_id for t, _ in room.local_tracks()) == ["alice/camera", "bob/microphone"]


async def test_a_link_announces_its_people_and_only_the_current_link_speaks() -> None:
    room, _, _ = new_room()
    alice = FakeParticipant("alice")
    await room.add(alice)  # type: ignore[arg-type]
    carol = FakeParticipant("carol", sources=("camera",))
    old = FakeLink("relay-b", (carol,))
    await room.add_link(old)
    assert [a[0].participant_id for a in alice.signals.of("participant_joined")] == ["carol"]
    assert old.states[0].relay_id == "relay-a"  # introduced with our state
    new = FakeLink("relay-b", (carol,))
    await room.add_link(new)  # the peer dialed anew: the old link is stale, carol is still there
    assert old.closed and alice.signals.of("participant_left") == []
    await room.on_link_tracks_changed(old, published=[info("carol/camera")])  # type: ignore[arg-type]
    await room.on_relayed(old, {"type": "reaction", "emoji": "x"})  # type: ignore[arg-type]
    assert alice.signals.of("track_published") == [] and alice.signals.of("event") == []
    await room.on_link_tracks_changed(new, published=[info("carol/camera")])  # type: ignore[arg-type]
    assert alice.signals.of("track_published") == [(info("carol/camera"),)] and alice.negotiations == 1
    await room.on_link_state(new, new.state, link_state("relay-b"))  # type: ignore[arg-type]
    assert alice.signals.of("participant_left") == [("carol", "left")]


async def test_a_link_that_cannot_be_spoken_to_is_dropped() -> None:
    room, _, _ = new_room()
    await room.add(FakeParticipant("alice"))  # type: ignore[arg-type]
    dead = FakeLink("relay-b", fail=True)
    await room.add_link(dead)
    assert dead.closed and not room.links


async def test_chat_reaches_the_others_and_the_links_once() -> None:
    room, _, listener = new_room()
    alice, bob = FakeParticipant("alice"), FakeParticipant("bob")
    await room.add(alice)  # type: ignore[arg-type]
    await room.add(bob)  # type: ignore[arg-type]
    link = FakeLink("relay-b")
    await room.add_link(link)
    chat = {"type": "chat", "participant_id": "alice", "message_id": "c1", "text": "hi"}
    await room.relay_event(chat, alice)  # type: ignore[arg-type]
    await room.relay_event(chat, alice)  # type: ignore[arg-type]  # announced again: once only
    assert bob.signals.of("event") == [(chat,)] and alice.signals.of("event") == []
    assert link.relayed == [chat] and listener.heard.count(("chat", "c1")) == 1
    assert not await room.deliver_chat(chat)  # the same message by gossip: already delivered


async def test_a_relayed_end_ends_the_room_without_relaying_it_back() -> None:
    room, _, listener = new_room()
    alice = FakeParticipant("alice")
    await room.add(alice)  # type: ignore[arg-type]
    link = FakeLink("relay-b")
    await room.add_link(link)
    await room.on_relayed(link, {"type": "meeting_ended", "reason": "host_ended"})  # type: ignore[arg-type]
    assert room.ended == "host_ended" and alice.signals.of("meeting_ended") == [("host_ended",)]
    assert link.relayed == [] and not any(kind == "ended" for kind, _ in listener.heard)


async def test_the_tick_renacks_on_the_clock_that_stamps_packets() -> None:
    # aiortc stamps each packet with wall time (ms since 1900); the tick once passed the monotonic
    # clock to the NACK retry, which then never came: a lost NACK or retransmission stayed lost.
    from edge_relay.sfu.forwarder import packet_clock_ms
    from tests.edge_relay.test_forwarder import feed, make_track, rtp

    room, _, _ = new_room()
    alice = FakeParticipant("alice")
    published, upstream = make_track("video/VP8", 90000)
    alice.tracks = [(published, info("alice/camera"))]
    await room.add(alice)  # type: ignore[arg-type]
    now = packet_clock_ms()
    await feed(published, rtp(1, 0), arrival_ms=now)
    await feed(published, rtp(3, 0), arrival_ms=now)  # 2 lost: NACKed at once
    assert len(upstream.nacks) == 1
    await asyncio.sleep(0.15)  # past the 100 ms retry
    await room.tick(report=False)
    assert len(upstream.nacks) == 2 and upstream.nacks[-1][1] == [2]
