"""The control-plane API as FastAPI apps: the whole API (local stack) or one concern (one Lambda)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from functions import storage
from functions.core.config import get_settings
from functions.core.errors import error_responses, install_error_handlers
from functions.core.limits import BodySizeLimit
from functions.core.observability import access_log_middleware, flush_request_metrics
from functions.models import warm_connections
from functions.routes import auth, chat, meetings, recordings, settings

ROUTERS: dict[str, APIRouter] = {
    "auth": auth.router,
    "settings": settings.router,
    "meetings": meetings.router,
    "chat": chat.router,
    "recordings": recordings.router,
}


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Server start-up (uvicorn): build the AWS clients before the first request needs them."""
    warm_connections()
    storage.s3()
    yield


def create_app(concerns: Iterable[str] = ROUTERS, *, flush_metrics_per_request: bool = True) -> FastAPI:
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
        app.include_router(ROUTERS[name], responses=error_responses(413))

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
