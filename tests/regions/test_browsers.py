"""Firefox ESR and Chromium in one meeting with an SDK participant, for real: each browser in a network
namespace with an address of its own (Firefox never pairs with 127.0.0.1), the relay in another, coturn
from the local stack on the control site. Each of the three decodes the two others (framesDecoded rising
in each browser's getStats for every remote track; frames counted by the SDK), directly, through TURN
over TCP from a site that drops all outbound UDP (and TLS to coturn), and through TURN over TLS from a
site that drops UDP and TCP to the TURN port; from a site where TURN is blocked entirely, ICE fails and
the page says "Media failed", never "Connected". Chromium publishing H.264 next to Firefox is in
test_browsers_h264.py, in a world of its own (here, after the others, Firefox's first page load in it
timed out, every time, yet it passes after any two of them: a fresh world keeps it independent).

Sites (2 ms one way between any two): 0 the control plane (API serving web/, moto, coturn), 1 the relay
and the SDK participant (tests/regions/agent.py), 2 browsers on an open network, 3 browsers whose outbound
UDP and TLS to coturn are dropped (iptables: only TURN/TCP left), 4 browsers whose UDP and TCP to coturn
are dropped (only the web page and the relay's signalling get through), 5 browsers with only TURN/TLS left.

TURN over TLS needs two things of the deployment that Firefox insists on: a ``turns:`` URL with a DNS
name (nricectx.cpp refuses TLS to an address: "Refuse to try TLS without an FQDN"), here
``turn.meetup.test`` resolved through /etc/netns/NS/hosts; and a server certificate that is not itself a
CA (mozilla::pkix), here issued by the stack's throwaway CA, which both browsers trust (certutil).

Firefox sends and decodes VP8 only here: H.264 in Firefox is Cisco's OpenH264 plugin, which Firefox
downloads at run time (offline here, and not in Debian), so ``RTCRtpSender.getCapabilities("video")``
lists VP8, VP9 and AV1 and no H.264.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from meetup_protocol.metrics import parse as parse_metrics
from tests.browser.harness import WebUser, poll, video_plays
from tests.conftest import Api
from tests.regions.browsers import Browsers
from tests.regions.control import ControlPlane
from tests.regions.netns import Wan
from tests.regions.world import decoded_from, needs_namespaces, start_agent

pytestmark = [
    needs_namespaces,
    pytest.mark.skipif(
        shutil.which("iptables") is None, reason="no iptables (Debian: apt-get install iptables)"
    ),
    pytest.mark.skipif(
        shutil.which("turnserver") is None, reason="no turnserver (Debian: apt-get install coturn)"
    ),
]

OPEN, NO_UDP, NOTHING, TLS_ONLY = 2, 3, 4, 5
#: coturn's name for TURN over TLS (Firefox refuses TLS to an address): the browsers' sites resolve it.
TURN_NAME = "turn.meetup.test"
#: From joining to both pages showing failed ICE (~12 s for both here, each browser's own ICE timers);
#: a loaded 2-core machine gets the rest.
FAILED_BOUND_S = 60


@dataclass
class BrowserWorld:
    wan: Wan
    control: ControlPlane
    api: Api
    relay: Any

    def connected(self) -> dict[str, float]:
        """The relay's count of participants whose media came up, by path ("direct", "turn")."""
        metrics = parse_metrics(httpx.get(f"{self.relay.http_url}/metrics", timeout=5).text)
        return {
            path: metrics.get(f'relay_media_connected_total{{peer="participant",path="{path}"}}', 0.0)
            for path in ("direct", "turn")
        }

    def browsers(self, tmp_path: Path) -> Browsers:
        """Browsers that trust coturn's CA and resolve its TLS name."""
        turn = self.control.turn or {}
        return Browsers(
            self.wan, self.control.web_url, tmp_path, Path(turn["ca_path"]), {TURN_NAME: self.wan.site_ip(0)}
        )


