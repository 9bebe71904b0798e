"""AWS Lambda entry points: one Mangum-wrapped FastAPI app per concern, behind an HTTP API (payload 2.0).

Each function serves only its own router (API Gateway routes ``/auth/*`` to ``auth`` and so on). Importing
this module builds all five apps (~1 ms each). AWS clients are built lazily, per table on first use: a
request touches two or three of the eight tables, so building all eight at init (~40 ms each) costs more
than it saves (measured: bench/cold_start.py). ``metrics.log_metrics`` flushes Powertools metrics (EMF)
per invocation.
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
