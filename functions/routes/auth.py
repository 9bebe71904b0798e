"""Accounts: register, login, refresh, logout, me."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from pynamodb.exceptions import TransactWriteError

from functions.core.client_address import client_address, throttle_subject
from functions.core.config import get_settings
from functions.core.deps import CurrentUser
from functions.core.errors import ApiError, error_responses
from functions.core.observability import count
from functions.core.rate_limit import spend
from functions.core.security import (
    access_token_secret,
    digest,
    dummy_hash,
    hash_secret,
    verify_secret,
)
from functions.core.throttle import Attempt, Bucket
from functions.models import EmailModel, UserModel
from functions.models.base import transaction, utcnow
from functions.services import sessions
from meetup_protocol.schemas.auth import LoginRequest, RefreshRequest, RegisterRequest, TokenResponse, UserOut
from meetup_protocol.tokens import issue_access_token

router = APIRouter(prefix="/auth", tags=["auth"], responses=error_responses(400, 422))


def user_out(user: UserModel) -> UserOut:
    return UserOut(
        user_id=user.user_id, email=user.email, display_name=user.display_name, created_at=user.created_at
    )


def _tokens(user: UserModel, refresh_token: str) -> TokenResponse:
    settings = get_settings()
    return TokenResponse(
        access_token=issue_access_token(user.user_id, access_token_secret(), settings.access_token_ttl_s),
        expires_in=settings.access_token_ttl_s,
        refresh_token=refresh_token,
        user=user_out(user),
    )


@router.post("/register", status_code=201, responses=error_responses(409, 429))
def register(body: RegisterRequest, request: Request) -> UserOut:
    # Every account is a fresh per-user guessing budget: accounts per address are counted and capped.
    address = throttle_subject(client_address(request))
    spend("register-ip", address, get_settings().registrations_per_ip, "new accounts from one address")
    user = UserModel(
        f"u_{uuid.uuid4().hex}",
        email=body.email,
        display_name=body.display_name,
        password_hash=hash_secret(body.password),
        created_at=utcnow(),
    )
    try:
        with transaction() as tx:
            tx.save(EmailModel(body.email, user_id=user.user_id), condition=EmailModel.email.does_not_exist())
            tx.save(user, condition=UserModel.user_id.does_not_exist())
    except TransactWriteError as exc:
        if any(r is not None and r.code == "ConditionalCheckFailed" for r in exc.cancellation_reasons):
            raise ApiError(409, "email_taken", "an account with this email exists") from exc
        raise
    count("UsersRegistered")
    return user_out(user)


@router.post("/login", responses=error_responses(401, 429))
def login(body: LoginRequest, request: Request) -> TokenResponse:
    settings = get_settings()
    address = throttle_subject(client_address(request))
    attempt = Attempt(
        [
            Bucket("login-email", digest(body.email), settings.login_failures_per_email),
            Bucket("login-ip", address, settings.login_failures_per_ip),  # one address, many accounts
        ]
    )
    try:
        user_id = EmailModel.get(body.email, consistent_read=True).user_id
        user = UserModel.get(user_id, consistent_read=True)
    except (EmailModel.DoesNotExist, UserModel.DoesNotExist):
        verify_secret(dummy_hash(), body.password)  # both cases cost one verification
        attempt.failed()
        raise ApiError(401, "invalid_credentials", "wrong email or password") from None
    if not verify_secret(user.password_hash, body.password):
        attempt.failed()
        raise ApiError(401, "invalid_credentials", "wrong email or password")
    attempt.succeeded()
    count("Logins")
    return _tokens(user, sessions.start_family(user.user_id))


@router.post("/refresh", responses=error_responses(401))
def refresh(body: RefreshRequest) -> TokenResponse:
    """Trade a refresh token for new tokens. Each works once (rotation); presenting a used one again
    revokes every token of its login (functions/services/sessions.py)."""
    user_id, refresh_token = sessions.rotate(body.refresh_token)
    try:
        user = UserModel.get(user_id, consistent_read=True)
    except UserModel.DoesNotExist:
        raise ApiError(401, "token_invalid", "the account no longer exists") from None
    return _tokens(user, refresh_token)


@router.post("/logout", status_code=204, response_class=Response)
def logout(body: RefreshRequest) -> Response:
    """End the refresh token's login: it and every token rotated from or to it stop working. Access tokens
    already issued are not tracked: they expire on their own within ``access_token_ttl_s`` (900 s)."""
    sessions.revoke(body.refresh_token)
    return Response(status_code=204)


@router.get("/me", responses=error_responses(401))
def me(user: CurrentUser) -> UserOut:
    return user_out(user)