def firewall(wan: Wan, site: int, *rule: str) -> None:
    done = subprocess.run(wan.command_in(site, ["iptables", *rule]), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def world() -> Iterator[BrowserWorld]:
    with ExitStack() as stack:
        wan = stack.enter_context(Wan(sites=5, delay_ms=2))
        control = stack.enter_context(ControlPlane(wan, turn_tls_name=TURN_NAME))
        assert control.turn is not None, "the local stack started no coturn"
        relay = control.add_relay(1, "r1")
        api = control.api()
        stack.callback(api.close)
        # turn:IP:PORT?transport=udp, turn:IP:PORT?transport=tcp, turns:NAME:TLS_PORT?transport=tcp
        turn_port, tls_port = (url.split(":")[2].split("?")[0] for url in control.turn["urls"][1:])
        for site in (NO_UDP, NOTHING, TLS_ONLY):  # no UDP at all (DNS, STUN, RTP, TURN over UDP)
            firewall(wan, site, "-A", "OUTPUT", "-p", "udp", "-j", "DROP")
        for site, ports in ((NO_UDP, [tls_port]), (TLS_ONLY, [turn_port]), (NOTHING, [turn_port, tls_port])):
            for port in ports:  # so each site has exactly one way out (TURN/TCP, TURN/TLS) or none
                firewall(wan, site, "-A", "OUTPUT", "-p", "tcp", "--dport", port, "-j", "DROP")
        yield BrowserWorld(wan, control, api, relay)


async def shown(user: WebUser) -> list[Any]:
    """What the page says about its media: [mediaState, mediaPath, the status line]."""
    return await user.page.evaluate(
        "() => [window.meetup.meeting.mediaState, window.meetup.meeting.mediaPath,"
        " document.querySelector('#meeting-status').textContent]"
    )


async def enter(browsers: Browsers, kind: str, site: int, meeting: dict) -> tuple[WebUser, str]:
    """A new user of ``kind`` in ``site``: registers on the web page and joins ``meeting`` (VP8)."""
    user = await browsers.open(kind, site, kind.capitalize())
    await user.register(browsers.web_url)
    return user, await user.join(meeting["meeting_id"], meeting["passcode"])


async def all_tracks_flow(
    user: WebUser, expected: int, timeout_s: float = 20, skip: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    """Every remote track of the page (``expected`` of them, but those in ``skip``) keeps receiving:
    video frames decoded and audio packets rising between two looks. Returns the last counters."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}

    async def flowing() -> bool:
        nonlocal before, after
        before, after = after, await user.inbound()
        return (
            len(after) == expected
            and all(
                (
                    now["framesDecoded"] > before[t]["framesDecoded"]
                    if t.endswith(("camera", "screen"))
                    else now["packetsReceived"] > before[t]["packetsReceived"]
                )
                for t, now in after.items()
                if t in before and t not in skip
            )
            and before.keys() == after.keys()
        )

    assert await poll(flowing, timeout_s), f"{user.name}: {before} -> {after}"
    return after


@pytest.mark.parametrize(
    ("site", "path", "status"),
    [
        (OPEN, "direct", "Connected"),
        (NO_UDP, "turn/tcp", "Connected via TURN (tcp)"),
        (TLS_ONLY, "turn/tls", "Connected via TURN (tls)"),
    ],
    ids=["direct", "turn-tcp", "turn-tls"],
)
async def test_firefox_chromium_and_the_sdk_decode_each_other(
    world: BrowserWorld, tmp_path: Path, site: int, path: str, status: str
) -> None:
    host = world.api.new_user("Sdk")
    meeting = world.api.new_meeting(host)
    before = world.connected()
    with ExitStack() as stack:
        sdk = start_agent(world, stack, 1, host, meeting, "sdk")
        sdk_id = sdk.wait_for(lambda s: s["participant_id"], 30)["participant_id"]
        async with world.browsers(tmp_path) as browsers:
            (fox, fox_id), (chrome, chrome_id) = await asyncio.gather(
                enter(browsers, "firefox", site, meeting), enter(browsers, "chromium", site, meeting)
            )
            # Each browser plays the two others' cameras (size, advancing time, framesDecoded rising)...
            for user, others in ((fox, (sdk_id, chrome_id)), (chrome, (sdk_id, fox_id))):
                for other in others:
                    played = await video_plays(user, other, timeout_s=30)
                    assert played["codec"] == "video/VP8", played
                # ... and every remote track (two cameras, two microphones) keeps flowing.
                await all_tracks_flow(user, expected=4)
                assert await shown(user) == ["connected", path, status]
            # The SDK participant decodes both browsers' camera and microphone.
            sdk.wait_for(decoded_from([fox_id, chrome_id], video=20, audio=25), 30)
            # The relay counted the three connections, through TURN where nothing else was open (the SDK,
            # in the relay's site, directly). On the open network a browser is sometimes counted as TURN
            # (~1 run in 3): the relay counts the pair nominated when media first came up, which can be
            # the browser's TURN pair, before the direct one succeeds and takes over (the relay then
            # sends on the best nominated pair: edge_relay/sfu/seams.py, keep_best_nominated_pair).
            after = world.connected()
            grew = {p: after[p] - before[p] for p in after}
            print(f"{path}: the relay counted {grew}")
            assert sum(grew.values()) == 3, grew
            if path != "direct":
                assert grew == {"direct": 1, "turn": 2}, grew
            if path == "direct":
                await firefox_controls_reach_the_sdk(fox, fox_id, sdk)
            for user in (fox, chrome):
                assert not user.errors, user.errors


async def firefox_controls_reach_the_sdk(fox: WebUser, fox_id: str, sdk: Any) -> None:
    """Camera off and on (Firefox's replaceTrack(null), then the track again) and chat: the SDK is told
    of both mutes, the camera's frames resume, and the message arrives."""
    muted = sdk.latest()["events"].count("track_muted")
    await fox.page.click("#toggle-camera")
    sdk.wait_for(lambda s: s["events"].count("track_muted") >= muted + 1, 15)
    await fox.page.click("#toggle-camera")
    sdk.wait_for(lambda s: s["events"].count("track_muted") >= muted + 2, 15)
    frames = sdk.frames_from(fox_id, "video")
    sdk.wait_for(lambda s: s["frames"][fox_id]["video"] >= frames + 10, 15)
    await fox.page.fill("#chat-form [name=text]", "from Firefox")
    await fox.page.click("#chat-form [type=submit]")
    sdk.wait_for(lambda s: any(c["text"] == "from Firefox" for c in s["chats"]), 15)


async def test_failed_ice_shows_as_failed_never_connected(world: BrowserWorld, tmp_path: Path) -> None:
    """From site 4 the page and the relay's signalling load, but no UDP leaves and coturn is out of
    reach: ICE fails, and each browser's page says so, never "Connected", while its state is watched."""
    host = world.api.new_user("Sdk")
    meeting = world.api.new_meeting(host)
    with ExitStack() as stack:
        start_agent(world, stack, 1, host, meeting, "sdk").wait_for(lambda s: s["participant_id"], 30)
        async with world.browsers(tmp_path) as browsers:
            users = await asyncio.gather(
                enter(browsers, "firefox", NOTHING, meeting), enter(browsers, "chromium", NOTHING, meeting)
            )
            seen: dict[str, set[str]] = {user.name: set() for user, _ in users}
            started = time.monotonic()

            async def all_failed() -> bool:
                states = [await shown(user) for user, _ in users]
                for (user, _), (_, _, line) in zip(users, states, strict=True):
                    seen[user.name].add(line)
                return all(state == "failed" for state, _, _ in states)

            assert await poll(all_failed, FAILED_BOUND_S), seen
            print(f"ICE failed in both browsers within {time.monotonic() - started:.1f} s; shown: {seen}")
            for user, _ in users:
                assert await shown(user) == ["failed", None, "Media failed: no network path to the relay"]
                assert not any(line.startswith("Connected") for line in seen[user.name]), seen
                assert await user.inbound() and not any(
                    c["packetsReceived"] for c in (await user.inbound()).values()
                )
            # Firefox says why on its console too; nothing else went wrong in either page.
            fox, chrome = users[0][0], users[1][0]
            assert all("ICE failed" in e for e in fox.errors), fox.errors
            assert not chrome.errors, chrome.errors
