"""AWS Lambda entry points: one Mangum-wrapped FastAPI app per concern, behind an HTTP API (payload 2.0).

Each function serves only its own router (API Gateway routes ``/auth/*`` to ``auth`` and so on), and
builds and imports only that: the Lambda runtime resolves ``functions.handlers.chat`` by importing this
module and reading its ``chat`` attribute, both in the init phase. Importing the module loads nothing;
the attribute (PEP 562 ``__getattr__``) imports FastAPI, Powertools and the chat routes with what they
need, nothing of the other concerns (no argon2, no S3 code, no recordings routes), and builds the app.

That init allocates ~120,000 long-lived objects (modules, classes, pydantic schemas) and almost no
garbage, yet with the garbage collector on it ran two full collections over them (~85 ms of the
import). So the collector is off while a handler is built, and what the build made is then frozen
(``gc.freeze``): later collections, in requests, do not scan it either. The few hundred objects of
cyclic garbage the build leaves are kept (no measurable memory). Measured by bench/cold_start.py.

AWS clients are built lazily, on first use; every table shares one botocore session
(functions/core/aws.py), so the first table a request touches costs a client (~40 ms), each further
one ~2 ms. ``metrics.log_metrics`` flushes Powertools metrics (EMF) per invocation.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from functions.routes import CONCERNS

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _build(concern: str) -> Handler:
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


def _handler(concern: str) -> Handler:
    """The concern's handler, built with the garbage collector off; what it built is then frozen."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _build(concern)
    finally:
        if collecting:
            gc.freeze()
            gc.enable()


def __getattr__(name: str) -> Handler:
    """``auth``, ``settings``, ``meetings``, ``chat``, ``recordings``: built on first access, then kept."""
    if name not in CONCERNS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        handler = _handler(name)
    except AttributeError as exc:
        # Not "no such handler" (the Lambda runtime would report "Handler missing on module"): a bug.
        raise RuntimeError(f"building the {name} handler failed: {exc!r}") from exc
    globals()[name] = handler
    return handler


__all__ = list(CONCERNS)
