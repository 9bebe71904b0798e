"""The control-plane API as FastAPI apps: the whole API (local stack) or one concern (one Lambda)."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI

from functions.core.config import get_settings
from functions.core.errors import install_error_handlers
from functions.core.limits import BodySizeLimit
from functions.core.observability import access_log_middleware
from functions.routes import auth, chat, meetings, recordings, settings

ROUTERS: dict[str, APIRouter] = {
    "auth": auth.router,
    "settings": settings.router,
    "meetings": meetings.router,
    "chat": chat.router,
    "recordings": recordings.router,
}


def create_app(concerns: Iterable[str] = ROUTERS) -> FastAPI:
    app = FastAPI(
        title="meetup-edge API",
        version="0.1.0",
        description="Accounts, settings, meetings, chat and recordings of meetup-edge.",
    )
    for name in concerns:
        app.include_router(ROUTERS[name])

    @app.get("/healthz", tags=["ops"], include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    install_error_handlers(app)
    app.middleware("http")(access_log_middleware)
    app.add_middleware(BodySizeLimit, max_bytes=get_settings().max_request_bytes)
    return app
