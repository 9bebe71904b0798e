"""AWS Lambda entry points: one Mangum-wrapped FastAPI app per concern, behind an HTTP API (payload 2.0).

Each function serves only its own router (API Gateway routes ``/auth/*`` to ``auth`` and so on), and
builds and imports only that: the Lambda runtime resolves ``functions.handlers.chat`` by importing this
module and reading its ``chat`` attribute, both in the init phase, and the attribute (PEP 562
``__getattr__``) builds the chat app, importing the chat routes and what they need, nothing of the other
concerns (no argon2, no S3 client code, no recordings routes). Measured by ``bench/cold_start.py``.

AWS clients are built lazily, per table on first use: a request touches two or three of the eight tables,
so building all eight at init (~40 ms each) costs more than it saves (measured: bench/cold_start.py).
``metrics.log_metrics`` flushes Powertools metrics (EMF) per
invocation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from functions.app import CONCERNS

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _handler(concern: str) -> Handler:
    from mangum import Mangum

    from functions.app import create_app
    from functions.core.observability import logger, metrics, tracer

    asgi = Mangum(create_app([concern], flush_metrics_per_request=False), lifespan="off")

    @metrics.log_metrics
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return asgi(event, context)

    if tracer is not None:  # X-Ray: in Lambda only (functions/core/observability.py)
        handle = tracer.capture_lambda_handler(handle)
    return logger.inject_lambda_context(handle, clear_state=True)  # type: ignore[no-any-return]


def __getattr__(name: str) -> Handler:
    """``auth``, ``settings``, ``meetings``, ``chat``, ``recordings``: built on first access, then kept."""
    if name not in CONCERNS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    handler = globals()[name] = _handler(name)
    return handler


__all__ = list(CONCERNS)
