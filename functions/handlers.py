"""AWS Lambda entry points: one Mangum-wrapped FastAPI app per concern, behind an HTTP API (payload 2.0).

Each function loads only its own router, so a cold start imports and builds only what it serves. The
``metrics.log_metrics`` decorator flushes Powertools metrics (EMF) at the end of each invocation.
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from functions.app import create_app
from functions.core.observability import logger, metrics, tracer


def _handler(concern: str) -> Any:
    asgi = Mangum(create_app([concern], flush_metrics_per_request=False), lifespan="off")

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return asgi(event, context)

    return handle


auth = _handler("auth")
settings = _handler("settings")
meetings = _handler("meetings")
chat = _handler("chat")
recordings = _handler("recordings")
