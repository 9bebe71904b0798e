"""The child side of the cold-start benchmark: one fresh interpreter plays one Lambda execution environment.

Run as ``python -m bench.cold_child SPEC.json OUT.json``. Only the standard library is imported before the
clock starts, so the timed imports are exactly what the Lambda's init phase would import. The handler is
invoked the way the Lambda runtime does: ``handler(event, context)`` with an API Gateway HTTP API event
(payload 2.0) and a stand-in context object.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import uuid
from typing import Any

_T0 = time.perf_counter()
_C0 = time.process_time()


class FakeLambdaContext:
    """The attributes Powertools' ``inject_lambda_context`` and Mangum read from the real context."""

    function_name = "meetup-bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:meetup-bench"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/meetup-bench"
    log_stream_name = "bench"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def http_api_event(method: str, path: str, body: dict[str, Any] | None, token: str | None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as the ``$default`` route delivers it."""
    raw = json.dumps(body) if body is not None else ""
    headers = {"host": "api.example.com", "user-agent": "meetup-bench", "accept": "application/json"}
    if body is not None:
        headers |= {"content-type": "application/json", "content-length": str(len(raw.encode()))}
    if token:
        headers["authorization"] = f"Bearer {token}"
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "meetup-bench",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": raw or None,
        "isBase64Encoded": False,
    }


def _event(spec: dict[str, Any]) -> dict[str, Any]:
    body = dict(spec["body"]) if spec.get("body") is not None else None
    if body is not None and spec.get("fresh_key"):
        body["idempotency_key"] = uuid.uuid4().hex  # a new chat message every time
    return http_api_event(spec["method"], spec["path"], body, spec.get("token"))


def _invoke(handler: Any, spec: dict[str, Any]) -> tuple[float, float, int]:
    event, context = _event(spec), FakeLambdaContext()
    t, c = time.perf_counter(), time.process_time()
    response = handler(event, context)
    return time.perf_counter() - t, time.process_time() - c, int(response["statusCode"])


def main(spec_path: str, out_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    concern = spec["concern"]

    # What the Lambda runtime does in its init phase for handler "functions.handlers.<concern>": import the
    # module, then read the attribute (which builds that concern's app, importing only its routes).
    t, c = time.perf_counter(), time.process_time()
    import functions.handlers

    module = (time.perf_counter() - t, time.process_time() - c)
    t, c = time.perf_counter(), time.process_time()
    handler = getattr(functions.handlers, concern)
    resolve = (time.perf_counter() - t, time.process_time() - c)
    init_done = (time.perf_counter() - _T0, time.process_time() - _C0)
    modules_at_init = len(sys.modules)

    first_wall, first_cpu, first_status = _invoke(handler, spec)
    warm = [_invoke(handler, spec) for _ in range(int(spec["warm_requests"]))]

    # What one concern's app alone costs to build (imports are warm by now).
    from mangum import Mangum

    from functions.app import create_app

    t, c = time.perf_counter(), time.process_time()
    Mangum(create_app([concern]), lifespan="off")
    one_app = (time.perf_counter() - t, time.process_time() - c)

    result = {
        "concern": concern,
        "request": f"{spec['method']} {spec['path_template']}",
        "module_import_ms": {"wall": module[0] * 1000, "cpu": module[1] * 1000},
        "handler_resolve_ms": {"wall": resolve[0] * 1000, "cpu": resolve[1] * 1000},
        "import_ms": {"wall": (module[0] + resolve[0]) * 1000, "cpu": (module[1] + resolve[1]) * 1000},
        "init_ms": {"wall": init_done[0] * 1000, "cpu": init_done[1] * 1000},
        "one_app_build_ms": {"wall": one_app[0] * 1000, "cpu": one_app[1] * 1000},
        "first_request_ms": {"wall": first_wall * 1000, "cpu": first_cpu * 1000},
        "first_status": first_status,
        "warm_request_ms": {
            "wall": statistics.median(w for w, _, _ in warm) * 1000,
            "cpu": statistics.median(c for _, c, _ in warm) * 1000,
        },
        "warm_statuses": sorted({s for _, _, s in warm}),
        "warm_requests": len(warm),
        "modules_at_init": modules_at_init,
    }
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
