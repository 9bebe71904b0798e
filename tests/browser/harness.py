"""Drive the web client (web/) in Debian's Chromium with Playwright, next to SDK participants.

Chromium runs headless with fake media devices: ``--use-fake-device-for-media-stream`` gives a moving
test pattern and a beep, ``--use-fake-ui-for-media-stream`` grants camera, microphone and screen capture
(getDisplayMedia returns a synthetic screen) without a prompt. Found on this machine (Chromium 156):

* ``--allow-loopback-in-peer-connection``: Chromium leaves loopback interfaces out of ICE gathering by
  default; with it, it offers 127.0.0.1 too and the media path is loopback to loopback, like the relay's
  own candidates (``MEETUP_RELAY_ICE_ADDRESSES=127.0.0.1``). Without it, ICE still succeeded through the
  machine's own non-loopback address (the relay learns it as a peer-reflexive candidate), which is not
  where test traffic belongs.
* ``--disable-features=WebRtcHideLocalIpsWithMdns``: Chromium hides host addresses behind ``.local``
  mDNS names unless the page holds a media permission. With the fake UI the permission is granted and
  no mDNS names were seen either way; the flag keeps it so for a page that opens no device.

Never ``playwright install``: it downloads a browser. Chromium comes from Debian (``apt-get install -y
chromium``) and Playwright from PyPI (``pip install playwright``), whose bundled driver runs it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("MEETUP_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
FLAGS = [
    # MACHINE.md: Debian's Chromium under Playwright, quiet and offline
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # fake camera, microphone and screen, granted without a prompt
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # WebRTC on loopback (see the module docstring)
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    # media elements play without a click (each <video>/<audio> of the grid)
    "--autoplay-policy=no-user-gesture-required",
]


def require_chromium() -> None:
    """Skip the calling test, with the fix, when Chromium or Playwright is missing."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install -y chromium)")
    pytest.importorskip("playwright.async_api", reason="Playwright is not installed: pip install playwright")


# In the page: what a remote track looks like on screen and in WebRTC's statistics.
_REMOTE_VIDEO_JS = """async ([participantId, source]) => {
  const meeting = window.meetup.meeting;
  const selector = `video[data-participant-id="${participantId}"][data-source="${source}"]`;
  const video = document.querySelector(selector);
  const remote = meeting && [...meeting.remoteTracks.values()].find(
    (r) => r.info.participant_id === participantId && r.info.source === source);
  if (!video || !remote) return null;
  const stats = await meeting.connection.pc.getStats(remote.track);
  let inbound = null;
  stats.forEach((r) => { if (r.type === "inbound-rtp") inbound = r; });
  return {
    width: video.videoWidth, height: video.videoHeight, time: video.currentTime, paused: video.paused,
    hidden: video.hidden, framesDecoded: inbound?.framesDecoded ?? 0,
    codec: inbound?.codecId ? stats.get(inbound.codecId)?.mimeType : null,
  };
}"""

_OUTBOUND_JS = """async (source) => {
  const transceiver = window.meetup.meeting?.connection?.publishing.get(source);
  if (!transceiver) return null;
  const stats = await transceiver.sender.getStats();
  // one outbound-rtp per encoding: several when the camera is sent as simulcast layers
  const sent = { packetsSent: 0, framesEncoded: 0, codec: null };
  stats.forEach((r) => {
    if (r.type !== "outbound-rtp") return;
    sent.packetsSent += r.packetsSent ?? 0;
    sent.framesEncoded += r.framesEncoded ?? 0;
    if (r.codecId) sent.codec = stats.get(r.codecId)?.mimeType ?? sent.codec;
  });
  return sent;
}"""

_SELECTED_PAIR_JS = """async () => {
  const stats = await window.meetup.meeting.connection.pc.getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
  });
  if (!pair) return null;
  return {local: stats.get(pair.localCandidateId).address, remote: stats.get(pair.remoteCandidateId).address};
}"""

