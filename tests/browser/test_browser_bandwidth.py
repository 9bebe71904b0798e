"""The relay's bandwidth estimate for a real browser behind a real rate limit.

Sites of the WAN router (tests/regions/netns.py, 10 ms one way): 0 the control plane (API, web client),
1 the relay, 2 an SDK participant publishing 640x480 video, 3 Chromium (started in that namespace through
a one-line wrapper; Playwright talks to it over its pipe), which subscribes through the relay. The relay
offers transport-cc, Chromium keeps it and sends transport feedback, and the relay's GCC estimate for
Chromium is read from /metrics (``relay_subscriber_estimate{peer=...,source="transport-cc"}``); the SDK
participant, an aiortc receiver of Chromium's camera, has its REMB as its estimate.

The limit is the kernel's: on the relay's side of the link (site 1's TUN), an htb class holding a ``tbf``
(rate limit, 200 ms queue) takes what goes to Chromium's address (u32 filter); everything else leaves
unshaped. First without a limit (the tbf at 100 Mbit/s), then at :data:`LIMIT_KBIT`, then lifted again.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from local_stack.stack import WEB_PATH
from meetup_protocol.metrics import parse as parse_metrics
from tests.browser.conftest import Launch
from tests.browser.harness import CHROMIUM, video_plays
from tests.regions.control import ControlPlane
from tests.regions.netns import IP, Wan
from tests.regions.world import needs_namespaces, start_agent

pytestmark = [
    needs_namespaces,
    pytest.mark.skipif(shutil.which("tc") is None, reason="no tc (Debian: apt-get install iproute2)"),
]

RELAY, PUBLISHER, BROWSER = 1, 2, 3
LIMIT_KBIT = 200
VIDEO = ("--width", "640", "--height", "480", "--fps", "30")


class Shaper:
    """On each of ``sites``' TUNs, an htb whose class for traffic to ``dst`` (u32 filter) holds a tbf that
    :meth:`limit` sets; the rest leaves unshaped. The relay's media reaches the browser from site 1 when
    they pair directly, or from site 0 when the browser's candidate is on the control plane's coturn (the
    web client gets TURN servers, and Chromium chose them here): both links are shaped alike."""

    def __init__(self, wan: Wan, sites: tuple[int, ...], dst: str) -> None:
        self.wan, self.sites = wan, sites
        self.devs = {
            site: f"{wan.name.replace('-', '')[-10:]}t{site}" for site in sites
        }  # tests/regions/wan.py
        for site, dev in self.devs.items():
            self._tc(site, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10")
            for cls in ("1:10", "1:20"):
                self._tc(
                    site, "class", "add", "dev", dev, "parent", "1:", "classid", cls, "htb", "rate", "1gbit"
                )
            self._tc(site, "qdisc", "add", "dev", dev, "parent", "1:20", "handle", "20:", *self._tbf(100_000))
            match = ("u32", "match", "ip", "dst", f"{dst}/32", "flowid", "1:20")
            self._tc(site, "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", *match)

    def limit(self, kbit: int) -> None:
        for site, dev in self.devs.items():
            self._tc(site, "qdisc", "change", "dev", dev, "parent", "1:20", "handle", "20:", *self._tbf(kbit))

    def sent_bytes(self) -> int:
        """Bytes the tbfs let through so far (what went down the links towards ``dst``)."""
        total = 0
        for site, dev in self.devs.items():
            block = self._tc(site, "-s", "qdisc", "show", "dev", dev).split("qdisc tbf 20:")[1]
            total += int(block.split("Sent ")[1].split()[0])
        return total

    @staticmethod
    def _tbf(kbit: int) -> tuple[str, ...]:
        return ("tbf", "rate", f"{kbit}kbit", "burst", "6kb", "latency", "200ms")

    def _tc(self, site: int, *argv: str) -> str:
        """Run tc in ``site``; skips the test where this kernel lacks htb, tbf or the u32 classifier."""
        done = subprocess.run(
            self.wan.command_in(site, ["tc", *argv]), capture_output=True, text=True, timeout=10
        )
        if "kind is unknown" in done.stderr or "classifier not found" in done.stderr:
            pytest.skip(
                f"this kernel lacks a tc part the shaper needs (htb, tbf, u32): {done.stderr.strip()}"
            )
        assert done.returncode == 0, (argv, done.stderr)
        return done.stdout


def estimate(relay: object, peer: str) -> float | None:
    metrics = parse_metrics(httpx.get(f"{relay.http_url}/metrics", timeout=5).text)  # type: ignore[attr-defined]
    return metrics.get(f'relay_subscriber_estimate{{peer="{peer}",source="transport-cc"}}')


async def sample(relay: object, peer: str, shaper: Shaper, seconds: float) -> tuple[list[float], float]:
    """Estimates every 0.5 s for ``seconds``, and the rate (bit/s) that went to the browser meanwhile."""
    values: list[float] = []
    start_bytes, start = shaper.sent_bytes(), time.monotonic()
    while time.monotonic() - start < seconds:
        await asyncio.sleep(0.5)
        value = await asyncio.to_thread(estimate, relay, peer)
        if value is not None:
            values.append(value)
    return values, (shaper.sent_bytes() - start_bytes) * 8 / (time.monotonic() - start)


async def test_estimate_follows_a_real_rate_limit(launch: Launch, tmp_path: Path) -> None:
    with ExitStack() as stack:
        wan = stack.enter_context(Wan(sites=3, delay_ms=10))
        control = stack.enter_context(ControlPlane(wan))
        relay = control.add_relay(RELAY, "r1")
        api = control.api()
        stack.callback(api.close)
        shaper = Shaper(wan, (0, RELAY), wan.site_ip(BROWSER))
        host = api.new_user("Publisher")
        meeting = api.new_meeting(host)
        world = SimpleNamespace(api=api, wan=wan, control=control)
        publisher = start_agent(world, stack, PUBLISHER, host, meeting, "publisher", args=VIDEO)
        publisher_id = publisher.wait_for(lambda s: s.get("participant_id"), 30)["participant_id"]

        wrapper = tmp_path / "chromium-in-namespace"
        wrapper.write_text(f'#!/bin/sh\nexec {IP} netns exec {wan.netns(BROWSER)} {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        origin = control.api_url.rstrip("/")
        ann = await launch(
            "Ann", (f"--unsafely-treat-insecure-origin-as-secure={origin}",), executable=str(wrapper)
        )
        try:
            await ann.register(f"{origin}{WEB_PATH}/")
            ann_id = await ann.join(meeting["meeting_id"], meeting["passcode"])
            await video_plays(ann, publisher_id, timeout_s=30)
            deadline = time.monotonic() + 30
            while await asyncio.to_thread(estimate, relay, ann_id) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            assert await asyncio.to_thread(estimate, relay, ann_id) is not None, "no transport-cc estimate"

            free, free_rate = await sample(relay, ann_id, shaper, 12)
            shaper.limit(LIMIT_KBIT)
            limited, limited_rate = await sample(relay, ann_id, shaper, 20)
            shaper.limit(100_000)
            lifted, lifted_rate = await sample(relay, ann_id, shaper, 8)
            limit = LIMIT_KBIT * 1000
            free_est, limited_est = statistics.median(free[-6:]), statistics.median(limited[-10:])
            print(
                f"\nunlimited: estimate {free_est / 1e3:.0f} kbit/s, sent {free_rate / 1e3:.0f} kbit/s"
                f"\nlimited to {LIMIT_KBIT} kbit/s: estimate {limited_est / 1e3:.0f} kbit/s "
                f"({limited_est / limit:.2f} x the limit), sent {limited_rate / 1e3:.0f} kbit/s"
                f"\nestimates while limited: {[round(v / 1e3) for v in limited]}"
                f"\nlifted: sent {lifted_rate / 1e3:.0f} kbit/s, estimates {[round(v / 1e3) for v in lifted]}"
            )
            metrics = parse_metrics(httpx.get(f"{relay.http_url}/metrics", timeout=5).text)
            assert metrics["relay_transport_feedback_total"] > 0
            assert metrics["relay_transport_feedback_malformed_total"] == 0
            # The SDK participant receives Ann's camera too: aiortc sends REMB, which is its estimate.
            assert metrics.get(f'relay_subscriber_estimate{{peer="{publisher_id}",source="remb"}}', 0) > 0
            # Both report RTT in their receiver reports (10 ms one way on each WAN hop).
            rtts = metrics["relay_subscriber_rtt_ms_count"]
            assert rtts == 2 and 15 <= metrics["relay_subscriber_rtt_ms_sum"] / rtts <= 300, metrics
            assert free_est >= 2 * limit, (free_est, free_rate)
            assert 0.5 * limit <= limited_est <= 1.3 * limit, limited
            assert any(v <= 1.3 * limit for v in limited[:6]), limited  # down within ~3 s of the cap
            assert any(v >= 2 * limit for v in lifted[:10]), lifted  # and back up within ~5 s of lifting it
        finally:
            await ann.page.context.close()  # before its namespace goes (which ends Chromium)
