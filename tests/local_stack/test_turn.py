"""coturn in the local stack: started with the stack where installed (TURN over UDP, TCP and TLS, credentials
from the API refused or accepted as they should be), stopped with it; without ``turnserver`` the stack
runs without TURN and says so."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import pytest
from aioice import turn

from local_stack import LocalStack
from local_stack import stack as stack_module
from local_stack.turn import TurnServer, turnserver_binary
from meetup_protocol.turn import turn_credentials
from tests.conftest import Api

needs_coturn = pytest.mark.skipif(
    turnserver_binary() is None, reason="no turnserver (Debian: apt-get install coturn; ./dev installs it)"
)


async def allocate(url: str, username: str, credential: str, cafile: str | None = None) -> str:
    """Make (and release) a TURN allocation through ``url``; its relayed address, or the error."""
    scheme, _, rest = url.partition(":")
    hostport, _, query = rest.partition("?")
    host, _, port = hostport.rpartition(":")
    context = ssl.create_default_context(cafile=cafile) if scheme == "turns" else None
    try:
        transport, _ = await asyncio.wait_for(
            turn.create_turn_endpoint(
                asyncio.DatagramProtocol,
                (host, int(port)),
                username,
                credential,
                ssl=context,
                transport="udp" if query.endswith("udp") else "tcp",
            ),
            5,
        )
    except Exception as exc:
        return f"error: {exc!r}"
    address = transport.get_extra_info("sockname")
    transport.close()
    return f"relayed {address[0]}"


@needs_coturn
def test_the_stack_runs_coturn_and_the_api_hands_out_working_credentials(api: Api, stack: LocalStack) -> None:
    assert stack.turn_server is not None and stack.turn_server.proc is not None
    meeting, host, _ = api.joined_meeting(0)
    body = api.post(f"/meetings/{meeting['meeting_id']}/join", host, json={}).json()
    (server,) = body["ice_servers"]
    assert [u.split(":")[0] for u in server["urls"]] == ["turn", "turn", "turns"]
    cafile = str(stack.turn_server.cert_path)
    for url in server["urls"]:
        result = asyncio.run(allocate(url, server["username"], server["credential"], cafile))
        assert result == "relayed 127.0.0.1", (url, result)
    # coturn recomputes the credential from the username: another participant's, or a later expiry, fails.
    pid, expiry = server["username"].split(":")[1], int(server["username"].split(":")[0])
    for username in (f"{expiry}:p_someone_else", f"{expiry + 3600}:{pid}"):
        result = asyncio.run(allocate(server["urls"][1], username, server["credential"]))
        assert "401" in result, result


@needs_coturn
def test_coturn_refuses_expired_and_forged_credentials_and_stops_with_its_owner() -> None:
    server = TurnServer().start()
    try:
        good = turn_credentials(server.secret, "p_1", int(time.time()) + 60)
        expired = turn_credentials(server.secret, "p_1", int(time.time()) - 1)
        forged = turn_credentials("not-the-secret", "p_1", int(time.time()) + 60)
        for url in server.urls[:2]:
            assert asyncio.run(allocate(url, *good)) == "relayed 127.0.0.1"
            assert "401" in asyncio.run(allocate(url, *expired))
            assert "401" in asyncio.run(allocate(url, *forged))
        # TLS: the certificate made at start, for the listening address; untrusted without it.
        assert (
            asyncio.run(allocate(server.urls[2], *good, cafile=str(server.cert_path))) == "relayed 127.0.0.1"
        )
        assert "CERTIFICATE_VERIFY_FAILED" in asyncio.run(allocate(server.urls[2], *good, cafile=None))
        # The secret is not on the command line (ps shows it to every user).
        assert server.proc is not None
        args = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes().decode()
        assert "turnserver" in args and server.secret not in args
        proc = server.proc
    finally:
        server.stop()
    assert proc.poll() is not None
    assert "error" in asyncio.run(allocate(server.urls[1], *good))


def test_without_turnserver_the_stack_runs_without_turn_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack_module, "turnserver_binary", lambda: None)
    local = LocalStack()
    assert local._start_turn() == {}  # no MEETUP_TURN_*: the API offers no TURN servers
    assert local.turn_server is None and "apt-get install coturn" in local.turn_note
    with pytest.raises(RuntimeError, match="coturn"):
        LocalStack(turn=True)._start_turn()
    assert LocalStack(turn=False)._start_turn() == {}


def test_a_turnserver_that_fails_to_start_leaves_the_stack_without_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stack_module, "turnserver_binary", lambda: "/bin/false")
    monkeypatch.setattr("local_stack.turn.turnserver_binary", lambda: "/bin/false")  # exits at once
    local = LocalStack()
    assert local._start_turn() == {}
    assert local.turn_server is None and "did not start" in local.turn_note
    with pytest.raises(RuntimeError, match="exited"):
        LocalStack(turn=True)._start_turn()
