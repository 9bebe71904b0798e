"""Host controls enforced by real relays (the session's local stack: the API under uvicorn, two clustered
relay processes, real WebSockets and WebRTC, aiortc peers).

The muted or removed participant here is a plain relay connection that ignores what it is told and keeps
sending: what stops its media is the relay. Times from the host's API call to the effect at the others are
printed (goal: < 300 ms on one relay, < 1 s across the cascade) and bounded loosely (a loaded machine).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from functions.core.security import join_signing_key
from functions.models import RelayModel
from local_stack.relays import RelayProcess
from meetup_protocol.tokens import issue_notice
from tests.conftest import Api
from tests.edge_relay.media import Peer, wait_until
from tests.edge_relay.test_bad_input import exchange
from tests.edge_relay.test_cascade import join_on
from tests.edge_relay.test_media_e2e import relay_metrics
from tests.security.test_relay_notices import join_frame, running


async def timed(api_call, condition, timeout_s: float = 5.0) -> float:
    """Seconds from the API call (run off the loop) to ``condition`` holding at a participant."""
    start = time.monotonic()
    response = await asyncio.to_thread(api_call)
    assert response.status_code == 200, response.text
    assert await wait_until(condition, timeout_s, interval_s=0.005)
    return time.monotonic() - start


def events(peer: Peer, type_: str) -> list[dict]:
    return [e.data for e in peer.events if e.type == type_]


async def still(peer: Peer, track_id: str, for_s: float = 1.5) -> int:
    """Frames of ``track_id`` that ``peer`` decoded over ``for_s`` seconds (after in-flight ones)."""
    await asyncio.sleep(0.4)
    before = peer.frames(track_id)
    await asyncio.sleep(for_s)
    return peer.frames(track_id) - before


async def test_a_host_mute_is_enforced_at_the_relay_and_self_unmute_follows_the_setting(
    api: Api, stack
) -> None:
    meeting, host, (loud, watcher) = api.joined_meeting(2, allow_self_unmute=False)
    mid = meeting["meeting_id"]
    a = await join_on(stack, loud, meeting, "local")
    w = await join_on(stack, watcher, meeting, "local", video=False)
    try:
        aid = a.conn.participant_id
        mic, cam = f"{aid}/microphone", f"{aid}/camera"
        assert await wait_until(lambda: w.frames(mic) >= 20 and w.frames(cam) >= 5, 30)
        blocked_before = relay_metrics(stack)["relay_rtp_blocked_total"]

        def mute(muted: bool = True, who: str | None = aid) -> httpx.Response:
            body = {"participant_id": who, "source": "microphone", "muted": muted}
            return api.post(f"/meetings/{mid}/mute", host, json=body)

        took = await timed(mute, lambda: any(e["track_id"] == mic for e in events(w, "track_muted")))
        print(f"host mute -> track_muted at another participant, one relay: {took * 1000:.0f} ms")
        assert took < 2.0
        assert await wait_until(lambda: events(a, "muted_by_host"), 2)
        assert events(a, "muted_by_host")[0] == {
            "type": "muted_by_host",
            "source": "microphone",
            "muted": True,
            "can_unmute": False,
        }
        # A keeps sending its microphone (it ignores the notice): nothing of it reaches W any more.
        assert await still(w, mic) == 0
        assert await still(w, cam, 0.5) > 0  # its camera still flows
        assert relay_metrics(stack)["relay_rtp_blocked_total"] > blocked_before + 20
        # The meeting does not let it unmute itself: refused, and still nothing flows.
        await a.send_raw({"type": "mute", "source": "microphone", "muted": False})
        assert await wait_until(lambda: "not_allowed" in {e["code"] for e in events(a, "error")}, 2)
        assert await still(w, mic, 0.8) == 0
        # Reconnecting, even to the other relay, unmutes nothing (its new join token carries the mute).
        await a.close(leave=False)
        a = await join_on(stack, loud, meeting, "eu-west-1")
        assert await wait_until(lambda: events(a, "muted_by_host"), 2)  # told at once
        assert events(a, "muted_by_host")[0]["can_unmute"] is False
        await a.send_raw({"type": "mute", "source": "microphone", "muted": False})
        assert await wait_until(lambda: "not_allowed" in {e["code"] for e in events(a, "error")}, 2)
        assert await wait_until(lambda: w.frames(cam) > 0 and mic in w.received, 10)
        assert await still(w, mic, 0.8) == 0
        # The host allows it again: the relay forwards it (A never muted itself, so it flows at once).
        took = await timed(lambda: mute(False), growing(w, mic))
        print(f"host unmute -> media again at another participant: {took * 1000:.0f} ms")
        assert events(a, "muted_by_host")[-1]["muted"] is False
        assert not a.conn.closed.is_set() and not w.conn.closed.is_set()
    finally:
        await a.close()
        await w.close()


def growing(peer: Peer, track_id: str) -> Callable[[], bool]:
    """A polling condition: whether ``track_id``'s frame count grew since the previous poll."""
    last = [peer.frames(track_id)]

    def grew() -> bool:
        now, before = peer.frames(track_id), last[0]
        last[0] = now
        return now > before

    return grew


