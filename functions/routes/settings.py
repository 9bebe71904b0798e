"""User settings: display name, background (none/blur/image) and profile photo, with image uploads."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Response
from pynamodb.expressions.update import Action

from functions import storage
from functions.core.config import get_settings
from functions.core.deps import CurrentUser
from functions.core.errors import ApiError, error_responses
from functions.core.security import access_token_secret
from functions.models import UserModel
from meetup_protocol.schemas.settings import (
    MAX_IMAGE_BYTES,
    Background,
    ImageBackground,
    ImageUploadRequest,
    ImageUploadResponse,
    SettingsOut,
    SettingsUpdate,
)

router = APIRouter(prefix="/settings", tags=["settings"], responses=error_responses(400, 401, 422))

_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
_TYPES = {ext: content_type for content_type, ext in _EXTENSIONS.items()}
_MAGIC = {
    "image/jpeg": lambda b: b.startswith(b"\xff\xd8\xff"),
    "image/png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
}
#: The verified copy of an image: ``users/<id>/verified/<purpose>-<sha256>.<ext>``. Presigned forms only
#: ever target ``users/<id>/<purpose>/<uuid>.<ext>`` (exact key in the policy), never this folder.
_VERIFIED = "verified"
_IMAGE_NAME = r"^(photo|background)-[0-9a-f]{64}\.(jpg|png|webp)$"
#: Who may render an image served here: nobody may script it, frame it or sniff it into HTML.
_IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "same-site",
    "Referrer-Policy": "no-referrer",
}


def _user_prefix(user_id: str, purpose: str) -> str:
    return f"users/{user_id}/{purpose}/"


def _upload_key_pattern(user_id: str, purpose: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(_user_prefix(user_id, purpose))}[0-9a-f]{{32}}\.(jpg|png|webp)$")


def _signature(key: str, expires: int) -> str:
    secret = hmac.new(access_token_secret(), b"meetup-edge image urls", hashlib.sha256).digest()
    return hmac.new(secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()


def _image_url(key: str | None) -> str | None:
    """A signed, expiring link to a verified image, relative to the API's base URL (the web client is
    served from the API's origin; the SDK resolves it against its base URL).

    The expiry is rounded up to a whole TTL window, so repeated reads of the settings give the same URL
    and browsers reuse their cached copy; a link is valid for one to two TTLs.
    """
    if not key or f"/{_VERIFIED}/" not in key:
        return None  # never checked (set before images were verified): not served
    ttl = get_settings().presign_ttl_s
    expires = (int(time.time()) // ttl + 2) * ttl
    _, user_id, _, name = key.split("/")
    query = urlencode({"expires": expires, "signature": _signature(key, expires)})
    return f"/settings/images/{user_id}/{name}?{query}"


def _settings_out(user: UserModel) -> SettingsOut:
    bg_key = user.background_image_key if user.background_mode == "image" else None
    return SettingsOut(
        email=user.email,
        display_name=user.display_name,
        background=Background(mode=user.background_mode, image_key=bg_key),  # type: ignore[arg-type]
        background_image_url=_image_url(bg_key),
        photo_key=user.photo_key,
        photo_url=_image_url(user.photo_key),
    )


def _detect(data: bytes) -> str | None:
    return next((content_type for content_type, magic in _MAGIC.items() if magic(data)), None)


def _accept_uploaded_image(user_id: str, purpose: str, key: str, current: str | None) -> str:
    """Check the caller's upload once and copy the checked bytes to a key no upload can reach.

    Returns the verified key to store. The upload is deleted: its presigned form stays valid until it
    expires, but whatever it writes later is never served. ``current`` (the verified key already set)
    is accepted as it is.
    """
    if key == current:
        return key
    if not _upload_key_pattern(user_id, purpose).match(key):
        raise ApiError(403, "forbidden_key", f"that {purpose} key is not one of your uploads")
    data = storage.read_bounded(key, MAX_IMAGE_BYTES)
    if data is None:
        raise ApiError(400, "upload_missing", f"nothing was uploaded under that {purpose} key")
    content_type = _detect(data)
    if content_type is None or len(data) > MAX_IMAGE_BYTES:
        storage.delete(key)
        raise ApiError(
            400, "invalid_image", "the upload is not a JPEG, PNG or WebP image within the size limit"
        )
    ext = _EXTENSIONS[content_type]
    verified = f"users/{user_id}/{_VERIFIED}/{purpose}-{hashlib.sha256(data).hexdigest()}.{ext}"
    storage.put_verified(verified, data, content_type, f"{purpose}.{ext}")
    storage.delete(key)
    return verified


def _forget(old: str | None, new: str | None) -> None:
    """Delete a verified image the settings no longer use (its links then answer 404)."""
    if old and old != new and f"/{_VERIFIED}/" in old:
        storage.delete(old)


@router.get("")
def read_settings(user: CurrentUser) -> SettingsOut:
    return _settings_out(user)


@router.patch("", responses=error_responses(403))
def update_settings(body: SettingsUpdate, user: CurrentUser) -> SettingsOut:
    """Uploaded images (``photo_key``, ``background.image_key``) are checked (type by content, size) and
    copied to a verified key, which the answer's ``photo_key`` / ``background.image_key`` then hold."""
    actions: list[Action] = []
    replaced: list[tuple[str | None, str | None]] = []
    if body.display_name is not None:
        actions.append(UserModel.display_name.set(body.display_name))
    if body.background is not None:
        bg = body.background
        if isinstance(bg, ImageBackground):
            old = user.background_image_key
            key = _accept_uploaded_image(user.user_id, "background", bg.image_key, old)
            actions.append(UserModel.background_image_key.set(key))
            replaced.append((old, key))
        actions.append(UserModel.background_mode.set(bg.mode))
    if "photo_key" in body.model_fields_set:
        old = user.photo_key
        if body.photo_key is None:
            actions.append(UserModel.photo_key.remove())
            replaced.append((old, None))
        else:
            key = _accept_uploaded_image(user.user_id, "photo", body.photo_key, old)
            actions.append(UserModel.photo_key.set(key))
            replaced.append((old, key))
    if actions:
        user.update(actions=actions)
    for old, new in replaced:
        _forget(old, new)
    return _settings_out(user)


