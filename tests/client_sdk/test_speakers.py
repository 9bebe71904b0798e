"""Active speakers end to end: real audio levels from aiortc senders, ranked by the relays, told to the
SDK, also across a cascade (the listener is pinned to the other region's relay)."""

from __future__ import annotations

from client_sdk.meeting import Meeting
from tests.client_sdk.fake_tracks import ConstAudioTrack
from tests.client_sdk.test_meeting import new_client
from tests.edge_relay.media import wait_until

LOUD, SILENT = 3000, 0  # constant s16 samples: about -21 dBov, and digital silence


async def test_the_dominant_speaker_follows_who_talks_across_relays(stack) -> None:
    alice, bob, carol = [await new_client(stack.api_url, name) for name in ("Alice", "Bob", "Carol")]
    created = await alice.create_meeting("speakers")
    voice_a, voice_b = ConstAudioTrack(LOUD), ConstAudioTrack(SILENT)
    a = await Meeting.join(alice, created.meeting_id, publish={"microphone": voice_a}, region="local")
    b = await Meeting.join(
        bob, created.meeting_id, created.passcode, publish={"microphone": voice_b}, region="local"
    )
    c = await Meeting.join(carol, created.meeting_id, created.passcode, region="eu-west-1", pin_region=True)
    seen: list[str | None] = []
    c.on("speakers_changed", lambda event: seen.append(event.data.get("dominant")))
    try:
        assert c.relay_url != a.relay_url  # Carol hears them through the cascade
        assert await wait_until(lambda: c.dominant_speaker == a.participant_id, timeout_s=15)
        assert set(c.speakers) == {a.participant_id}
        assert 0 < c.speakers[a.participant_id] <= 1
        assert await wait_until(lambda: b.dominant_speaker == a.participant_id, timeout_s=5)

        voice_a.value = SILENT  # Alice pauses: nobody speaks, she keeps the stage
        assert await wait_until(lambda: not c.speakers, timeout_s=5)
        assert c.dominant_speaker == a.participant_id

        voice_b.value = LOUD  # Bob talks: he takes the stage after the hold
        assert await wait_until(lambda: c.dominant_speaker == b.participant_id, timeout_s=10)
        assert await wait_until(lambda: a.dominant_speaker == b.participant_id, timeout_s=5)
        assert seen[0] == a.participant_id and seen[-1] == b.participant_id
    finally:
        for meeting in (c, b, a):
            await meeting.leave()


async def test_a_late_joiner_learns_who_holds_the_stage(stack) -> None:
    alice, dave = await new_client(stack.api_url, "Alice"), await new_client(stack.api_url, "Dave")
    created = await alice.create_meeting("late joiner")
    voice = ConstAudioTrack(LOUD)
    a = await Meeting.join(alice, created.meeting_id, publish={"microphone": voice}, region="local")
    try:
        assert await wait_until(
            lambda: a.dominant_speaker == a.participant_id, timeout_s=15
        )  # one's own voice too
        voice.value = SILENT
        assert await wait_until(lambda: not a.speakers, timeout_s=5)
        d = await Meeting.join(dave, created.meeting_id, created.passcode, region="local")
        try:
            assert await wait_until(lambda: d.dominant_speaker == a.participant_id, timeout_s=5)
        finally:
            await d.leave()
    finally:
        await a.leave()