async def test_mute_all_spares_moderators_and_self_unmute_is_allowed_by_default(api: Api, stack) -> None:
    meeting, host, (co, guest) = api.joined_meeting(2)
    mid = meeting["meeting_id"]
    listed = api.get(f"/meetings/{mid}/participants", host).json()
    co_pid = next(p["participant_id"] for p in listed if p["display_name"] == "Guest 0")
    assert api.post(f"/meetings/{mid}/participants/{co_pid}/role", host, json={"role": "co_host"}).is_success
    c = await join_on(stack, co, meeting, "local")  # joins as a co-host (its token says so)
    g = await join_on(stack, guest, meeting, "local")
    try:
        gmic, cmic = f"{g.conn.participant_id}/microphone", f"{c.conn.participant_id}/microphone"
        assert await wait_until(lambda: c.frames(gmic) >= 20 and g.frames(cmic) >= 20, 30)
        r = api.post(f"/meetings/{mid}/mute", co, json={})  # the co-host mutes all
        assert r.status_code == 200, r.text
        assert await wait_until(lambda: events(g, "muted_by_host"), 3)
        assert events(g, "muted_by_host")[0]["can_unmute"] is True
        assert await still(c, gmic) == 0
        assert await still(g, cmic, 0.5) > 0 and not events(c, "muted_by_host")  # moderators spared
        await g.send_raw({"type": "mute", "source": "microphone", "muted": False})  # allowed: flows
        assert await wait_until(growing(c, gmic), 5)
        assert not events(g, "error")
    finally:
        await c.close()
        await g.close()