#: H.264 the relay (aiortc) accepts: constrained baseline or baseline, packetization-mode 1.
_H264_JS = """() => RTCRtpSender.getCapabilities("video").codecs.some((c) =>
  c.mimeType === "video/H264" && /packetization-mode=1/.test(c.sdpFmtpLine ?? "")
  && /profile-level-id=42(e0|00)1f/.test(c.sdpFmtpLine ?? ""))"""


@dataclass
class WebUser:
    """One person using the web client in their own Chromium profile."""

    page: Any  # playwright.async_api.Page
    name: str
    email: str = field(default_factory=lambda: f"web-{secrets.token_hex(4)}@example.com")
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on(
            "console",
            lambda msg: self.errors.append(f"console.error: {msg.text}") if msg.type == "error" else None,
        )

    # --- account and home page ---------------------------------------------------------------------

    async def register(self, web_url: str) -> None:
        page = self.page
        await page.goto(web_url)
        await page.click("#tab-register")
        form = page.locator("#register-form")
        await form.locator("[name=display_name]").fill(self.name)
        await form.locator("[name=email]").fill(self.email)
        await form.locator("[name=password]").fill(self.password)
        await form.locator("[type=submit]").click()
        await page.wait_for_selector("#view-home:not([hidden])")
        await page.wait_for_function(
            "name => document.querySelector('#account-name').textContent === name", arg=self.name
        )

    async def create_meeting(self, title: str) -> tuple[str, str]:
        page = self.page
        await page.fill("#create-form [name=title]", title)
        await page.click("#create-form [type=submit]")
        await page.wait_for_selector("#created:not([hidden])")
        meeting_id = (await page.text_content("#created-id") or "").replace(" ", "")
        return meeting_id, (await page.text_content("#created-passcode") or "")

    async def join(self, meeting_id: str, passcode: str = "", video_codec: str = "video/VP8") -> str:
        """Join through the form; returns this browser's participant id."""
        page = self.page
        form = page.locator("#join-form")
        await form.locator("[name=meeting_id]").fill(meeting_id)
        await form.locator("[name=passcode]").fill(passcode)
        await form.locator("summary").click()
        await form.locator("[name=video_codec]").select_option(video_codec)
        await form.locator("[type=submit]").click()
        await page.wait_for_selector("#view-meeting:not([hidden])", timeout=20_000)
        assert not self.errors, self.errors
        return await page.evaluate("window.meetup.meeting.participantId")

    # --- what the page shows and its WebRTC statistics ---------------------------------------------

    async def remote_video(self, participant_id: str, source: str = "camera") -> dict[str, Any] | None:
        return await self.page.evaluate(_REMOTE_VIDEO_JS, [participant_id, source])

    async def outbound(self, source: str) -> dict[str, Any] | None:
        return await self.page.evaluate(_OUTBOUND_JS, source)

    async def selected_pair(self) -> dict[str, str] | None:
        return await self.page.evaluate(_SELECTED_PAIR_JS)

    async def offers_h264(self) -> bool:
        return bool(await self.page.evaluate(_H264_JS))

    async def relay_url(self) -> str:
        return await self.page.evaluate("window.meetup.meeting.relayUrl")

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path))
        print(f"screenshot: {path}")
        return path


async def poll(condition: Callable[[], Awaitable[Any]], timeout_s: float = 10.0) -> bool:
    """``tests.edge_relay.media.wait_until`` for a condition that must be awaited (one that asks the page)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await condition():
            return True
        await asyncio.sleep(0.2)
    return bool(await condition())


async def video_plays(
    user: WebUser, participant_id: str, source: str = "camera", timeout_s: float = 15
) -> dict[str, Any]:
    """Wait until the <video> of that track has a size, its time advances and frames keep being decoded;
    returns the last statistics (with ``codec``). Fails with what was seen."""
    deadline = time.monotonic() + timeout_s
    first: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        last = await user.remote_video(participant_id, source)
        if last and last["width"] > 0 and last["framesDecoded"] > 0:
            if first is None:
                first = last
            elif last["time"] > first["time"] + 0.3 and last["framesDecoded"] >= first["framesDecoded"] + 5:
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(
        f"{user.name}: {source} of {participant_id} does not play: first {first}, last {last}"
    )
