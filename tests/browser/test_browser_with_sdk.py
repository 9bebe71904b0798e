"""A browser and a Python SDK participant in one meeting, through a real relay: each decodes the other's
video, chat and reactions cross both ways, mute / camera / screen share reach the SDK, the host ends the
meeting from the browser. A screenshot of the meeting page is saved under artifacts/browser/. When the
relay dies, the page moves to another one by itself."""

from __future__ import annotations

import asyncio

from client_sdk.media.sources import PatternVideoTrack, ToneAudioTrack
from client_sdk.meeting import Meeting
from functions.services.relays import CACHE_S
from tests.browser.conftest import Launch
from tests.browser.harness import video_plays
from tests.client_sdk.test_meeting import Watcher, new_client
from tests.edge_relay.media import wait_until


def _muted(watcher: Watcher, track_id: str) -> bool | None:
    """The last mute state the SDK was told for ``track_id``."""
    states = [e.data["muted"] for e in watcher.of("track_muted") if e.data["track_id"] == track_id]
    return states[-1] if states else None


async def test_a_browser_and_an_sdk_participant_meet(stack, launch: Launch) -> None:
    ann = await launch("Ann")
    await ann.register(stack.web_url)
    meeting_id, passcode = await ann.create_meeting("Browser and SDK")
    await ann.page.click("#join-created")  # the host joins without the passcode
    await ann.page.wait_for_selector("#view-meeting:not([hidden])")
    assert not ann.errors, ann.errors
    ann_id = await ann.page.evaluate("window.meetup.meeting.participantId")

    bob = await new_client(stack.api_url, "Bob")
    sdk = await Meeting.join(
        bob,
        meeting_id,
        passcode,
        publish={"camera": PatternVideoTrack(320, 240), "microphone": ToneAudioTrack()},
    )
    seen = Watcher(sdk)
    try:
        # Both picked the nearest relay by measured RTT (there are two). Media goes to the relay's loopback
        # address; Chromium may pair it with its own loopback or with this host's other address (the relay
        # learns that one as peer-reflexive): either way no packet leaves the machine.
        assert await ann.relay_url() == sdk.relay_url
        pair = await ann.selected_pair()
        assert pair is not None and pair["remote"] == "127.0.0.1", pair

        # The SDK decodes the browser's camera and microphone.
        assert await wait_until(
            lambda: (
                seen.frames.get((ann_id, "camera"), 0) >= 20
                and seen.frames.get((ann_id, "microphone"), 0) >= 25
            ),
            20,
        ), seen.frames
        width, height = seen.sizes[(ann_id, "camera")]
        assert width > 0 and height > 0

        # The browser plays the SDK's camera: a size, advancing time, frames decoded rising in getStats.
        played = await video_plays(ann, sdk.participant_id)
        assert (played["width"], played["height"]) == (320, 240) and played["codec"] == "video/VP8"
        name = ann.page.locator(
            f'figure[data-participant-id="{sdk.participant_id}"][data-source="camera"] .name'
        )
        assert await name.text_content() == "Bob"
        # The page says "Connected" only with media up, and which path it takes (host candidates here).
        shown = await ann.page.evaluate(
            "() => [window.meetup.meeting.mediaState, window.meetup.meeting.mediaPath,"
            " document.querySelector('#meeting-status').textContent,"
            " document.querySelector('#meeting-status').title]"
        )
        assert shown == ["connected", "direct", "Connected", "media path: direct"]

        # Who speaks, from the relay: Bob's steady tone holds the stage; the page rings his tile.
        await ann.page.wait_for_selector(
            f'figure.dominant[data-participant-id="{sdk.participant_id}"][data-source="camera"]',
            timeout=10_000,
        )
        assert await wait_until(lambda: sdk.dominant_speaker == sdk.participant_id, 5)

        # Chat both ways: stored by the API, then live through the relay.
        await ann.page.fill("#chat-form [name=text]", "Hello from the browser")
        await ann.page.click("#chat-form [type=submit]")
        assert await wait_until(
            lambda: any(e.data.get("text") == "Hello from the browser" for e in seen.of("chat")), 10
        )
        await sdk.send_chat("Hello from Python").done
        await ann.page.wait_for_selector('#chat-messages li:has-text("Hello from Python")', timeout=10_000)
        history = [m.text async for m in bob.chat_history(meeting_id)]
        assert history == ["Hello from the browser", "Hello from Python"]
        assert await ann.page.locator("#chat-messages li").count() == 2  # each once (history + live)

        # Reactions both ways.
        await ann.page.click('#reactions [data-emoji="🎉"]')
        assert await wait_until(
            lambda: any(e.data.get("emoji") == "🎉" and e.data["name"] == "Ann" for e in seen.of("reaction")),
            10,
        )
        await sdk.react("👍").done
        await ann.page.wait_for_selector(
            f'.reaction[data-emoji="👍"][data-participant-id="{sdk.participant_id}"]', timeout=10_000
        )

        # Mute, camera off and on again: the SDK is told, and the camera's frames resume.
        await ann.page.click("#toggle-mic")
        assert await wait_until(lambda: _muted(seen, f"{ann_id}/microphone") is True, 10)
        await ann.page.click("#toggle-camera")
        assert await wait_until(lambda: _muted(seen, f"{ann_id}/camera") is True, 10)
        await ann.page.click("#toggle-camera")
        assert await wait_until(lambda: _muted(seen, f"{ann_id}/camera") is False, 10)
        before = seen.frames[(ann_id, "camera")]
        assert await wait_until(lambda: seen.frames[(ann_id, "camera")] >= before + 10, 10)

        # Screen share (getDisplayMedia): the SDK gets a screen track and decodes it.
        await ann.page.click("#toggle-screen")
        assert await wait_until(lambda: seen.frames.get((ann_id, "screen"), 0) >= 3, 15), seen.frames
        await ann.screenshot("meeting-browser-and-sdk")
        await ann.page.click("#toggle-screen")
        assert await wait_until(
            lambda: any(e.data.get("track_id") == f"{ann_id}/screen" for e in seen.of("track_removed")), 10
        )

        # The host ends the meeting for everyone from the browser.
        ann.page.once("dialog", lambda dialog: dialog.accept())
        await ann.page.click("#end")
        assert await wait_until(lambda: sdk.ended.is_set(), 10)
        assert sdk.end_reason == "host_ended"
        await ann.page.wait_for_selector("#view-home:not([hidden])")
        assert not ann.errors, ann.errors
    finally:
        seen.stop()
        if not sdk.ended.is_set():
            await sdk.leave()
        await bob.aclose()


