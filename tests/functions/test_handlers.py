"""The Lambda path: each Mangum handler invoked with a real API Gateway HTTP API (payload 2.0) event.

AWS Lambda itself cannot run here, so the runtime is the one part imitated: the handler is called as the
Lambda runtime would call it, with the documented event shape and a context object. DynamoDB and S3 are
the local stack's moto server, reached over HTTP like AWS.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

#: Mangum uses the main thread's current event loop, as in Lambda's runtime.
pytestmark = pytest.mark.usefixtures("lambda_event_loop")


@dataclass
class LambdaContext:
    function_name: str = "meetup-api"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:meetup-api"
    aws_request_id: str = ""
    log_group_name: str = "/aws/lambda/meetup-api"
    log_stream_name: str = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def http_api_event(
    method: str, path: str, body: Any = None, token: str | None = None, query: str = ""
) -> dict:
    """An API Gateway HTTP API v2 event as documented (payload format 2.0)."""
    headers = {"content-type": "application/json", "user-agent": "pytest", "host": "api.example.com"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "cookies": [],
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "pytest",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


@pytest.fixture
def handlers(stack, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    from functions import handlers

    return handlers


def invoke(
    handler, method: str, path: str, body: Any = None, token: str | None = None, query: str = ""
) -> tuple[int, Any]:
    result = handler(
        http_api_event(method, path, body, token, query), LambdaContext(aws_request_id=uuid.uuid4().hex)
    )
    payload = json.loads(result["body"]) if result.get("body") else None
    return result["statusCode"], payload


def test_every_handler_serves_its_concern_through_mangum(handlers, capfd, log_stream) -> None:
    email = f"lambda-{uuid.uuid4().hex[:8]}@example.com"
    status, user = invoke(
        handlers.auth,
        "POST",
        "/auth/register",
        {"email": email, "password": "pass-word-1", "display_name": "Lam"},
    )
    assert status == 201 and user["email"] == email
    status, tokens = invoke(handlers.auth, "POST", "/auth/login", {"email": email, "password": "pass-word-1"})
    assert status == 200
    token = tokens["access_token"]

    status, settings = invoke(
        handlers.settings, "PATCH", "/settings", {"background": {"mode": "blur"}}, token
    )
    assert status == 200 and settings["background"]["mode"] == "blur"

    status, meeting = invoke(handlers.meetings, "POST", "/meetings", {"title": "Via Lambda"}, token)
    assert status == 201
    mid = meeting["meeting_id"]
    status, joined = invoke(handlers.meetings, "POST", f"/meetings/{mid}/join", {}, token)
    assert status == 200 and joined["role"] == "host"

    status, message = invoke(
        handlers.chat,
        "POST",
        f"/meetings/{mid}/chat",
        {"text": "hi", "idempotency_key": "lambda-key-1"},
        token,
    )
    assert status == 201
    status, page = invoke(handlers.chat, "GET", f"/meetings/{mid}/chat", token=token, query="limit=5")
    assert status == 200 and [m["text"] for m in page["items"]] == ["hi"]

    status, plan = invoke(
        handlers.recordings,
        "POST",
        f"/meetings/{mid}/recordings",
        {"filename": "a.mp4", "content_type": "video/mp4", "size": 100},
        token,
    )
    assert status == 201 and len(plan["pending"]) == 1

    out = capfd.readouterr().out
    emf = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]
    names = {m["Name"] for doc in emf for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {
        "UsersRegistered",
        "MeetingsCreated",
        "ChatMessages",
    } <= names  # Powertools EMF, one flush per call
    logs = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    requests = [entry for entry in logs if entry["message"] == "request"]
    assert len(requests) == 8
    assert all(entry["function_name"] == "meetup-api" and entry["function_request_id"] for entry in requests)
    assert {entry["route"] for entry in requests} >= {"/auth/login", "/meetings/{meeting_id}/join"}


def test_a_handler_serves_only_its_own_routes(handlers) -> None:
    status, body = invoke(handlers.auth, "POST", "/meetings", {"title": "x"})
    assert status == 404 and body["error"]["code"] == "not_found"


def test_handler_errors_keep_the_json_shape(handlers) -> None:
    event = http_api_event("POST", "/auth/login")
    event["body"] = "{not json"
    result = handlers.auth(event, LambdaContext(aws_request_id="r1"))
    assert result["statusCode"] == 400
    assert json.loads(result["body"])["error"]["code"] == "malformed_json"
    status, body = invoke(handlers.meetings, "GET", "/meetings/1234567890", token="forged")
    assert status == 401 and body["error"]["code"] == "token_invalid"


def test_source_ip_of_the_event_feeds_the_passcode_throttle(handlers) -> None:
    """Throttles key on the caller's address: behind API Gateway that is requestContext.http.sourceIp."""
    from functions.models import ThrottleModel

    email = f"ip-{uuid.uuid4().hex[:8]}@example.com"
    invoke(
        handlers.auth,
        "POST",
        "/auth/register",
        {"email": email, "password": "pass-word-1", "display_name": "Ip"},
    )
    token = invoke(handlers.auth, "POST", "/auth/login", {"email": email, "password": "pass-word-1"})[1][
        "access_token"
    ]
    _, meeting = invoke(handlers.meetings, "POST", "/meetings", {}, token)
    email2 = f"ip2-{uuid.uuid4().hex[:8]}@example.com"
    invoke(
        handlers.auth,
        "POST",
        "/auth/register",
        {"email": email2, "password": "pass-word-1", "display_name": "Ip"},
    )
    token2 = invoke(handlers.auth, "POST", "/auth/login", {"email": email2, "password": "pass-word-1"})[1][
        "access_token"
    ]
    status, _ = invoke(
        handlers.meetings, "POST", f"/meetings/{meeting['meeting_id']}/join", {"passcode": "WRONG"}, token2
    )
    assert status == 403
    keys = [item.key for item in ThrottleModel.scan(ThrottleModel.key.startswith("passcode-ip#203.0.113.7#"))]
    assert keys, "the attempt was counted against the event's source IP"
