"""Bad input of every shape gets a 4xx with the JSON error body; nothing gets a 500."""

from __future__ import annotations

import pytest

from tests.conftest import Api, error_code


def test_malformed_json_is_a_400(api: Api) -> None:
    for body in (b"{bad", b"", b"\xff\xfe", b'{"email": '):
        r = api.post("/auth/login", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code in (400, 422), body
        assert error_code(r) in ("malformed_json", "validation_error")
    r = api.post("/auth/login", content=b"{bad", headers={"Content-Type": "application/json"})
    assert error_code(r) == "malformed_json"


def test_non_object_bodies_and_wrong_content_types(api: Api) -> None:
    for body in (b"[]", b"null", b"42", b'"text"'):
        r = api.post("/auth/login", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and error_code(r) == "validation_error"
    r = api.post(
        "/auth/login",
        content=b"email=a&password=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422
    error_code(r)


def test_validation_errors_never_echo_the_input(api: Api) -> None:
    secret = "hunter2-is-my-password" * 10
    r = api.post("/auth/register", json={"email": "x@y.zz", "password": secret, "display_name": "A"})
    assert r.status_code == 422 and secret not in r.text


def test_oversized_bodies_are_refused_before_parsing(api: Api) -> None:
    big = b'{"text": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    r = api.post("/auth/login", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and error_code(r) == "payload_too_large"

    def chunks():  # no Content-Length: a chunked body, counted as it arrives
        for _ in range(3 * 1024):
            yield b"x" * 1024

    r = api.post("/auth/login", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and error_code(r) == "payload_too_large"


def test_small_chunked_bodies_still_work(api: Api) -> None:
    user = api.new_user()

    def chunks():
        yield b'{"email": "' + user.email.encode() + b'", '
        yield b'"password": "' + user.password.encode() + b'"}'

    r = api.post("/auth/login", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text


def test_unknown_routes_and_methods(api: Api) -> None:
    r = api.get("/nope")
    assert r.status_code == 404 and error_code(r) == "not_found"
    r = api.request("DELETE", "/auth/login")
    assert r.status_code == 405 and error_code(r) == "method_not_allowed"


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"cursor": "x" * 600}],
)
def test_bad_query_parameters(api: Api, params: dict) -> None:
    meeting, host, _ = api.joined_meeting(0)
    r = api.get(f"/meetings/{meeting['meeting_id']}/chat", host, params=params)
    assert r.status_code == 422
    error_code(r)


def test_every_protected_route_wants_a_token(api: Api, stack) -> None:
    from functions.app import create_app

    mid, rid = "1234567890", "r_0123456789abcdef"
    for route in create_app().routes:
        path = getattr(route, "path", "")
        if path.startswith(("/docs", "/openapi", "/redoc", "/healthz")) or (
            path.startswith("/auth/") and path != "/auth/me"
        ):
            continue
        for method in getattr(route, "methods", ()):
            if method in ("HEAD", "OPTIONS"):
                continue
            url = path.replace("{meeting_id}", mid).replace("{recording_id}", rid)
            r = api.request(method, url, json={})
            assert r.status_code == 401, (method, url, r.text)
            assert error_code(r) == "not_authenticated"
