"""Room state merges are a join-semilattice: any order and duplication of updates converge."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_relay.cluster.crdt import Chat, DecodeError, Ended, PEntry, RoomState, TEntry
from edge_relay.cluster.hlc import Ts

KEEP = 3  # small, so that chat trimming is exercised constantly
# Small alphabets on purpose: equal timestamps from different nodes, and (impossible in practice but
# the merge must still be deterministic) equal timestamps with different values.
ts = st.builds(Ts, st.integers(0, 4), st.integers(0, 2), st.sampled_from("abc"))
names = st.sampled_from(["", "Ann", "Bob"])
pentry = st.builds(
    PEntry, ts, st.booleans(), st.sampled_from(["r1", "r2"]), names, st.sampled_from(["host", "guest"]),
    st.sampled_from(["", "left", "evicted"]),
)  # fmt: skip
tentry = st.builds(
    TEntry, ts, st.booleans(), st.sampled_from(["r1", "r2"]), st.sampled_from(["audio", "video"]),
    st.sampled_from(["mic", "camera", "screen"]), st.booleans(),
)  # fmt: skip
ended = st.builds(Ended, ts, st.sampled_from(["host", "timeout"]), st.sampled_from(["r1", "r2"]))
chat = st.builds(Chat, ts, st.sampled_from(["p1", "p2"]), st.sampled_from(["hi", "yo"]), st.floats(0, 10))
pids = st.sampled_from(["p1", "p2", "p3"])
update = st.one_of(
    st.tuples(st.just("p"), pids, pentry),
    st.tuples(st.just("t"), pids, st.sampled_from(["t1", "t2"]), tentry),
    st.tuples(st.just("e"), ended),
    st.tuples(st.just("c"), st.sampled_from([f"m{i}" for i in range(6)]), chat),
    st.tuples(st.just("r"), pids, st.integers(0, 3)),
)


def delta(u: tuple[Any, ...]) -> RoomState:
    room = RoomState("m", KEEP)
    if u[0] == "p":
        room.p[u[1]] = u[2]
    elif u[0] == "t":
        room.t[u[1]] = {u[2]: u[3]}
    elif u[0] == "e":
        room.ended = u[1]
    elif u[0] == "r":
        room.r[u[1]] = u[2]
    else:
        room.c[u[1]] = u[2]
    return room


def fold(updates: list[tuple[Any, ...]]) -> RoomState:
    room = RoomState("m", KEEP)
    for u in updates:
        room.merge(delta(u))
    return room


def copy(room: RoomState) -> RoomState:
    return RoomState.from_wire("m", room.to_wire(), KEEP)


def join(a: RoomState, b: RoomState) -> RoomState:
    out = copy(a)
    out.merge(b)
    return out


@given(st.lists(update, max_size=25), st.randoms(), st.lists(st.integers(0, 24), max_size=10))
def test_any_order_and_duplication_converges(updates: list[Any], rnd: Any, dupes: list[int]) -> None:
    shuffled = updates + [updates[i] for i in dupes if i < len(updates)]
    rnd.shuffle(shuffled)
    assert fold(shuffled) == fold(updates)


@given(st.lists(update, max_size=12), st.lists(update, max_size=12), st.lists(update, max_size=12))
def test_merge_is_commutative_associative_idempotent(ua: list[Any], ub: list[Any], uc: list[Any]) -> None:
    a, b, c = fold(ua), fold(ub), fold(uc)
    assert join(a, b) == join(b, a)
    assert join(join(a, b), c) == join(a, join(b, c))
    assert join(a, a) == a
    assert join(a, b) == fold(ua + ub)


@given(st.lists(update, max_size=15), st.lists(update, max_size=15))
def test_winning_delta_carries_the_whole_change(ua: list[Any], ub: list[Any]) -> None:
    """What a merge returns as ``won`` is what a relay re-gossips: it must bring a peer that had the same
    state before to the same state after."""
    a, b = fold(ua), fold(ub)
    peer = copy(a)
    won, _ = a.merge(b)
    peer.merge(won)
    assert peer == a


@given(st.lists(update, max_size=15), st.lists(update, max_size=15))
def test_diff_describes_the_visible_change(ua: list[Any], ub: list[Any]) -> None:
    a, b = fold(ua), fold(ub)
    before = a.participants()
    before_tracks = a.tracks()
    before_chat = {m.message_id for m in a.chat()}
    was_ended = a.ended is not None
    _, diff = a.merge(b)
    if a.ended is not None:
        assert a.participants() == {} and a.chat() == [] and a.tracks() == {}
        assert (diff.ended is not None) == (not was_ended)
        return
    after = dict(before)
    for pid in diff.left:
        del after[pid]
    after.update({p.participant_id: p for p in diff.joined})
    assert after == a.participants()
    tracks = dict(before_tracks)
    for key in diff.tracks_removed:
        del tracks[key]
    tracks.update({(t.participant_id, t.track_id): t for t in diff.tracks_added})
    assert tracks == a.tracks()
    assert {m.message_id for m in diff.chat} == {m.message_id for m in a.chat()} - before_chat


@given(st.lists(update, max_size=25))
def test_ended_is_sticky_and_chat_is_bounded(updates: list[Any]) -> None:
    room = RoomState("m", KEEP)
    ended_seen = False
    for u in updates:
        room.merge(delta(u))
        ended_seen = ended_seen or u[0] == "e"
        assert (room.ended is not None) == ended_seen
        assert len(room.c) <= KEEP
    all_chat = {u[1]: u[2] for u in updates if u[0] == "c"}
    if not ended_seen and all_chat:
        # the newest KEEP notifications survive (the max entry per message id, then by entry order)
        best: dict[str, Chat] = {}
        for u in updates:
            if u[0] == "c" and (u[1] not in best or u[2] > best[u[1]]):
                best[u[1]] = u[2]
        newest = sorted(best.items(), key=lambda kv: (kv[1], kv[0]))[-KEEP:]
        assert set(room.c) == {k for k, _ in newest}


@given(st.lists(update, max_size=25))
def test_wire_round_trip_and_json_compatible(updates: list[Any]) -> None:
    room = fold(updates)
    assert copy(room) == room
    assert copy(room).digest() == room.digest()
    assert RoomState.from_wire("m", json.loads(json.dumps(room.to_wire())), KEEP) == room


garbage = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.sampled_from("ptec"), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(garbage)
def test_from_wire_rejects_garbage_with_decode_error_only(data: Any) -> None:
    with contextlib.suppress(DecodeError):
        RoomState.from_wire("m", data, KEEP)


def test_typical_room_fits_one_datagram() -> None:
    """A join or track delta piggybacks on a datagram (~100 B); a whole room of 8 with 2 tracks each is
    ~2 KB, which goes over TCP (push-pull, or a push when a healed partition's delta is that big)."""
    from edge_relay.cluster.wire import encoded_size

    room = RoomState("meeting-0123456789", 200)
    for i in range(8):
        t = Ts(1_700_000_000_000 + i, 0, "eu-west-1-0123456789ab")
        room.p[f"p{i:08x}"] = PEntry(t, True, "eu-west-1-0123456789ab", f"Person {i}", "guest", "")
        room.t[f"p{i:08x}"] = {
            f"track-{k}-{i:04x}": TEntry(t, True, t.node, "video", "camera", False) for k in "av"
        }
    one = RoomState("m", 200)
    one.p["p0"] = room.p["p00000000"]
    assert encoded_size(["meeting-0123456789", one.to_wire()]) < 120
    assert 1400 < encoded_size(["meeting-0123456789", room.to_wire()]) < 2500


def test_revocations_keep_the_newest_generation_and_are_reported_once() -> None:
    room = RoomState("m", KEEP)
    _, diff = room.merge(delta(("r", "p1", 2)))
    assert diff.revoked == [("p1", 2)] and room.r == {"p1": 2}
    _, diff = room.merge(delta(("r", "p1", 1)))  # an older revocation arriving late changes nothing
    assert not diff and room.r == {"p1": 2}
    assert copy(room).r == {"p1": 2}  # survives the wire form
    room.merge(delta(("e", Ended(Ts(9, 0, "a"), "host", "r1"))))
    assert room.r == {}  # an ended meeting refuses every token anyway
