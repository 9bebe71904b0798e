"""The multi-region harness itself: real UDP and TCP between namespaces through the user-space WAN router
(tests/regions/wan.py; no netem in this kernel, so the delay is applied by that router), the configured
delay shows up as round-trip time, a cut drops traffic and a heal restores it, and nothing is left behind.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.regions.agents import Agent
from tests.regions.control import ControlPlane
from tests.regions.netns import IP, REPO, Wan, wan_available

available, why = wan_available()
pytestmark = pytest.mark.skipif(not available, reason=why)

PORT = 9000


def probe(wan: Wan, site: int, *args: str, timeout_s: float = 10.0) -> dict:
    argv = wan.command_in(site, [sys.executable, "-m", "tests.regions.probes", *args])
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def wan() -> Iterator[Wan]:
    with Wan(sites=3, delay_ms=20) as running:
        server = running.run_in(
            2,
            [sys.executable, "-m", "tests.regions.probes", "serve", running.site_ip(2), str(PORT)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            yield running
        finally:
            server.terminate()
            server.wait(5)


def test_udp_round_trip_is_twice_the_one_way_delay(wan: Wan) -> None:
    far = probe(wan, 1, "udp-ping", wan.site_ip(2), str(PORT), "--count", "10")
    near = probe(wan, 0, "udp-ping", wan.site_ip(2), str(PORT), "--count", "10")  # control site: no delay
    assert far["lost"] == near["lost"] == 0
    assert 38 <= statistics.median(far["rtts_ms"]) <= 80, far
    assert statistics.median(near["rtts_ms"]) < 15, near

    wan.delay(1, 2, 50, oneway=True)  # 50 there, 20 back
    try:
        slower = probe(wan, 1, "udp-ping", wan.site_ip(2), str(PORT), "--count", "5")
    finally:
        wan.delay(1, 2, 20)
    assert slower["lost"] == 0
    assert 68 <= statistics.median(slower["rtts_ms"]) <= 110, slower


def test_tcp_crosses_the_wan_intact_with_full_size_segments(wan: Wan) -> None:
    result = probe(wan, 3, "tcp", wan.site_ip(2), str(PORT), "--bytes", str(512 * 1024))
    assert result["ok"], result
    assert result["connect_ms"] >= 38  # the handshake paid one round trip of 2 x 20 ms
    root = probe(wan, 0, "tcp", wan.site_ip(2), str(PORT), "--bytes", str(64 * 1024))
    assert root["ok"], root
    stats = wan.stats()["pairs"]
    assert stats["3>2"]["forwarded"] > 0 and stats["2>3"]["bytes"] >= 512 * 1024
    assert stats["3>2"]["dropped"] == 0


def test_a_cut_drops_traffic_and_a_heal_restores_it(wan: Wan) -> None:
    before = wan.stats()["pairs"].get("1>2", {}).get("dropped", 0)
    wan.cut(1, 2)
    try:
        cut = probe(wan, 1, "udp-ping", wan.site_ip(2), str(PORT), "--count", "3", "--timeout-s", "0.2")
        tcp = probe(wan, 1, "tcp", wan.site_ip(2), str(PORT), "--timeout-s", "0.5")
        other = probe(wan, 3, "udp-ping", wan.site_ip(2), str(PORT), "--count", "3")
    finally:
        wan.heal(1, 2)
    assert cut["lost"] == 3 and not tcp["ok"]
    assert other["lost"] == 0  # only the pair is partitioned
    assert wan.stats()["pairs"]["1>2"]["dropped"] >= before + 4
    healed = probe(wan, 1, "udp-ping", wan.site_ip(2), str(PORT), "--count", "3")
    assert healed["lost"] == 0


def test_closing_removes_the_namespaces_and_what_ran_in_them() -> None:
    wan = Wan(sites=1).start()
    try:
        names = [wan.netns(1)]
        sleeper = wan.run_in(1, [sys.executable, "-c", "import time; time.sleep(60)"])
        assert wan.command_in(0, ["true"]) == ["true"]
    finally:
        wan.close()
    assert sleeper.wait(5) is not None  # ended by the router's clean-up
    listed = subprocess.run([IP, "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not any(name in listed for name in names)


def test_agents_meet_through_one_relay(wan: Wan) -> None:
    """Two participants in regions 2 and 3 meet through the relay of region 1: each decodes the other's
    video and audio, and a chat message crosses. All of it crosses the WAN, with its 20 ms per hop."""
    with ControlPlane(wan) as control:
        relay = control.add_relay(1, "r1")
        api = control.api()
        try:
            host, guest = api.new_user("Alice"), api.new_user("Bob")
            meeting = api.new_meeting(host)
        finally:
            api.close()
        common = {"api": control.api_url, "meeting_id": meeting["meeting_id"]}
        with (
            Agent.for_user(wan, 2, host, region="r2", name="alice", **common) as alice,
            Agent.for_user(
                wan, 3, guest, passcode=meeting["passcode"], region="r3", name="bob", **common
            ) as bob,
        ):
            a = alice.wait_for(lambda s: s["participant_id"], 30)
            b = bob.wait_for(lambda s: s["participant_id"], 30)
            assert a["relay"] == b["relay"] == relay.url
            alice.wait_for(lambda s: s["frames"][b["participant_id"]]["video"] >= 10, 30)
            alice.wait_for(lambda s: s["frames"][b["participant_id"]]["audio"] >= 25, 10)
            bob.wait_for(lambda s: s["frames"][a["participant_id"]]["video"] >= 10, 10)
            bob.wait_for(lambda s: s["frames"][a["participant_id"]]["audio"] >= 25, 10)

            alice.send("chat hello from r2")
            got = bob.wait_for(lambda s: any(c["text"] == "hello from r2" for c in s["chats"]), 10)
            assert [c["from"] for c in got["chats"]] == [a["participant_id"]]
            assert alice.wait_for(lambda s: s["sent"], 10)["sent"][0]["text"] == "hello from r2"

            alice.send("end")
            assert bob.wait_for(lambda s: s["ended"], 10)["ended"] == "host_ended"
        assert alice.proc.returncode == bob.proc.returncode == 0  # both quit cleanly
        pairs = wan.stats()["pairs"]
        for site in (2, 3):  # media went through the WAN, both ways
            assert pairs[f"{site}>1"]["bytes"] > 20_000 and pairs[f"1>{site}"]["bytes"] > 20_000
