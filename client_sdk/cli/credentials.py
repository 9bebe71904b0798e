"""Where the CLI keeps the user's session: ``$XDG_CONFIG_HOME/meetup-edge/session.json``, mode 0600.

Only tokens are stored (never the password). The access token is short-lived; the refresh token rotates
on use, so the file is rewritten after every command that talked to the API.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import typer

from client_sdk.client import Client

DEFAULT_API = "http://127.0.0.1:8000"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "meetup-edge"


def session_path() -> Path:
    return config_dir() / "session.json"


def load() -> dict[str, Any]:
    try:
        return json.loads(session_path().read_text())
    except (OSError, ValueError):
        return {}


def save(session: dict[str, Any]) -> None:
    path = session_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(session, out)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def clear() -> None:
    session_path().unlink(missing_ok=True)


def api_url(option: str | None) -> str:
    return option or os.environ.get("MEETUP_API_URL") or load().get("api_url") or DEFAULT_API


@asynccontextmanager
async def client(api: str | None = None, *, require_login: bool = True) -> AsyncIterator[Client]:
    """A Client with the saved session; saves rotated tokens when done."""
    session = load()
    url = api_url(api)
    if require_login and not session.get("refresh_token"):
        raise typer.BadParameter("not logged in: run 'meet login' first")
    sdk = Client(url, access_token=session.get("access_token"), refresh_token=session.get("refresh_token"))
    try:
        yield sdk
    finally:
        if sdk.refresh_token and sdk.refresh_token != session.get("refresh_token"):
            save(
                {
                    **session,
                    "api_url": url,
                    "access_token": sdk.access_token,
                    "refresh_token": sdk.refresh_token,
                }
            )
        await sdk.aclose()