async def test_removal_drops_the_session_everywhere_across_relays_and_its_tokens(api: Api, stack) -> None:
    meeting, host, (guest, near_watcher) = api.joined_meeting(2)
    mid = meeting["meeting_id"]
    g = await join_on(stack, guest, meeting, "eu-west-1")
    w = await join_on(stack, near_watcher, meeting, "local", video=False)
    old_token = api.join(meeting, guest).json()["join_token"]
    try:
        gid = g.conn.participant_id
        assert await wait_until(lambda: w.frames(f"{gid}/microphone") >= 20, 30)
        took = await timed(
            lambda: api.post(
                f"/meetings/{mid}/participants/{w.conn.participant_id}/role", host, json={"role": "co_host"}
            ),
            lambda: any(e["role"] == "co_host" for e in events(g, "role_changed")),
        )
        print(f"promote -> role_changed at a participant on the other relay: {took * 1000:.0f} ms")
        assert events(w, "role_changed")[0] == {
            "type": "role_changed",
            "participant_id": w.conn.participant_id,
            "role": "co_host",
        }

        # A mute of the far relay's participant: the far relay drops it, so nothing crosses the link.
        gmic = f"{gid}/microphone"
        took = await timed(
            lambda: api.post(f"/meetings/{mid}/mute", host, json={"participant_id": gid}),
            lambda: any(e["track_id"] == gmic for e in events(w, "track_muted")),
        )
        print(f"host mute -> track_muted across the cascade: {took * 1000:.0f} ms")
        assert took < 3.0
        assert await still(w, gmic) == 0
        assert relay_metrics(stack, "eu-west-1")["relay_rtp_blocked_total"] > 0

        def left() -> bool:
            return any(e["participant_id"] == gid for e in events(w, "participant_left"))

        # The co-host, on the near relay, removes the guest who sits on the far one.
        took = await timed(lambda: api.post(f"/meetings/{mid}/participants/{gid}/remove", near_watcher), left)
        print(f"remove -> participant_left across the cascade: {took * 1000:.0f} ms")
        assert took < 3.0
        gone = next(e for e in events(w, "participant_left") if e["participant_id"] == gid)
        assert gone["reason"] == "removed_by_host"
        assert await wait_until(lambda: g.conn.closed.is_set(), 3)
        assert events(g, "removed") == [{"type": "removed", "reason": "removed_by_host"}]
        assert await still(w, f"{gid}/camera", 1.0) == 0
        for relay in running(stack):  # its tokens are dead at every relay, and the API refuses it
            replies, code = await exchange(relay.url, join_frame(old_token))
            assert replies[0]["code"] == "token_revoked" and code == 4403, relay.region
        assert api.join(meeting, guest).json()["error"]["code"] == "removed_by_host"
        # A relay that was not there (cut off, or started since), which the API never tells: the
        # cluster's state brings it the removal, and it refuses the old token too.
        assert await refused_by_a_late_relay(stack, old_token)
    finally:
        await g.close(leave=False)
        await w.close()


async def refused_by_a_late_relay(stack, token: str) -> bool:
    """Whether a relay started now, seeded with the cluster and unknown to the API, comes to refuse
    ``token`` as revoked (within ~10 s: the cluster's push-pull)."""
    seeds = ",".join(r.gossip for r in RelayModel.scan(consistent_read=True) if r.gossip)
    env = {"MEETUP_RELAY_REGISTRY": "false", "MEETUP_RELAY_CLUSTER_SEEDS": seeds}
    late = RelayProcess("late", stack.join_public_key, env=env)
    late.start()
    try:
        for _ in range(40):
            replies, _ = await exchange(late.url, join_frame(token))
            if replies and replies[0].get("code") == "token_revoked":
                return True
            await asyncio.sleep(0.25)
        return False
    finally:
        late.stop()


async def test_a_guest_over_the_relay_and_a_notice_of_the_wrong_shape_change_nothing(api: Api, stack) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    g = await join_on(stack, guest, meeting, "local", video=False)
    url = f"{stack.relays[0].http_url}/notices"
    try:
        await g.send_raw({"type": "end"})
        assert await wait_until(lambda: "not_host" in {e["code"] for e in events(g, "error")}, 2)
        for kind, data in [
            ("muted", {"participant_id": g.conn.participant_id, "source": "keyboard", "muted": True}),
            ("muted", {"participant_id": ["x"], "source": "microphone", "muted": 1}),
            ("role_changed", {"roles": {g.conn.participant_id: "owner"}}),
            ("role_changed", {"roles": {f"p{i}": "host" for i in range(100)}}),
            ("role_changed", {"roles": []}),
        ]:
            notice = issue_notice(kind, mid, data, join_signing_key(), 60)  # type: ignore[arg-type]
            r = httpx.post(url, json={"notice": notice})
            assert r.status_code == 401 and r.json()["error"]["code"] == "token_invalid", (kind, r.text)
        await g.send_raw({"type": "ping"})
        assert await wait_until(lambda: "pong" in g.event_types(), 2)
        assert not events(g, "muted_by_host") and not events(g, "role_changed")
        assert api.get(f"/meetings/{mid}", host).json()["status"] == "active"
    finally:
        await g.close()
