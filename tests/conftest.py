"""Shared fixtures: one local stack (moto server + API under uvicorn) for the whole session.

Tests talk to it over real HTTP. Configuration goes through the environment exactly as in Lambda; the
stack sets it before any ``functions`` module is imported.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import secrets
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from local_stack import LocalStack
from local_stack.stack import MANY_USERS_FROM_ONE_ADDRESS

_ips = itertools.count(2)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    # Emulated distance (no netem here): each relay answers the SDK's RTT probe this much later.
    with LocalStack(
        relay_regions=["local", "eu-west-1"],
        relay_probe_delay_ms={"local": 20, "eu-west-1": 80},
        settings=MANY_USERS_FROM_ONE_ADDRESS,
    ) as running:
        yield running


@dataclass
class User:
    user_id: str
    email: str
    password: str
    display_name: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Api:
    """A thin HTTP client of the local stack with helpers for the common set-up steps."""

    def __init__(self, base_url: str, source_ip: str = "127.0.0.1") -> None:
        self.source_ip = source_ip
        transport = httpx.HTTPTransport(local_address=source_ip)
        self.http = httpx.Client(base_url=base_url, transport=transport, timeout=30)

    def request(self, method: str, path: str, user: User | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **(user.auth if user else {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, user: User | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, user, **kwargs)

    def post(self, path: str, user: User | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, user, **kwargs)

    def patch(self, path: str, user: User | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, user, **kwargs)

    def new_user(self, name: str = "Tester") -> User:
        email = f"{name.lower().replace(' ', '-')}-{secrets.token_hex(4)}@example.com"
        password = secrets.token_urlsafe(12)
        r = self.post("/auth/register", json={"email": email, "password": password, "display_name": name})
        assert r.status_code == 201, r.text
        r = self.post("/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        body = r.json()
        return User(
            body["user"]["user_id"], email, password, name, body["access_token"], body["refresh_token"]
        )

    def new_meeting(self, host: User, **options: Any) -> dict[str, Any]:
        r = self.post("/meetings", host, json={"title": "Test meeting", **options})
        assert r.status_code == 201, r.text
        return r.json()

    def join(self, meeting: dict[str, Any], user: User, passcode: str | None = None) -> httpx.Response:
        body = {"passcode": passcode if passcode is not None else meeting["passcode"]}
        return self.post(f"/meetings/{meeting['meeting_id']}/join", user, json=body)

    def joined_meeting(self, guests: int = 1, **options: Any) -> tuple[dict[str, Any], User, list[User]]:
        """A meeting whose host and ``guests`` guests have all joined."""
        host = self.new_user("Host")
        meeting = self.new_meeting(host, **options)
        assert self.join(meeting, host).status_code == 200
        others = [self.new_user(f"Guest {i}") for i in range(guests)]
        for guest in others:
            r = self.join(meeting, guest)
            assert r.status_code == 200, r.text
        return meeting, host, others

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def api(stack: LocalStack) -> Iterator[Api]:
    client = Api(stack.api_url)
    yield client
    client.close()


@pytest.fixture
def api_from_new_ip(stack: LocalStack) -> Iterator[Api]:
    """A client connecting from its own loopback address (127.0.0.N), for per-IP throttle tests."""
    n = next(_ips)
    client = Api(stack.api_url, source_ip=f"127.0.{n // 250}.{n % 250 + 2}")
    yield client
    client.close()


@pytest.fixture
def log_stream(stack: LocalStack) -> Iterator[io.StringIO]:
    """The API's JSON log lines (Powertools Logger), read from its own handler while the test runs."""
    from functions.core.observability import logger

    buffer = io.StringIO()
    handler = logger.registered_handler
    old = handler.setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    handler.setStream(old)  # type: ignore[attr-defined]


def error_code(response: httpx.Response) -> str:
    """The API error code of a 4xx answer, asserting the documented error shape on the way."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]["code"]


def png(width: int = 8, height: int = 8) -> bytes:
    """A tiny valid PNG (solid colour), made here rather than read from a file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x20\x80\xd0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


@pytest.fixture
def lambda_event_loop() -> Iterator[None]:
    """A current event loop in the main thread, as in Lambda's runtime (Mangum uses it): a test that ran
    ``asyncio.run`` earlier in this process (the CLI's) leaves none behind."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()