async def test_the_browser_moves_to_another_relay_when_its_relay_dies(stack, launch: Launch) -> None:
    doomed = stack.add_relay("doomed")  # no emulated distance: the nearest of all, so both pick it
    await asyncio.sleep(CACHE_S + 0.1)  # the API re-reads the registry at most once a second
    ann = await launch("Ann")
    await ann.register(stack.web_url)
    meeting_id, passcode = await ann.create_meeting("Relay failover")
    ann_id = await ann.join(meeting_id)
    bob = await new_client(stack.api_url, "Bob")
    sdk = await Meeting.join(bob, meeting_id, passcode, publish={"camera": PatternVideoTrack(320, 240)})
    seen = Watcher(sdk)
    try:
        assert await ann.relay_url() == sdk.relay_url == doomed.url
        await video_plays(ann, sdk.participant_id)
        doomed.kill()

        # The page says so, joins again elsewhere and publishes again; both ends see media resume.
        await ann.page.wait_for_function(
            "url => window.meetup.meeting.relayUrl !== url"
            " && document.querySelector('#meeting-status').textContent === 'Connected'",
            arg=doomed.url,
            timeout=20_000,
        )
        assert await wait_until(lambda: sdk.relay_url != doomed.url, 15)
        assert await ann.relay_url() == sdk.relay_url
        await video_plays(ann, sdk.participant_id)
        frames = seen.frames.get((ann_id, "camera"), 0)
        assert await wait_until(lambda: seen.frames.get((ann_id, "camera"), 0) >= frames + 10, 15)
        # Only the RTT probe of the dead relay failed (the page leaves unreachable relays out).
        assert set(ann.errors) <= {"console.error: Failed to load resource: net::ERR_CONNECTION_REFUSED"}
    finally:
        seen.stop()
        await sdk.leave()
        await bob.aclose()
        doomed.kill()  # (already dead unless an assertion failed before)
        stack.relays.remove(doomed)
