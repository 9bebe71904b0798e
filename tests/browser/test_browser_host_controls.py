"""The browser as a guest under host controls (an SDK host acting through the API): a host's mute stops
the page's microphone and says so, hands keep raise order on the page, a removal ends the page's meeting
with the reason shown and the relay stops its media."""

from __future__ import annotations

from client_sdk.media.sources import ToneAudioTrack
from client_sdk.meeting import Meeting
from tests.browser.conftest import Launch
from tests.browser.harness import poll
from tests.client_sdk.test_meeting import Watcher, new_client
from tests.edge_relay.media import wait_until


async def test_a_browser_guest_is_muted_sees_hands_and_is_removed(stack, launch: Launch) -> None:
    host_api = await new_client(stack.api_url, "Hostess")
    created = await host_api.create_meeting("Browser under host controls")
    host = await Meeting.join(host_api, created.meeting_id, publish={"microphone": ToneAudioTrack()})
    seen = Watcher(host)
    ann = await launch("Ann")
    try:
        await ann.register(stack.web_url)
        ann_id = await ann.join(created.meeting_id, created.passcode)
        page = ann.page
        assert await wait_until(lambda: seen.frames.get((ann_id, "microphone"), 0) >= 25, 20), seen.frames

        await host.host_controls.mute(ann_id)
        assert await poll(lambda: page.evaluate("window.meetup.meeting.muted.has('microphone')"), 5)
        notices = await page.evaluate("window.meetup.meeting.notices")
        assert any("A host muted your microphone" in n for n in notices), notices

        await host.raise_hand()
        assert await poll(
            lambda: page.evaluate(
                f"JSON.stringify(window.meetup.meeting.raisedHands()) === '[\"{host.participant_id}\"]'"
            ),
            5,
        )
        await page.evaluate("window.meetup.meeting.setHand(true)")
        order = [host.participant_id, ann_id]
        assert await wait_until(lambda: host.hands == order, 5), host.hands
        assert await page.evaluate("window.meetup.meeting.raisedHands()") == order

        await page.evaluate("window.removedMeeting = window.meetup.meeting")  # the page drops it once over
        await host.host_controls.remove(ann_id)
        assert await poll(lambda: page.evaluate("window.removedMeeting.endReason === 'removed_by_host'"), 5)
        await page.wait_for_selector("#toasts :text('A host removed you from the meeting')", timeout=5000)
        assert await wait_until(
            lambda: any(e.data.get("reason") == "removed_by_host" for e in seen.of("participant_left")), 5
        )
        assert not ann.errors, ann.errors
    finally:
        seen.stop()
        await host.leave()
        await host_api.aclose()
