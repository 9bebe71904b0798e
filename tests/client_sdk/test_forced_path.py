"""Forcing one media path (``Meeting.join(path=...)``, ``meet join --path``): only that path is tried, with
nothing to fall back to; a name that is no path fails before joining, a path the join does not offer is a
clear MediaPathFailed, never a wait. (The TURN benchmark, bench/turn_paths.py, relies on it too.)"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from client_sdk.cli.main import app
from client_sdk.media.sources import PatternVideoTrack
from client_sdk.meeting import MediaPathFailed, Meeting
from client_sdk.rtc import paths
from meetup_protocol.schemas.meetings import IceServer
from tests.client_sdk.test_media_paths import needs_coturn
from tests.client_sdk.test_meeting import Watcher, new_client
from tests.edge_relay.media import wait_until

SERVERS = [
    IceServer(
        urls=["turn:t.example:3478?transport=udp", "turns:t.example:443?transport=tcp"],
        username="1:p",
        credential="c",
    )
]


def test_force_path_keeps_only_that_plan_with_no_fallback() -> None:
    plans = paths.plan_paths(SERVERS)
    (tls,) = paths.force_path(plans, "turn/tls")
    assert tls.path == "turn/tls" and tls.url == "turns:t.example:443?transport=tcp"
    assert not tls.fallback and tls.timeout_s == paths.LAST_PATH_TIMEOUT_S
    (direct,) = paths.force_path(plans, "direct")
    assert direct.path == "direct" and direct.ice_servers == [] and not direct.fallback


@pytest.mark.parametrize("bad", ["turn/tcp", "TURN/UDP", "", "turn/udp; rm -rf /", "x" * 10_000])
def test_force_path_refuses_what_is_not_offered_or_no_path(bad: str) -> None:
    with pytest.raises(ValueError, match="media path"):
        paths.force_path(paths.plan_paths(SERVERS), bad)


async def test_join_refuses_a_name_that_is_no_path_before_asking_the_api() -> None:
    # No API behind this client: reaching it would be another error than ValueError.
    with pytest.raises(ValueError, match="no such media path"):
        await Meeting.join(None, "123", "pass", path="turn/quic")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["turn", "turn/quic", "DIRECT"])
def test_meet_join_refuses_a_path_that_is_none_with_the_choices(bad: str) -> None:
    done = CliRunner().invoke(app, ["join", "1234567890", "--path", bad], env={"COLUMNS": "200"})
    assert done.exit_code == 2  # a usage error, before any network
    assert "no media path" in done.output and "turn/tls" in done.output


async def test_a_forced_path_the_join_does_not_offer_is_a_clear_error(stack) -> None:
    host = await new_client(stack.api_url, "Host")
    try:
        created = await host.create_meeting("forced")
        with pytest.raises(MediaPathFailed) as failed:
            await Meeting.join(host, created.meeting_id, ice_servers=[], path="turn/tcp")
        assert failed.value.code == "path_not_offered" and "turn/tcp" in failed.value.attempts
    finally:
        await host.aclose()


@needs_coturn
async def test_a_forced_turn_path_carries_media_although_direct_works(
    stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.turn_server is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(stack.turn_server.cert_path))
    host, guest = await new_client(stack.api_url, "Host"), await new_client(stack.api_url, "Guest")
    created = await host.create_meeting("forced")
    a = await Meeting.join(host, created.meeting_id, publish={"camera": PatternVideoTrack(320, 240)})
    b = await Meeting.join(guest, created.meeting_id, created.passcode, path="turn/tcp")
    watcher = Watcher(b)
    try:
        assert a.media_path == "direct" and b.media_path == "turn/tcp"  # on loopback direct would work
        assert await wait_until(lambda: sum(watcher.frames.values()) >= 5, 15), watcher.frames
    finally:
        watcher.stop()
        for m in (b, a):
            await m.leave()
        for c in (host, guest):
            await c.aclose()
