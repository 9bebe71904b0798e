"""User settings: display name, background (none/blur/image) and profile photo, with image uploads."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pynamodb.expressions.update import Action

from functions import storage
from functions.core.config import get_settings
from functions.core.deps import CurrentUser
from functions.core.errors import ApiError, error_responses
from functions.models import UserModel
from functions.schemas.settings import (
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
_MAGIC = {
    "image/jpeg": lambda b: b.startswith(b"\xff\xd8\xff"),
    "image/png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
}


def _user_prefix(user_id: str, purpose: str) -> str:
    return f"users/{user_id}/{purpose}/"


def _settings_out(user: UserModel) -> SettingsOut:
    bg_key = user.background_image_key if user.background_mode == "image" else None
    return SettingsOut(
        email=user.email,
        display_name=user.display_name,
        background=Background(mode=user.background_mode, image_key=bg_key),  # type: ignore[arg-type]
        background_image_url=storage.presigned_get(bg_key) if bg_key else None,
        photo_key=user.photo_key,
        photo_url=storage.presigned_get(user.photo_key) if user.photo_key else None,
    )


def _check_uploaded_image(user_id: str, purpose: str, key: str) -> None:
    """The key must be the caller's own upload, present, within the size limit and really an image."""
    if not key.startswith(_user_prefix(user_id, purpose)) or ".." in key:
        raise ApiError(403, "forbidden_key", f"that {purpose} key is not one of your uploads")
    meta = storage.head(key)
    if meta is None:
        raise ApiError(400, "upload_missing", f"nothing was uploaded under that {purpose} key")
    content_type = meta.get("ContentType", "")
    if content_type not in _MAGIC or meta.get("ContentLength", 0) > MAX_IMAGE_BYTES:
        storage.delete(key)
        raise ApiError(
            400, "invalid_image", "the upload is not a JPEG, PNG or WebP image within the size limit"
        )
    if not _MAGIC[content_type](storage.read_prefix(key, 16)):
        storage.delete(key)
        raise ApiError(400, "invalid_image", f"the upload's content is not {content_type}")


@router.get("")
def read_settings(user: CurrentUser) -> SettingsOut:
    return _settings_out(user)


@router.patch("", responses=error_responses(403))
def update_settings(body: SettingsUpdate, user: CurrentUser) -> SettingsOut:
    actions: list[Action] = []
    if body.display_name is not None:
        actions.append(UserModel.display_name.set(body.display_name))
    if body.background is not None:
        bg = body.background
        if isinstance(bg, ImageBackground):
            _check_uploaded_image(user.user_id, "background", bg.image_key)
            actions.append(UserModel.background_image_key.set(bg.image_key))
        actions.append(UserModel.background_mode.set(bg.mode))
    if "photo_key" in body.model_fields_set:
        if body.photo_key is None:
            actions.append(UserModel.photo_key.remove())
        else:
            _check_uploaded_image(user.user_id, "photo", body.photo_key)
            actions.append(UserModel.photo_key.set(body.photo_key))
    if actions:
        user.update(actions=actions)
    return _settings_out(user)


@router.post("/images", status_code=201)
def start_image_upload(body: ImageUploadRequest, user: CurrentUser) -> ImageUploadResponse:
    """Presigned upload of a profile photo or background image; then PATCH /settings with its key.

    The declared size is checked here, the upload policy caps the real size, and the key is checked
    again (size, type, magic bytes) when it is set in the settings.
    """
    settings = get_settings()
    key = f"{_user_prefix(user.user_id, body.purpose)}{uuid.uuid4().hex}.{_EXTENSIONS[body.content_type]}"
    post = storage.presigned_post(key, body.content_type, MAX_IMAGE_BYTES)
    return ImageUploadResponse(
        key=key,
        url=post["url"],
        fields=post["fields"],
        max_bytes=MAX_IMAGE_BYTES,
        expires_in=settings.presign_ttl_s,
    )
