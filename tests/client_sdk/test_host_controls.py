"""Host controls through the SDK on the local stack (API, two clustered relays, real WebRTC): typed errors
for a guest, the events each participant gets, hands in raise order across relays, and a removal ending
the removed one's meeting for good."""

from __future__ import annotations

import asyncio

import pytest

from client_sdk.errors import (
    DeniedByHost,
    MeetingLocked,
    NotAllowed,
    ParticipantNotFound,
    RemovedByHost,
    WaitingForHost,
)
from client_sdk.media.sources import ToneAudioTrack
from client_sdk.meeting import Meeting
from tests.client_sdk.test_meeting import Watcher, new_client
from tests.edge_relay.media import wait_until


async def test_host_controls_through_the_sdk(stack) -> None:
    host_api, guest_api, other_api = [await new_client(stack.api_url, n) for n in ("Host", "Guest", "Other")]
    created = await host_api.create_meeting("Host controls", allow_self_unmute=False)
    mid = created.meeting_id
    host = await Meeting.join(host_api, mid, publish={}, region="local")
    guest = await Meeting.join(
        guest_api,
        mid,
        created.passcode,
        publish={"microphone": ToneAudioTrack()},
        region="eu-west-1",
        pin_region=True,
    )
    other = await Meeting.join(other_api, mid, created.passcode, publish={}, region="local")
    wh, wg, wo = Watcher(host), Watcher(guest), Watcher(other)
    try:
        assert guest.relay_url != host.relay_url == other.relay_url  # two relays, cascaded
        # A guest may do none of it: typed errors, before anything reaches the relays.
        for attempt in (
            guest.host_controls.remove(other.participant_id),
            guest.host_controls.mute_all(),
            guest.host_controls.promote(guest.participant_id),
            guest.host_controls.lock(),
        ):
            with pytest.raises(NotAllowed):
                await attempt
        with pytest.raises(NotAllowed):
            await guest.lower_hand(other.participant_id)
        with pytest.raises(ParticipantNotFound):
            await host.host_controls.remove("p_0123456789abcdef")

        # Hands, in raise order, the same on both relays; a host lowers another's.
        await other.raise_hand()
        assert await wait_until(lambda: guest.hands == [other.participant_id], 5), guest.hands
        await guest.raise_hand()
        order = [other.participant_id, guest.participant_id]
        for m in (host, guest, other):
            assert await wait_until(lambda m=m: m.hands == order, 5), (m.participant_id, m.hands)
        await host.lower_hand(guest.participant_id)  # the guest sits on the other relay
        for m in (host, guest, other):
            assert await wait_until(lambda m=m: m.hands == [other.participant_id], 5), m.hands
        lowered = [e.data for e in wg.of("hand_changed") if not e.data["raised"]]
        assert lowered and lowered[-1]["by"] == host.participant_id

        # A promotion reaches everyone; the co-host mutes the guest, who may not unmute itself.
        await host.host_controls.promote(other.participant_id)
        assert await wait_until(lambda: other.role == "co_host", 5)
        assert await wait_until(lambda: any(e.data["role"] == "co_host" for e in wg.of("role_changed")), 5)
        await other.host_controls.mute(guest.participant_id)
        assert await wait_until(lambda: wg.of("muted_by_host"), 5)
        assert guest.host_muted == {"microphone": False}
        with pytest.raises(NotAllowed):
            await guest.mute("microphone", False)
        assert await wait_until(lambda: any(e.data["muted"] for e in wh.of("track_muted")), 5)

        # Locked: nobody new; then the co-host removes the guest, for good.
        await other.host_controls.lock()
        late = await new_client(stack.api_url, "Late")
        with pytest.raises(MeetingLocked):
            await late.join_meeting(mid, created.passcode)
        await other.host_controls.remove(guest.participant_id)
        assert await wait_until(guest.ended.is_set, 5)
        assert guest.end_reason == "removed_by_host"
        assert await wait_until(
            lambda: any(e.data.get("reason") == "removed_by_host" for e in wh.of("participant_left")), 5
        )
        with pytest.raises(RemovedByHost):
            await guest_api.join_meeting(mid, created.passcode)
        assert not host.ended.is_set() and not other.ended.is_set()
    finally:
        for w in (wh, wg, wo):
            w.stop()
        for m in (host, guest, other):
            await m.leave()
        for c in (host_api, guest_api, other_api):
            await c.aclose()


async def test_waiting_room_through_the_sdk(stack) -> None:
    host_api, ann_api, bob_api = [await new_client(stack.api_url, n) for n in ("Host", "Ann", "Bob")]
    created = await host_api.create_meeting("Waiting room", waiting_room=True)
    mid = created.meeting_id
    host = await Meeting.join(host_api, mid, publish={"microphone": ToneAudioTrack()})
    wh = Watcher(host)
    joining = asyncio.ensure_future(
        Meeting.join(ann_api, mid, created.passcode, publish={"microphone": ToneAudioTrack()})
    )
    denied = asyncio.ensure_future(Meeting.join(bob_api, mid, created.passcode, publish={}))
    ann: Meeting | None = None
    try:
        waiting: list = []

        async def both_wait() -> bool:
            waiting[:] = await host_api.waiting(mid)
            return len(waiting) == 2

        for _ in range(50):
            if await both_wait():
                break
            await asyncio.sleep(0.2)
        assert sorted(w.display_name for w in waiting) == ["Ann", "Bob"], waiting
        by_name = {w.display_name: w.participant_id for w in waiting}
        assert not joining.done()
        await host.host_controls.admit(by_name["Ann"])
        await host.host_controls.admit(by_name["Bob"], admit=False)
        ann = await asyncio.wait_for(joining, 20)
        assert ann.participant_id == by_name["Ann"]
        with pytest.raises(DeniedByHost):
            await asyncio.wait_for(denied, 20)
        # Admitted: it hears the host (its join returned with media flowing), and is heard.
        assert await wait_until(lambda: wh.frames.get((ann.participant_id, "microphone"), 0) >= 10, 20)
        remote = next(r for r in ann.remote_tracks.values() if r.info.participant_id == host.participant_id)
        heard = ann.media(remote)
        for _ in range(10):
            await asyncio.wait_for(heard.recv(), 5)
        with pytest.raises(WaitingForHost):  # Bob asks anew: he waits again, nobody admits him
            await bob_api.join_meeting(mid, created.passcode, wait_s=1)
    finally:
        wh.stop()
        for task in (joining, denied):
            task.cancel()
        for m in (host, ann):
            if m is not None:
                await m.leave()
        for c in (host_api, ann_api, bob_api):
            await c.aclose()
