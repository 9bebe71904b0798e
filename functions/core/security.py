"""Secrets at rest and in flight: password/passcode hashing, signing keys, refresh and meeting codes.

argon2 is imported on first hash or verification, not with this module: the chat, settings and recordings
Lambdas use the codes and keys here but never hash a secret, and should not load it at cold start.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache
from typing import TYPE_CHECKING

from functions.core.config import get_settings
from meetup_protocol.tokens import load_private_key

if TYPE_CHECKING:
    from argon2 import PasswordHasher
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# Passcodes avoid look-alike characters (0/O, 1/I/L) so people can type them from a screen.
PASSCODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
PASSCODE_LENGTH = 8  # ~40 bits: with the throttles, out of reach of brute force.
MEETING_ID_DIGITS = 10


@lru_cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    s = get_settings()
    return PasswordHasher(time_cost=s.argon2_time_cost, memory_cost=s.argon2_memory_kib, parallelism=1)


def hash_secret(secret: str) -> str:
    """argon2id hash of a password or a meeting passcode."""
    return _hasher().hash(secret)


@lru_cache
def dummy_hash() -> str:
    """A hash of a random secret nobody knows: verified against when there is nothing to verify (an unknown
    email, a missing meeting), so that case costs one argon2 verification like the real one."""
    return hash_secret(secrets.token_urlsafe(16))


def verify_secret(hashed: str, secret: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


def new_refresh_token() -> str:
    return "rt_" + secrets.token_urlsafe(32)


def digest(value: str) -> str:
    """SHA-256 of a high-entropy token: how refresh tokens are stored (a lookup key, not a password)."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_meeting_id() -> str:
    """Ten digits, never starting with 0 (so it survives being read as a number)."""
    rest = "".join(secrets.choice("0123456789") for _ in range(MEETING_ID_DIGITS - 1))
    return secrets.choice("123456789") + rest


def normalize_meeting_id(raw: str) -> str:
    """People type ``123 456 7890`` or ``123-456-7890``; store and look up the bare digits."""
    return "".join(ch for ch in raw if ch not in " -")


def new_passcode() -> str:
    return "".join(secrets.choice(PASSCODE_ALPHABET) for _ in range(PASSCODE_LENGTH))


def normalize_passcode(raw: str) -> str:
    return raw.strip().upper()


def load_secret_from_arn(arn: str) -> str:
    from aws_lambda_powertools.utilities import parameters

    return str(parameters.get_secret(arn, max_age=300))


@lru_cache
def access_token_secret() -> bytes:
    s = get_settings()
    if s.jwt_secret is not None:
        return s.jwt_secret.get_secret_value().encode()
    if s.jwt_secret_arn:
        return load_secret_from_arn(s.jwt_secret_arn).encode()
    raise RuntimeError("set MEETUP_JWT_SECRET or MEETUP_JWT_SECRET_ARN")


@lru_cache
def join_signing_key() -> Ed25519PrivateKey:
    s = get_settings()
    if s.join_private_key is not None:
        return load_private_key(s.join_private_key.get_secret_value())
    if s.join_private_key_arn:
        return load_private_key(load_secret_from_arn(s.join_private_key_arn))
    raise RuntimeError("set MEETUP_JOIN_PRIVATE_KEY or MEETUP_JOIN_PRIVATE_KEY_ARN")
