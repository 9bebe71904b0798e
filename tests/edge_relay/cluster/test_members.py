"""SWIM state rules: incarnations order claims, a member refutes suspicion of itself."""

from __future__ import annotations

import pytest

from edge_relay.cluster.members import Member, MemberTable, State


def table() -> MemberTable:
    t = MemberTable(Member("me", "127.0.0.1", 1000), clock=lambda: 0.0)
    t.apply(Member("b", "127.0.0.1", 1001, incarnation=1))
    return t


def rec(state: State, inc: int, mid: str = "b") -> Member:
    return Member(mid, "127.0.0.1", 1001, incarnation=inc, state=state)


def test_join_suspect_refute_dead() -> None:
    t = table()
    assert t.get("b") is not None and t.get("b").state == State.ALIVE  # type: ignore[union-attr]
    assert t.apply(rec(State.SUSPECT, 0)) is None  # about an older incarnation: ignored
    change = t.apply(rec(State.SUSPECT, 1))
    assert change is not None and change.kind == "suspect"
    assert t.apply(rec(State.SUSPECT, 1)) is None  # already suspect
    assert t.apply(rec(State.ALIVE, 1)) is None  # a stale alive does not cancel the suspicion
    change = t.apply(rec(State.ALIVE, 2))  # the refutation
    assert change is not None and change.kind == "alive" and t.get("b").state == State.ALIVE  # type: ignore[union-attr]
    t.apply(rec(State.SUSPECT, 2))
    assert t.expire_suspect("b", 1) is None  # a timer for an older suspicion does nothing
    change = t.expire_suspect("b", 2)
    assert change is not None and change.kind == "dead"
    assert t.apply(rec(State.ALIVE, 2)) is None  # dead at 2 beats alive at 2
    assert t.apply(rec(State.ALIVE, 3)).kind == "alive"  # type: ignore[union-attr]


def test_refutes_claims_about_itself() -> None:
    t = table()
    change = t.apply(rec(State.SUSPECT, 0, "me"))
    assert change is not None and change.kind == "refute" and t.local.incarnation == 1
    change = t.apply(rec(State.DEAD, 5, "me"))
    assert change is not None and t.local.incarnation == 6 and t.local.state == State.ALIVE
    assert t.apply(rec(State.SUSPECT, 3, "me")) is None  # older than what we announced
    t.leaving = True
    assert t.apply(rec(State.DEAD, 6, "me")) is None


def test_push_pull_death_is_only_a_suspicion_and_left_is_final() -> None:
    t = table()
    change = t.apply(rec(State.DEAD, 1), from_push_pull=True)
    assert change is not None and change.kind == "suspect"
    assert t.apply(rec(State.LEFT, 1)).kind == "left"  # type: ignore[union-attr]
    assert t.apply(rec(State.DEAD, 1)) is None
    assert t.apply(rec(State.SUSPECT, 1)) is None
    assert t.apply(rec(State.DEAD, 0, "stranger")) is None  # never seen alive: nothing to learn


def test_metadata_update_rides_on_incarnation() -> None:
    t = table()
    upd = rec(State.ALIVE, 2)
    upd.load, upd.region = 0.7, "eu-west-1"
    change = t.apply(upd)
    assert change is not None and change.kind == "update"
    assert t.get("b").load == 0.7 and t.get("b").region == "eu-west-1"  # type: ignore[union-attr]
    change = t.bump_local(load=3.0)
    assert change.member.incarnation == 1 and t.local.load == 3.0


@pytest.mark.parametrize(
    "row",
    [None, [], ["b"] * 10, ["", 0, 0, "h", 1, "", "", "", 0, {}], ["b", -1, 0, "h", 1, "", "", "", 0, {}],
     ["b", 0, 9, "h", 1, "", "", "", 0, {}], ["b", 0, 0, "h", 70000, "", "", "", 0, {}],
     ["b", 0, 0, "h", 1, "", "", "", True, {}], ["b", 0, 0, "h", 1, "", "", "", 0, {"k": 1}]],
)  # fmt: skip
def test_malformed_records_raise_value_error(row: object) -> None:
    with pytest.raises(ValueError):
        Member.from_wire(row)


def test_configured_bounds_follow_memberlist() -> None:
    from edge_relay.cluster.config import ClusterConfig

    wan = ClusterConfig.wan("r", secrets="k")
    assert (wan.probe_interval_s, wan.probe_timeout_s, wan.suspicion_mult) == (5.0, 3.0, 6.0)
    assert (wan.gossip_interval_s, wan.gossip_nodes, wan.push_pull_interval_s) == (0.5, 4, 60.0)
    assert wan.suspicion_timeout_s(3) == 30.0 and wan.suspicion_timeout_s(100) == 60.0
    assert wan.push_pull_interval_for(32) == 60.0 and wan.push_pull_interval_for(64) == 120.0
    local = ClusterConfig.local("r", secrets="k")
    assert local.detection_bound_s(5) < local.detection_bound_s(30) < 10
    with pytest.raises(ValueError):
        ClusterConfig.lan("r")  # no secret
    with pytest.raises(ValueError):
        ClusterConfig.preset("moon", "r", secrets="k")
    with pytest.raises(ValueError):
        MemberTable(Member("me", "h", 1)).bump_local(lod=1.0)  # a typo is not silently gossiped