@router.get(
    "/images/{user_id}/{name}",
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in _EXTENSIONS}, "description": "the image"},
        **error_responses(403, 404),
    },
)
def get_image(
    user_id: Annotated[str, Path(pattern=r"^u_[0-9a-f]{32}$")],
    name: Annotated[str, Path(pattern=_IMAGE_NAME)],
    expires: Annotated[int, Query(ge=0, le=2**40)],
    signature: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")],
) -> Response:
    """A verified photo or background image, by the signed link in the settings (``photo_url``,
    ``background_image_url``): no token needed, so an ``<img>`` can load it.

    Served with the type its extension names (detected from its content when it was accepted),
    ``nosniff``, a download disposition and a sandboxing CSP: whatever the bytes, no browser runs them.
    """
    key = f"users/{user_id}/{_VERIFIED}/{name}"
    now = int(time.time())
    if not hmac.compare_digest(signature, _signature(key, expires)) or expires < now:
        raise ApiError(403, "link_invalid", "the image link is invalid or has expired")
    data = storage.read_bounded(key, MAX_IMAGE_BYTES)
    if not data or len(data) > MAX_IMAGE_BYTES:
        raise ApiError(404, "image_not_found", "no such image")
    ext = name.rsplit(".", 1)[1]
    purpose = name.split("-", 1)[0]
    headers = {
        **_IMAGE_HEADERS,
        "Content-Disposition": f'attachment; filename="{purpose}.{ext}"',
        "Cache-Control": f"private, max-age={expires - now}, immutable",
    }
    return Response(data, media_type=_TYPES[ext], headers=headers)


@router.post("/images", status_code=201)
def start_image_upload(body: ImageUploadRequest, user: CurrentUser) -> ImageUploadResponse:
    """Presigned upload of a profile photo or background image; then PATCH /settings with its key.

    The upload policy pins this exact key, the type and the declared size as the maximum (S3 enforces
    them); the upload is checked again (size, type by content) and copied to a verified key when it is
    set in the settings.
    """
    settings = get_settings()
    key = f"{_user_prefix(user.user_id, body.purpose)}{uuid.uuid4().hex}.{_EXTENSIONS[body.content_type]}"
    post = storage.presigned_post(key, body.content_type, body.size)
    return ImageUploadResponse(
        key=key,
        url=post["url"],
        fields=post["fields"],
        max_bytes=body.size,
        expires_in=settings.presign_ttl_s,
    )
