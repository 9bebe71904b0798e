"""Secrets never reach the logs: passwords, passcodes, access, refresh and join tokens."""

from __future__ import annotations

import io
import json

from tests.conftest import Api


def test_a_whole_flow_logs_no_secret(api: Api, log_stream: io.StringIO) -> None:
    host, guest = api.new_user("Host"), api.new_user("Guest")
    meeting = api.new_meeting(host, passcode="Sesame123")
    api.join(meeting, guest, "WrongOne9")
    joined = api.join(meeting, guest).json()
    refreshed = api.post("/auth/refresh", json={"refresh_token": guest.refresh_token}).json()
    api.post("/auth/login", json={"email": guest.email, "password": "not-" + guest.password})
    api.post("/auth/register", json={"email": "bad", "password": "short-secret", "display_name": "x"})
    api.get("/auth/me", headers={"Authorization": "Bearer forged.token.value"})

    lines = log_stream.getvalue().splitlines()
    assert len(lines) >= 8 and all(json.loads(line) for line in lines)  # structured JSON, one per line
    text = log_stream.getvalue()
    secrets = [
        host.password,
        guest.password,
        "not-" + guest.password,
        "short-secret",
        "SESAME123",
        "Sesame123",
        "WrongOne9",
        host.access_token,
        guest.refresh_token,
        refreshed["access_token"],
        refreshed["refresh_token"],
        joined["join_token"],
        "forged.token.value",
    ]
    leaked = [s for s in secrets if s in text]
    assert leaked == []
