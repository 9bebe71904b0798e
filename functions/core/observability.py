"""Powertools Logger, Metrics and Tracer, shared by every function.

Service name and namespace come from the standard ``POWERTOOLS_*`` environment variables, so each Lambda
names itself. Nothing here logs request bodies, headers or query strings: they carry passwords, passcodes
and tokens. The local stack sets ``POWERTOOLS_METRICS_DISABLED``.

The Tracer (X-Ray) exists only where Powertools would trace: inside Lambda, unless
``POWERTOOLS_TRACE_DISABLED``. Elsewhere (local stack, tests, the cold-start benchmark) a Tracer disables
itself but still imports the X-Ray SDK, whose recorder builds two botocore X-Ray clients at import
(~65 ms; aws-xray-sdk-python issues 273 and 311); ``tracer`` is None there instead.

In Lambda the Tracer patches, at init, the libraries the control plane calls out through: botocore (S3,
and DynamoDB under PynamoDB), PynamoDB, and http.client (the relay notices' urllib). Powertools' default,
``patch_all``, imports every library X-Ray knows that is installed (sqlite3, requests, httpx, database
drivers ...) only to patch it: ~60-100 ms of init for calls this code never makes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "meetup-api")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MeetupEdge")

logger = Logger()
metrics = Metrics()


def tracing_enabled() -> bool:
    """Powertools' own rule (``Tracer._is_tracer_disabled``): trace in Lambda, not in SAM local or Chalice
    local, not when ``POWERTOOLS_TRACE_DISABLED`` is true. tests/functions/test_handler_imports.py holds it
    to it."""
    if resolve_truthy_env_var_choice(env=os.getenv(constants.TRACER_DISABLED_ENV, "false")):
        return False
    in_lambda = bool(os.getenv(constants.LAMBDA_TASK_ROOT_ENV))
    emulated = bool(os.getenv(constants.SAM_LOCAL_ENV) or os.getenv(constants.CHALICE_LOCAL_ENV))
    return in_lambda and not emulated


#: What X-Ray instruments (aws_xray_sdk.core.patcher names): everything functions/ sends over the network.
TRACED_MODULES = ("botocore", "pynamodb", "httplib")


def _tracer() -> Tracer | None:
    if not tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(patch_modules=TRACED_MODULES)


tracer = _tracer()


def route_template(request: Request) -> str:
    """The matched route's template (``/meetings/{meeting_id}``), never the raw path with its values."""
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")


def flush_request_metrics() -> None:
    """Outside Lambda (uvicorn) nothing flushes per invocation: emit, or drop when disabled, per request."""
    if is_metrics_disabled():
        metrics.clear_metrics()
    elif metrics.metric_set:
        metrics.flush_metrics()


async def access_log_middleware(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    elapsed_ms = (time.perf_counter() - started) * 1000
    route = route_template(request)
    logger.info(
        "request",
        extra={
            "method": request.method,
            "route": route,
            "status": response.status_code,
            "duration_ms": round(elapsed_ms, 2),
        },
    )
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=round(elapsed_ms, 2))
    if response.status_code >= 500:
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
    elif response.status_code >= 400:
        metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
    return response


def count(name: str, value: float = 1) -> None:
    """Count a business event (``UsersRegistered``, ``MeetingsCreated`` ...)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
