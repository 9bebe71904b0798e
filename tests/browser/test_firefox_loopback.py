"""Firefox against the local stack on loopback, as a new user on one machine meets it: the relay offers
only 127.0.0.1 (``MEETUP_RELAY_ICE_ADDRESSES``' default there) and Firefox never pairs a loopback
candidate (no pref changes that), so no media can flow. The page must say so, with the reason, and never
"Connected"; registering, joining and chat still work. Media with Firefox is tested where it has an
address of its own: tests/regions/test_browsers.py."""

from __future__ import annotations

import time

from client_sdk.media.sources import PatternVideoTrack, ToneAudioTrack
from client_sdk.meeting import Meeting
from tests.browser.conftest import Launch
from tests.browser.harness import poll
from tests.client_sdk.test_meeting import Watcher, new_client
from tests.edge_relay.media import wait_until

#: Firefox gave up at once here (no candidate pair to check); a loaded machine gets the rest.
FAILED_BOUND_S = 30
LOOPBACK_ONLY = "Media failed: the relay offers only loopback addresses, which this browser does not use"


async def test_firefox_on_a_loopback_relay_says_media_failed_and_why(stack, launch_firefox: Launch) -> None:
    fox = await launch_firefox("Fox")
    await fox.register(stack.web_url)
    meeting_id, passcode = await fox.create_meeting("Loopback")
    await fox.page.click("#join-created")
    await fox.page.wait_for_selector("#view-meeting:not([hidden])")
    bob = await new_client(stack.api_url, "Bob")
    sdk = await Meeting.join(
        bob,
        meeting_id,
        passcode,
        publish={"camera": PatternVideoTrack(160, 120), "microphone": ToneAudioTrack()},
    )
    seen = Watcher(sdk)
    shown: set[str] = set()
    try:
        started = time.monotonic()

        async def failed() -> bool:
            state, line = await fox.page.evaluate(
                "() => [window.meetup.meeting.mediaState,"
                " document.querySelector('#meeting-status').textContent]"
            )
            shown.add(line)
            return state == "failed"

        assert await poll(failed, FAILED_BOUND_S), shown
        print(f"Firefox: media failed after {time.monotonic() - started:.1f} s; shown: {shown}")
        assert await fox.page.evaluate("window.meetup.meeting.mediaError") is not None
        assert await fox.page.text_content("#meeting-status") == LOOPBACK_ONLY
        assert not any(line.startswith("Connected") for line in shown), shown
        # Nothing decoded either way.
        assert all(c["packetsReceived"] == 0 for c in (await fox.inbound()).values())
        assert not any(frames for (pid, _), frames in seen.frames.items() if pid != sdk.participant_id)
        # The signalling path still works: chat crosses.
        await fox.page.fill("#chat-form [name=text]", "no media, still chatting")
        await fox.page.click("#chat-form [type=submit]")
        assert await wait_until(
            lambda: any(e.data.get("text") == "no media, still chatting" for e in seen.of("chat")), 10
        )
        assert all("ICE failed" in e for e in fox.errors), fox.errors  # Firefox's own console line
    finally:
        seen.stop()
        await sdk.leave()
        await bob.aclose()
