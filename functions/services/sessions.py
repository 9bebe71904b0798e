"""Refresh-token families: start one at login, rotate on refresh, revoke on logout or on reuse.

Rotation is one DynamoDB transaction: mark the presented token rotated (only if it was not already),
check its family is not revoked (and extend the family's TTL), store the next token. Two concurrent
presentations of one token cannot both pass the first condition; the loser is a reuse like any other and
revokes the family. See functions/models/sessions.py for the rows.

Access tokens are not tied to a family: they are verified without a lookup and live
``access_token_ttl_s`` (900 s) after a logout or a revocation. Checking a revocation list on every request
would cost a read per call; fifteen minutes is the documented bound instead.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import timedelta

from pynamodb.exceptions import PutError, TransactWriteError

from functions.core.config import get_settings
from functions.core.errors import ApiError
from functions.core.observability import count, logger
from functions.core.security import digest, new_refresh_token
from functions.models import RefreshFamilyModel, RefreshTokenModel
from functions.models.base import transaction, utcnow


def _invalid() -> ApiError:
    return ApiError(401, "token_invalid", "the refresh token is not valid")


def start_family(user_id: str) -> str:
    """A fresh refresh token opening a new family (a login)."""
    token, now = new_refresh_token(), utcnow()
    expires = now + timedelta(seconds=get_settings().refresh_token_ttl_s)
    family_id = secrets.token_urlsafe(16)
    with transaction() as tx:
        tx.save(
            RefreshFamilyModel(RefreshFamilyModel.key_of(family_id), user_id=user_id, expires_at=expires),
            condition=RefreshFamilyModel.key.does_not_exist(),
        )
        tx.save(
            RefreshTokenModel(
                digest(token), user_id=user_id, family_id=family_id, created_at=now, expires_at=expires
            ),
            condition=RefreshTokenModel.token_digest.does_not_exist(),
        )
    return token


def rotate(token: str) -> tuple[str, str]:
    """Trade a live refresh token for the next one of its family: ``(user_id, next token)``.

    A token that was already traded (reuse) revokes its family; then the family's newest token is dead too.
    """
    try:
        stored = RefreshTokenModel.get(digest(token), consistent_read=True)
    except RefreshTokenModel.DoesNotExist:
        raise _invalid() from None
    family_id = stored.family_id or _adopt_legacy(stored)
    if stored.rotated_at is not None:
        revoke_family(family_id, reason="reuse")
        raise _invalid()
    now = utcnow()
    if stored.expires_at <= now:
        raise ApiError(401, "token_expired", "the refresh token has expired")
    following = new_refresh_token()
    expires = now + timedelta(seconds=get_settings().refresh_token_ttl_s)
    family = RefreshFamilyModel(RefreshFamilyModel.key_of(family_id))
    try:
        with transaction() as tx:
            tx.update(
                stored,
                actions=[RefreshTokenModel.rotated_at.set(now), RefreshTokenModel.family_id.set(family_id)],
                condition=RefreshTokenModel.rotated_at.does_not_exist(),
            )
            tx.update(
                family,
                actions=[RefreshFamilyModel.expires_at.set(expires)],
                condition=RefreshFamilyModel.key.exists() & RefreshFamilyModel.revoked_at.does_not_exist(),
            )
            tx.save(
                RefreshTokenModel(
                    digest(following),
                    user_id=stored.user_id,
                    family_id=family_id,
                    created_at=now,
                    expires_at=expires,
                ),
                condition=RefreshTokenModel.token_digest.does_not_exist(),
            )
    except TransactWriteError as exc:
        # Decided by the state, not by the cancellation reasons (their codes and order vary with the
        # store): if the token is spent now, a concurrent presentation of it won, and this is a reuse.
        stored.refresh(consistent_read=True)
        if stored.rotated_at is not None:
            revoke_family(family_id, reason="reuse")
        raise _invalid() from exc
    return stored.user_id, following


def revoke(token: str) -> None:
    """Logout: end the token's whole family. Unknown tokens are fine (logging out twice is no error)."""
    try:
        stored = RefreshTokenModel.get(digest(token), consistent_read=True)
    except RefreshTokenModel.DoesNotExist:
        return
    revoke_family(stored.family_id or stored.token_digest, reason="logout")


def revoke_family(family_id: str, reason: str) -> None:
    now = utcnow()
    RefreshFamilyModel(RefreshFamilyModel.key_of(family_id)).update(
        actions=[
            RefreshFamilyModel.revoked_at.set(now),
            RefreshFamilyModel.expires_at.set(now + timedelta(seconds=get_settings().refresh_token_ttl_s)),
        ]
    )
    if reason == "reuse":
        count("RefreshTokenReuse")
        logger.warning("refresh token reused: its family is revoked")


def _adopt_legacy(stored: RefreshTokenModel) -> str:
    """A token from before families: its own digest names its family (the same for concurrent callers)."""
    family_id = stored.token_digest
    with contextlib.suppress(PutError):  # adopted already (or revoked by a logout)
        RefreshFamilyModel(
            RefreshFamilyModel.key_of(family_id), user_id=stored.user_id, expires_at=stored.expires_at
        ).save(condition=RefreshFamilyModel.key.does_not_exist())
    return family_id
