"""Item 3: X-Forwarded-For decides nothing unless it comes from a configured trusted proxy.

On the local stack every client is a loopback address and none is a trusted proxy (the default), so a
forged header must neither move a guesser out of a blocked bucket nor frame another address. Behind a
trusted proxy (the Lambda path, API Gateway's ``sourceIp`` being that proxy) the forwarded address is used,
the right-most one: what the client wrote further left is ignored.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Iterator

import pytest

from functions.core.client_address import address_from_scope
from tests.conftest import Api, error_code
from tests.functions.test_handlers import LambdaContext, http_api_event, invoke


def _ip_failures(address: str) -> int:
    from functions.core.config import get_settings
    from functions.models import ThrottleModel

    index = int(time.time() // get_settings().throttle_window_s)
    try:
        return int(ThrottleModel.get(f"passcode-ip#{address}#{index}", consistent_read=True).failures)
    except ThrottleModel.DoesNotExist:
        return 0


def _block(api: Api, meeting: dict) -> None:
    """Spend the address's passcode failures (4 users x 5 guesses = MEETUP_PASSCODE_FAILURES_PER_IP)."""
    for n in range(4):
        user = api.new_user(f"Guesser {n}")
        for i in range(5):
            assert api.join(meeting, user, f"GUESS{i:03d}").status_code == 403
    assert error_code(api.join(meeting, api.new_user())) == "too_many_attempts"


def test_a_blocked_address_stays_blocked_whatever_it_forwards(api_from_new_ip: Api) -> None:
    api = api_from_new_ip
    meeting = api.new_meeting(api.new_user("Host"))
    _block(api, meeting)
    for n in range(10):
        forged = {"X-Forwarded-For": f"198.51.100.{n + 1}"}
        r = api.post(
            f"/meetings/{meeting['meeting_id']}/join",
            api.new_user(),
            json={"passcode": "GUESS999"},
            headers=forged,
        )
        assert r.status_code == 429 and error_code(r) == "too_many_attempts"


def test_a_forged_header_from_loopback_frames_nobody(api: Api, api_from_new_ip: Api) -> None:
    """127.0.0.1 is where uvicorn's default trusts X-Forwarded-For; the API must not."""
    victim = api_from_new_ip
    meeting = victim.new_meeting(victim.new_user("Host"))
    _block(victim, meeting)
    forged = {"X-Forwarded-For": victim.source_ip}
    # The blocked victim's bucket is not this caller's: the right passcode gets in.
    r = api.post(
        f"/meetings/{meeting['meeting_id']}/join",
        api.new_user(),
        json={"passcode": meeting["passcode"]},
        headers=forged,
    )
    assert r.status_code == 200, r.text
    # A wrong guess counts against the address that connected, not the one it names.
    spoofed = f"198.51.100.{uuid.uuid4().int % 200 + 20}"
    before = _ip_failures("127.0.0.1")
    r = api.post(
        f"/meetings/{meeting['meeting_id']}/join",
        api.new_user(),
        json={"passcode": "GUESS999"},
        headers={"X-Forwarded-For": spoofed},
    )
    assert r.status_code == 403
    assert _ip_failures(spoofed) == 0 and _ip_failures("127.0.0.1") == before + 1


@pytest.fixture
def trusting_proxy(stack, monkeypatch) -> Iterator[str]:
    """Configure 203.0.113.0/24 (the Lambda test events' sourceIp) as the trusted proxy network."""
    from functions.core.config import get_settings

    monkeypatch.setenv("MEETUP_TRUSTED_PROXIES", "203.0.113.0/24, 2001:db8::/32")
    get_settings.cache_clear()
    yield "203.0.113.7"
    monkeypatch.delenv("MEETUP_TRUSTED_PROXIES")
    get_settings.cache_clear()


@pytest.mark.usefixtures("lambda_event_loop")
def test_behind_a_trusted_proxy_the_forwarded_address_is_the_caller(trusting_proxy: str) -> None:
    from functions import handlers

    token = _lambda_user(handlers)
    _, meeting = invoke(handlers.meetings, "POST", "/meetings", {}, token)
    viewer = f"198.18.0.{uuid.uuid4().int % 200 + 20}"
    forged = "192.0.2.77"
    event = http_api_event(
        "POST", f"/meetings/{meeting['meeting_id']}/join", {"passcode": "WRONGONE"}, _lambda_user(handlers)
    )
    # The client wrote the left-most entry; the trusted proxy appended the address it saw.
    event["headers"]["x-forwarded-for"] = f"{forged}, {viewer}"
    result = handlers.meetings(event, LambdaContext(aws_request_id=uuid.uuid4().hex))
    assert result["statusCode"] == 403
    assert _ip_failures(viewer) == 1
    assert _ip_failures(forged) == 0


def _lambda_user(handlers) -> str:  # type: ignore[no-untyped-def]
    email = f"proxy-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": "pass-word-1", "display_name": "Proxy"}
    invoke(handlers.auth, "POST", "/auth/register", body)
    return invoke(handlers.auth, "POST", "/auth/login", {"email": email, "password": "pass-word-1"})[1][
        "access_token"
    ]


def _scope(peer: str, forwarded: str | None = None, aws_source: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    scope: dict = {"type": "http", "client": (peer, 0), "headers": headers}
    if aws_source is not None:
        scope["aws.event"] = {"requestContext": {"http": {"sourceIp": aws_source}}}
    return scope


TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")]


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (_scope("192.0.2.1"), "192.0.2.1"),
        (_scope("192.0.2.1", "198.51.100.5"), "192.0.2.1"),  # untrusted peer: header ignored
        (_scope("10.1.2.3", "198.51.100.5"), "198.51.100.5"),  # trusted peer: its entry is used
        (_scope("10.1.2.3", "6.6.6.6, 198.51.100.5"), "198.51.100.5"),  # left-most forged entry ignored
        (_scope("10.1.2.3", "6.6.6.6, 198.51.100.5, 10.9.9.9"), "198.51.100.5"),  # two trusted hops
        (_scope("10.1.2.3", "198.51.100.5, not-an-ip"), "10.1.2.3"),  # garbage: keep the vouched hop
        (_scope("10.1.2.3"), "10.1.2.3"),  # a trusted peer without the header is the caller
        (_scope("2001:db8::1", "2001:DB8:0:0::7, 2a00::5"), "2a00::5"),
        (_scope("127.0.0.1", "198.51.100.5", aws_source="10.1.2.3"), "198.51.100.5"),  # Lambda: sourceIp
        (_scope("127.0.0.1", "198.51.100.5", aws_source="192.0.2.9"), "192.0.2.9"),
    ],
)
def test_address_from_scope(scope: dict, expected: str) -> None:
    assert address_from_scope(scope, TRUSTED) == expected


def test_without_trusted_proxies_the_peer_is_the_caller() -> None:
    assert address_from_scope(_scope("10.1.2.3", "198.51.100.5"), []) == "10.1.2.3"
    assert address_from_scope(_scope("127.0.0.1", "1.2.3.4", aws_source="203.0.113.7"), []) == "203.0.113.7"
