"""The SDK's reading of API error answers (client_sdk/errors.py)."""

from __future__ import annotations

import pytest

from client_sdk import errors


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 1.0),
        ("", 1.0),
        ("7.5", 7.5),
        ("0", 0.0),
        ("-3", 0.0),  # a wait in the past: now
        ("86400", 300.0),  # a day: bounded, a client is not parked by one header
        ("nan", 1.0),
        ("soon", 1.0),
        ("Sun, 06 Dec 2026 15:00:30 GMT", 30.0),  # the HTTP-date form (RFC 9110), from a CDN or a WAF
        ("Sun, 06 Dec 2026 14:00:00 GMT", 0.0),
    ],
)
def test_retry_after_in_both_forms_and_bounded(header: str | None, seconds: float) -> None:
    now = 1796569200.0  # Sun, 06 Dec 2026 15:00:00 GMT
    assert errors.retry_after_seconds(header, now=now) == pytest.approx(seconds)


def test_a_429_with_an_http_date_is_a_rate_limit_not_a_crash() -> None:
    body = {"error": {"code": "rate_limited", "message": "slow down"}}
    error = errors.error_from_response(429, body, "Wed, 21 Oct 2015 07:28:00 GMT")
    assert isinstance(error, errors.RateLimited)
    assert error.retry_after == 0.0


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (404, {"error": {"code": "not_found", "message": "no such meeting"}}, errors.NotFound),
        (500, "<html>proxy error</html>", errors.ServerError),
        (418, [1, 2, 3], errors.InvalidRequest),
        (410, {"error": "gone"}, errors.MeetingEnded),
    ],
)
def test_any_error_body_maps_to_a_typed_error(status: int, body: object, kind: type) -> None:
    error = errors.error_from_response(status, body)
    assert isinstance(error, kind)
    assert error.status == status
