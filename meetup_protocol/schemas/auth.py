"""Accounts and tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, StringConstraints

from meetup_protocol.schemas.base import DisplayName, StrictRequest

Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        max_length=254,
        # Controls (C0, DEL, C1) spelled out: Python's \s also matches \x1c-\x1f and \x85, JSON Schema's
        # (ECMAScript's) does not, and the published schema must mean what the API checks.
        pattern=r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+\.[^@\s\x00-\x1f\x7f-\x9f]+$",
    ),
]
NewPassword = Annotated[str, StringConstraints(min_length=8, max_length=128)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]
RefreshToken = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class RegisterRequest(StrictRequest):
    email: Email
    password: NewPassword
    display_name: DisplayName


class LoginRequest(StrictRequest):
    email: Email
    password: Password


class RefreshRequest(StrictRequest):
    refresh_token: RefreshToken


class UserOut(BaseModel):
    user_id: str
    email: str
    display_name: str
    created_at: datetime


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a token type, not a secret)
    expires_in: int
    refresh_token: str
    user: UserOut
