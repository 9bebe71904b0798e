"""Background blur and replace in the browser, as an SDK participant decodes them through a real relay.

Chromium's own fake camera is a moving pattern with no person in it, so the camera here is a y4m clip
(``--use-file-for-fake-video-capture``) made in the test: Grace Hopper's portrait (it ships with matplotlib,
as in tests/client_sdk/test_background.py) in front of high-contrast stripes. The regions to compare come
from the SDK's own segmenter on that scene (mediapipe in Python): "person" is well inside its mask,
"background" well outside it. What this proves: the browser's MediaPipe (wasm, served by the app) finds
the same person, the published video keeps that person as the camera gave it and changes the rest (blur
flattens the stripes; an image replaces them), and turning the effect off mid-meeting (replaceTrack)
gives the stripes back, so the difference is the effect's and not the codec's. It does not judge the
mask's edge quality.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest

from client_sdk.meeting import Meeting
from tests.browser.conftest import Launch
from tests.browser.harness import WebUser, poll
from tests.client_sdk.test_meeting import Watcher, new_client
from tests.edge_relay.media import wait_until

W, H = 640, 480
GREEN = (30, 190, 60)


def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The camera's picture (RGB) and boolean masks of where the person and the background surely are."""
    mp_bg = pytest.importorskip("client_sdk.media.background", reason="the SDK's effects extra")
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photo = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    ph = 440
    pw = round(photo.shape[1] * ph / photo.shape[0])
    photo = cv2.resize(photo, (pw, ph), interpolation=cv2.INTER_AREA)
    stripes = np.zeros((H, W, 3), np.uint8)
    for x in range(0, W, 32):
        stripes[:, x : x + 16] = (235, 235, 235)
    segmenter = mp_bg.SelfieSegmenter()
    try:
        placed = stripes.copy()
        x0 = (W - pw) // 2
        placed[H - ph :, x0 : x0 + pw] = photo
        inside = np.zeros((H, W), np.float32)
        inside[H - ph :, x0 : x0 + pw] = segmenter(np.ascontiguousarray(photo))
        rgb = np.where(inside[..., None] > 0.5, placed, stripes).astype(np.uint8)
        mask = segmenter(np.ascontiguousarray(rgb))
    finally:
        segmenter.close()
    kernel = np.ones((31, 31), np.uint8)
    person = cv2.erode((mask > 0.9).astype(np.uint8), kernel).astype(bool)
    background = cv2.erode((mask < 0.1).astype(np.uint8), cv2.dilate(kernel, kernel)).astype(bool)
    assert person.sum() > 20_000 and background.sum() > 40_000, (person.sum(), background.sum())
    return rgb, person, background


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 2) -> None:
    """A clip Chromium's fake camera loops (4:2:0, 24 fps)."""
    i420 = cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_BGR2YUV_I420).tobytes()
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F24:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + i420)


def diffs(
    watcher: Watcher, key: tuple[str, str], raw: np.ndarray, regions: tuple[np.ndarray, ...]
) -> list[float]:
    """Mean absolute difference from the raw picture in each region, of the last frame the SDK decoded."""
    frame = watcher.last[key].to_ndarray(format="rgb24")
    frame = cv2.resize(frame, (W, H), interpolation=cv2.INTER_AREA).astype(int)
    return [float(np.abs(frame - raw.astype(int))[region].mean()) for region in regions]


async def settled(watcher: Watcher, key: tuple[str, str], frames: int = 10, timeout_s: float = 90) -> None:
    """Wait for ``frames`` more decoded frames (the encoder's quality settles after a change)."""
    start = watcher.frames.get(key, 0)
    assert await wait_until(lambda: watcher.frames.get(key, 0) >= start + frames, timeout_s), watcher.frames


async def choose_background(user: WebUser, mode: str) -> None:
    await user.page.select_option("#background-mode", mode)
    await poll(lambda: user.page.evaluate(f"window.meetup.meeting.effect.mode === {mode!r}"), 15)


