"""Chromium publishing H.264 next to Firefox and an SDK participant, in network namespaces: the world and
its sites are test_browsers.py's (its module docstring says what each site lets through)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.browser.harness import video_plays
from tests.regions.test_browsers import (  # noqa: F401 (world: the fixture, one world for this module)
    OPEN,
    BrowserWorld,
    all_tracks_flow,
    enter,
    pytestmark,
    shown,
    world,
)
from tests.regions.world import decoded_from, start_agent


async def test_chromium_in_h264_with_firefox_and_the_sdk(world: BrowserWorld, tmp_path: Path) -> None:  # noqa: F811
    """Chromium publishes H.264 (constrained baseline, packetization-mode 1: what aiortc accepts). The
    relay forwards it as is (never transcodes): the SDK decodes it; Firefox decodes it where it offers
    H.264, and where it does not (here: no OpenH264) it rejects that m-line, the page says which codec it
    cannot play, and every other track still flows both ways (the relay once dropped the whole answer)."""
    host = world.api.new_user("Sdk")
    meeting = world.api.new_meeting(host)
    with ExitStack() as stack:
        sdk = start_agent(world, stack, 1, host, meeting, "sdk")
        sdk_id = sdk.wait_for(lambda s: s["participant_id"], 30)["participant_id"]
        async with world.browsers(tmp_path) as browsers:
            chrome = await browsers.open("chromium", OPEN, "Chrome")
            if not await chrome.offers_h264():
                pytest.skip("this Chromium sends no H.264 that aiortc accepts (42e01f, packetization-mode 1)")
            await chrome.register(browsers.web_url)
            chrome_id = await chrome.join(meeting["meeting_id"], meeting["passcode"], "video/H264")
            fox, fox_id = await enter(browsers, "firefox", OPEN, meeting)
            assert (await chrome.outbound("camera"))["codec"] == "video/H264"
            sdk.wait_for(decoded_from([chrome_id, fox_id], video=20, audio=25), 30)
            played = await video_plays(chrome, fox_id, timeout_s=30)
            assert played["codec"] == "video/VP8"
            await video_plays(fox, sdk_id, timeout_s=30)
            if await fox.offers_h264():  # a Firefox with OpenH264
                assert (await video_plays(fox, chrome_id, timeout_s=30))["codec"] == "video/H264"
                await all_tracks_flow(fox, expected=4)
            else:
                notices = await fox.page.evaluate("window.meetup.meeting.notices")
                assert "Chrome's camera is sent in H264, which this browser cannot play." in notices, notices
                tile = f'figure[data-participant-id="{chrome_id}"][data-source="camera"]'
                assert (
                    await fox.page.evaluate(f"document.querySelector('{tile}').dataset.undecodable") == "H264"
                )
                # Chromium's microphone (negotiated in the same answer) and the SDK's tracks flow.
                flowing = await all_tracks_flow(fox, expected=4, skip={f"{chrome_id}/camera"})
                assert flowing[f"{chrome_id}/camera"]["packetsReceived"] == 0
            for user in (fox, chrome):
                assert await shown(user) == ["connected", "direct", "Connected"]
                assert not user.errors, user.errors
