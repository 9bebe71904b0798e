"""Operations: health, Prometheus metrics, JSON logs, and the graceful drain on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import httpx
import websockets

from client_sdk.media.sources import ToneAudioTrack
from client_sdk.rtc.connection import RelayConnection
from local_stack.relays import RelayProcess
from tests.conftest import Api, User
from tests.edge_relay.media import Peer, wait_until

REQUIRED_METRICS = {
    "relay_rooms",
    "relay_participants",
    "relay_tracks",
    "relay_rtp_packets_in_total",
    "relay_rtp_bytes_in_total",
    "relay_rtp_packets_out_total",
    "relay_rtp_bytes_out_total",
    "relay_nacks_received_total",
    "relay_retransmissions_total",
    "relay_keyframe_requests_sent_total",
    "relay_codec_instances_total",
    "relay_event_loop_lag_seconds",
}


def test_health_and_metrics_format(stack) -> None:
    relay = next(r for r in stack.relays if r.region == "local")
    health = httpx.get(f"{relay.http_url}/healthz")
    assert (
        health.status_code == 200 and health.json()["status"] == "ok" and health.json()["region"] == "local"
    )
    metrics = httpx.get(f"{relay.http_url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    declared = set()
    for line in metrics.text.splitlines():
        if line.startswith("# TYPE"):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge", "histogram")
            declared.add(name)
        elif line and not line.startswith("#"):
            name_and_labels, value = line.rsplit(" ", 1)
            float(value)
            name = name_and_labels.split("{")[0]
            assert name in declared or name.rsplit("_", 1)[0] in declared  # histogram: _bucket/_sum/_count
    assert declared >= REQUIRED_METRICS


def _healthy(relay: RelayProcess) -> bool:
    try:
        return httpx.get(f"{relay.http_url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


async def _connect(api: Api, relay: RelayProcess, meeting: dict, user: User) -> tuple[Peer, str]:
    token = api.post(f"/meetings/{meeting['meeting_id']}/join", user, json={}).json()["join_token"]
    conn = RelayConnection(relay.url, token, {"microphone": ToneAudioTrack()})
    await conn.connect()
    return Peer(conn, user.display_name), token


async def test_sigterm_drains_then_moves_everyone(api: Api, stack, monkeypatch) -> None:
    monkeypatch.setenv("MEETUP_RELAY_DRAIN_GRACE_S", "1.5")
    relay = RelayProcess("drain-test", stack.join_public_key)
    relay.start()
    try:
        meeting, host, (guest,) = api.joined_meeting(1)
        peer, _ = await _connect(api, relay, meeting, host)
        late_token = api.post(f"/meetings/{meeting['meeting_id']}/join", guest, json={}).json()["join_token"]
        relay.proc.send_signal(signal.SIGTERM)
        assert await wait_until(lambda: not _healthy(relay), 5)
        assert httpx.get(f"{relay.http_url}/healthz").json()["status"] == "draining"
        async with websockets.connect(relay.url) as ws:
            await ws.send(json.dumps({"type": "join", "token": late_token}))
            refused = json.loads(await ws.recv())
        assert refused["code"] == "relay_draining"
        started = time.monotonic()
        assert await wait_until(lambda: "migrate" in peer.event_types(), 10)
        assert time.monotonic() - started >= 1.0  # the running room was served through the grace period
        assert await asyncio.to_thread(relay.proc.wait, 10) == 0
        await peer.close()
    finally:
        relay.stop()


async def test_logs_are_json_lines_without_secrets(api: Api, stack, tmp_path) -> None:
    relay = RelayProcess("log-test", stack.join_public_key)
    log_path = tmp_path / "relay.log"
    with log_path.open("wb") as sink:
        relay.proc = subprocess.Popen([sys.executable, "-m", "edge_relay"], env=relay._env, stderr=sink)
        try:
            assert await wait_until(lambda: _healthy(relay), 20)
            meeting, host, _ = api.joined_meeting(0)
            peer, token = await _connect(api, relay, meeting, host)
            await asyncio.sleep(1)
            await peer.close()
            await asyncio.sleep(0.5)
        finally:
            relay.stop()
    text = log_path.read_text()
    messages = [json.loads(line)["message"] for line in text.splitlines() if line.strip()]
    assert {"relay up", "joined", "left"} <= set(messages)
    assert token not in text and "a=fingerprint" not in text and "ice-pwd" not in text


def test_stun_servers_reach_the_peer_connections() -> None:
    """Behind a 1:1 NAT the relay learns its public address from STUN (server-reflexive candidates)."""
    from edge_relay.config import RelayConfig
    from edge_relay.rooms.participant import Participant
    from edge_relay.sfu.transport import PeerTransport

    config = RelayConfig(stun_urls="stun:stun.example.net:3478, stun:backup.example.net:3478")
    assert config.stun_servers == ["stun:stun.example.net:3478", "stun:backup.example.net:3478"]

    transport = PeerTransport(config.stun_servers)
    participant = Participant(None, "p", "u", "n", "guest", None, transport)  # type: ignore[arg-type]
    servers = participant.transport.pc._RTCPeerConnection__configuration.iceServers  # aiortc keeps it private
    assert [s.urls for s in servers] == config.stun_servers


async def test_metrics_are_for_the_local_scraper_only(stack) -> None:
    """Signalling is public (the load balancer forwards the port); /metrics answers loopback (the task's
    own scraper) and the networks in MEETUP_RELAY_METRICS_FROM, nobody else."""
    from starlette.requests import Request

    from edge_relay.config import RelayConfig
    from edge_relay.sfu.seams import CodecCensus
    from edge_relay.signalling.server import Relay

    relay = next(r for r in stack.relays if r.region == "local")
    assert httpx.get(f"{relay.http_url}/metrics").status_code == 200  # from 127.0.0.1
    for allowed, client, expected in (
        ("127.0.0.0/8,::1/128", "203.0.113.9", 403),
        ("10.0.0.0/8", "10.1.2.3", 200),
        ("10.0.0.0/8", "not-an-address", 403),
    ):
        config = RelayConfig(join_public_key=stack.join_public_key, metrics_from=allowed)
        scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": [], "client": (client, 4000)}
        answer = await Relay(config, CodecCensus()).metrics(Request(scope))
        assert answer.status_code == expected, (allowed, client)
        if expected == 403:
            assert json.loads(bytes(answer.body))["error"]["code"] == "forbidden"