async def test_blur_and_replace_reach_an_sdk_participant(stack, launch: Launch, tmp_path: Path) -> None:
    raw, person, background = scene()
    clip = tmp_path / "person.y4m"
    write_y4m(clip, raw)
    green = tmp_path / "green.png"
    cv2.imwrite(str(green), np.full((120, 160, 3), GREEN[::-1], np.uint8))
    not_an_image = tmp_path / "holiday.png"
    not_an_image.write_text("this is not a picture")

    ann = await launch("Ann", [f"--use-file-for-fake-video-capture={clip}"])
    await ann.register(stack.web_url)
    # The stored setting (home page), applied when joining.
    await ann.page.check("#settings-form [name=background][value=blur]")
    await ann.page.click("#settings-form [type=submit]")
    await ann.page.wait_for_selector(".toast:text('Settings saved')")
    meeting_id, passcode = await ann.create_meeting("Backgrounds")
    await ann.page.click("#join-created")
    await ann.page.wait_for_selector("#view-meeting:not([hidden])", timeout=60_000)
    ann_id = await ann.page.evaluate("window.meetup.meeting.participantId")
    assert await ann.page.evaluate("window.meetup.meeting.effect.mode") == "blur"
    assert await ann.page.input_value("#background-mode") == "blur"

    bob = await new_client(stack.api_url, "Bob")
    sdk = await Meeting.join(bob, meeting_id, passcode, publish={})
    seen = Watcher(sdk)
    key = (ann_id, "camera")
    try:
        await settled(seen, key, frames=20, timeout_s=60)
        blur_person, blur_background = diffs(seen, key, raw, (person, background))

        # Off mid-meeting: the raw camera replaces the processed track (no renegotiation).
        await choose_background(ann, "none")
        await asyncio.sleep(1.0)
        await settled(seen, key)
        none_person, none_background = diffs(seen, key, raw, (person, background))

        # Replaced by an image chosen in the meeting page.
        await ann.page.set_input_files("#background-file", str(green))
        await poll(lambda: ann.page.evaluate("window.meetup.meeting.effect.mode === 'image'"), 15)
        await asyncio.sleep(1.0)
        await settled(seen, key)
        frame = cv2.resize(seen.last[key].to_ndarray(format="rgb24"), (W, H)).astype(int)
        image_background = float(np.abs(frame - np.array(GREEN))[background].mean())
        (image_person,) = diffs(seen, key, raw, (person,))

        # A file that is not an image: a clear message, and the green background stays.
        await ann.page.set_input_files("#background-file", str(not_an_image))
        await ann.page.wait_for_selector(".toast:has-text('not an image')", timeout=10_000)
        assert await ann.page.evaluate("window.meetup.meeting.effect.mode") == "image"
        print(
            f"mean |decoded - camera|: blur: person {blur_person:.1f} background {blur_background:.1f}; "
            f"off: person {none_person:.1f} background {none_background:.1f}; "
            f"image: person {image_person:.1f}, background vs the image {image_background:.1f}"
        )
        # Blur: the person as the camera gave it, the stripes flattened (white/black stripes: ~117 apart
        # from their mean); off: the stripes back.
        assert blur_person < 20 and none_person < 20 and image_person < 20
        assert blur_background > 60 and blur_background > 3 * none_background
        assert none_background < 30
        assert image_background < 25
        await ann.screenshot("background-image")
    finally:
        seen.stop()
        await sdk.leave()
        await bob.aclose()


async def test_segmentation_that_cannot_load_leaves_the_raw_camera(stack, launch: Launch) -> None:
    """No wasm (the model's WebAssembly refused by the network): blur says why and the raw camera is sent,
    never a black or frozen video."""
    ann = await launch("Ann")
    await ann.page.route("**/vendor/selfie_segmentation/*.wasm", lambda route: route.abort())
    await ann.register(stack.web_url)
    await ann.create_meeting("No wasm")
    await ann.page.click("#join-created")
    await ann.page.wait_for_selector("#view-meeting:not([hidden])", timeout=30_000)
    await ann.page.select_option("#background-mode", "blur")
    await ann.page.wait_for_selector(".toast:has-text('Background effect unavailable')", timeout=40_000)
    assert await ann.page.input_value("#background-mode") == "none"
    sent_raw = await ann.page.evaluate(
        "() => { const m = window.meetup.meeting; const raw = m.effect.raw;"
        " return raw !== null && raw.readyState === 'live' && m.localTracks.get('camera') === raw"
        " && m.connection.publishing.get('camera').sender.track === raw; }"
    )
    assert sent_raw
    before = (await ann.outbound("camera") or {}).get("framesEncoded", 0)
    assert await poll(lambda: _encoded_more(ann, before + 10), 15), "the raw camera keeps being sent"


async def _encoded_more(user: WebUser, frames: int) -> bool:
    return ((await user.outbound("camera")) or {}).get("framesEncoded", 0) >= frames
