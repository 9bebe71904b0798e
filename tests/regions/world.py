"""The world of the multi-region tests: three relays in three network namespaces behind the WAN router,
the control plane in the root namespace, participant agents in the regions, and the helpers that read
what they see. Shared by test_regions.py (the cluster's normal life) and test_faults.py (its faults).

One-way delays: r1-r2 20 ms, r2-r3 20 ms, r1-r3 40 ms; the control plane (API, moto) in the root
namespace is 0 ms from everyone. The relays run the ``local`` cluster preset (failure detection in
seconds, not WAN's tens of seconds).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from edge_relay.cluster.config import ClusterConfig
from meetup_protocol.metrics import parse as parse_metrics
from tests.conftest import Api
from tests.regions.agents import Agent
from tests.regions.control import ControlPlane
from tests.regions.netns import Wan, wan_available

available, why = wan_available()
#: Each test module of this world: ``pytestmark = needs_namespaces``.
needs_namespaces = pytest.mark.skipif(not available, reason=why)

REGIONS = {1: "r1", 2: "r2", 3: "r3"}
PRESET = ClusterConfig.local("bounds", secrets=("only-for-the-bounds",))
#: From a crash to every live relay marking the relay dead (the preset's documented bound, 3 relays).
#: The tests allow 2 s more: they see it by scraping /metrics every 0.2 s, on a shared 2-core machine,
#: and print what they measured.
DETECTION_BOUND_S = PRESET.detection_bound_s(3)
#: From a heal to merged state, plus re-dialing the links and the first keyframes over them.
HEAL_BOUND_S = PRESET.convergence_bound_s(3) + 10.0
SMALL_VIDEO = ("--width", "160", "--height", "120", "--fps", "10")
FROM_1, FROM_2 = "sent in region 1 during the partition", "sent in region 2 during the partition"
ACROSS_THE_CUT = "sent in region 2 while regions 1 and 2 were cut apart"


@dataclass
class Region:
    site: int
    name: str
    relay: Any  # local_stack.relays.RelayProcess
    relay_id: str

    def metrics(self) -> dict[str, float]:
        return parse_metrics(httpx.get(f"{self.relay.http_url}/metrics", timeout=5).text)


@dataclass
class World:
    wan: Wan
    control: ControlPlane
    api: Api
    regions: dict[int, Region]

    def isolate(self, site: int) -> None:
        for other in self.regions:
            if other != site:
                self.wan.cut(site, other)

    def heal(self, site: int) -> None:
        for other in self.regions:
            if other != site:
                self.wan.heal(site, other)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with ExitStack() as stack:
        wan = stack.enter_context(Wan(sites=3, delay_ms=20))
        wan.delay(1, 3, 40)
        control = stack.enter_context(ControlPlane(wan))
        secret = secrets.token_urlsafe(32)
        regions = {}
        for site, name in REGIONS.items():
            env = {
                "MEETUP_RELAY_CLUSTER": "true",
                "MEETUP_CLUSTER_SECRET": secret,
                "MEETUP_RELAY_CLUSTER_PRESET": "local",
                "MEETUP_RELAY_CLUSTER_PORT": "7946",
            }
            relay = control.add_relay(site, name, env)
            relay_id = httpx.get(f"{relay.http_url}/healthz", timeout=5).json()["relay_id"]
            regions[site] = Region(site, name, relay, relay_id)
        api = control.api()
        stack.callback(api.close)
        world = World(wan, control, api, regions)
        # One cluster: every relay sees the two others alive (seeds came from the registry).
        assert wait(lambda: all(r.metrics()["relay_cluster_live_peers"] == 2 for r in regions.values()), 20)
        yield world


def wait(condition: Callable[[], Any], timeout_s: float, step_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except (KeyError, httpx.HTTPError):
            pass
        time.sleep(step_s)
    return bool(condition())


def start_agent(
    world: Any, stack: ExitStack, site: int, user: Any, meeting: dict, name: str, **options: Any
) -> Agent:
    """A participant process in ``site``, admitted through ``world``'s API (any world with ``api``,
    ``wan`` and ``control``), running until ``stack`` closes; ``options`` go to the agent (``args``
    after the small test video, ``region``, ``env``)."""
    joined = world.api.join(meeting, user)
    assert joined.status_code == 200, joined.text
    args = options.pop("args", ())
    a = Agent.for_user(
        world.wan,
        site,
        user,
        api=world.control.api_url,
        meeting_id=meeting["meeting_id"],
        passcode=meeting["passcode"],
        name=name,
        args=(*SMALL_VIDEO, *args),
        **options,
    )
    stack.enter_context(a)
    return a


def agent(
    world: World,
    stack: ExitStack,
    site: int,
    user: Any,
    meeting: dict,
    name: str,
    region: str | None = None,
    args: tuple[str, ...] = (),
) -> Agent:
    """A participant in ``site``, hinting its own region (or ``region``) to the API, once admitted."""
    a = start_agent(world, stack, site, user, meeting, name, region=region or REGIONS[site], args=args)
    a.wait_for(lambda s: s.get("participant_id"), 30)
    return a


def receiving(a: Agent, others: list[Agent], video: int = 5, audio: int = 10) -> Callable[[dict], bool]:
    """Predicate: ``a`` has decoded at least that many frames of each of ``others``."""
    return decoded_from([o.latest()["participant_id"] for o in others], video, audio)


def decoded_from(ids: list[str], video: int = 5, audio: int = 10) -> Callable[[dict], bool]:
    """Predicate on an agent's status: it has decoded that many frames of each of participants ``ids``
    (agents or browsers)."""

    def check(status: dict) -> bool:
        frames = status["frames"]
        return all(
            frames.get(i, {}).get("video", 0) >= video and frames.get(i, {}).get("audio", 0) >= audio
            for i in ids
        )

    return check


def still_receiving(a: Agent, other: Agent, seconds: float = 3.0) -> bool:
    """Frames of ``other`` keep arriving at ``a`` (video and audio both grow over ``seconds``)."""
    pid = other.latest()["participant_id"]
    before = dict(a.latest()["frames"].get(pid, {}))
    time.sleep(seconds)
    after = a.latest()["frames"].get(pid, {})
    return (
        after.get("video", 0) > before.get("video", 0) + 3
        and after.get("audio", 0) > before.get("audio", 0) + 10
    )


def chats(a: Agent, text: str) -> int:
    return sum(1 for c in a.latest()["chats"] if c["text"] == text)


def one_per_region(
    world: World, stack: ExitStack, meeting: dict | None = None, host: Any = None
) -> list[Agent]:
    """The host in region 1 and a guest in each of regions 2 and 3 (a new meeting unless given one)."""
    host = host or world.api.new_user("Host")
    meeting = meeting or world.api.new_meeting(host)
    users = [host, world.api.new_user("B"), world.api.new_user("C")]
    return [
        agent(world, stack, site, user, meeting, "abc"[site - 1])
        for site, user in zip(REGIONS, users, strict=True)
    ]


def all_receive_all(agents: list[Agent], timeout_s: float = 60) -> None:
    for a in agents:
        a.wait_for(receiving(a, [o for o in agents if o is not a]), timeout_s)


def seconds_until_declared_dead(world: World, site: int, since: float) -> float:
    """Until every other region's relay says region ``site``'s relay is dead (peer state 2)."""
    gone = world.regions[site]
    series = f'relay_cluster_peer_state{{peer="{gone.relay_id}"}}'
    others = [r for s, r in world.regions.items() if s != site]
    assert wait(lambda: all(r.metrics()[series] == 2 for r in others), DETECTION_BOUND_S + 2), (
        f"region {site}'s relay was not declared dead in time"
    )
    return time.monotonic() - since
