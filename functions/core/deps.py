"""FastAPI dependencies: who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from functions.core.errors import ApiError
from functions.core.security import access_token_secret
from functions.models import UserModel
from meetup_protocol.tokens import TokenError, verify_access_token

_bearer = HTTPBearer(auto_error=False, description="an access token from /auth/login or /auth/refresh")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def current_user_id(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None:
        raise ApiError(
            401, "not_authenticated", "send an access token as 'Authorization: Bearer ...'", _CHALLENGE
        )
    try:
        return verify_access_token(credentials.credentials, access_token_secret())
    except TokenError as exc:
        raise ApiError(401, exc.code, str(exc), _CHALLENGE) from exc


def current_user(user_id: Annotated[str, Depends(current_user_id)]) -> UserModel:
    try:
        return UserModel.get(user_id, consistent_read=True)
    except UserModel.DoesNotExist as exc:
        raise ApiError(401, "token_invalid", "the account no longer exists", _CHALLENGE) from exc


UserId = Annotated[str, Depends(current_user_id)]
CurrentUser = Annotated[UserModel, Depends(current_user)]
