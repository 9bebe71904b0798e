"""The control-plane API as FastAPI apps: the whole API (local stack) or one concern (one Lambda).

A concern's routes are imported only when an app serving it is built (``functions/routes/<concern>.py``):
the chat Lambda never loads argon2, S3 or the recordings routes (its cold start pays for what it serves).
``ROUTERS`` (every concern's router, for the infra and the tests) imports them all on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from functions.core.config import get_settings
from functions.core.errors import error_responses, install_error_handlers
from functions.core.limits import BodySizeLimit
from functions.core.observability import access_log_middleware, flush_request_metrics
from functions.routes import CONCERNS

__all__ = ["CONCERNS", "create_app", "router"]  # and ROUTERS (module __getattr__)


def router(concern: str) -> APIRouter:
    """The router of one concern, importing its module (and only its dependencies) on first use."""
    if concern not in CONCERNS:
        raise KeyError(concern)
    return importlib.import_module(f"functions.routes.{concern}").router  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    """``ROUTERS``: every concern's router by name (imports every route module)."""
    if name == "ROUTERS":
        return {concern: router(concern) for concern in CONCERNS}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Server start-up (uvicorn): build the AWS clients before the first request needs them."""
    from functions import storage
    from functions.models import warm_connections

    warm_connections()
    storage.s3()
    yield


def create_app(concerns: Iterable[str] = CONCERNS, *, flush_metrics_per_request: bool = True) -> FastAPI:
    """The API with the given routers. Lambda handlers pass ``flush_metrics_per_request=False``: there
    Powertools' ``log_metrics`` flushes once per invocation."""
    app = FastAPI(
        lifespan=_lifespan,
        title="meetup-edge API",
        version="0.1.0",
        description="Accounts, settings, meetings, chat and recordings of meetup-edge.",
    )
    for name in concerns:
        # Any request may be too large (413).
        app.include_router(router(name), responses=error_responses(413))

    @app.get("/healthz", tags=["ops"], include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    install_error_handlers(app)
    if flush_metrics_per_request:

        @app.middleware("http")
        async def _flush_metrics(request, call_next):  # type: ignore[no-untyped-def]
            try:
                return await call_next(request)
            finally:
                flush_request_metrics()

    app.middleware("http")(access_log_middleware)
    app.add_middleware(BodySizeLimit, max_bytes=get_settings().max_request_bytes)
    return app
