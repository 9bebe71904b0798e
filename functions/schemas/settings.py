"""User settings: display name, background, profile photo."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from functions.schemas.base import DisplayName, StrictRequest

ImageType = Literal["image/jpeg", "image/png", "image/webp"]
ImageKey = Annotated[str, StringConstraints(max_length=200, pattern=r"^[A-Za-z0-9/_.-]+$")]


class Background(StrictRequest):
    mode: Literal["none", "blur", "image"]
    image_key: ImageKey | None = Field(default=None, description="required when mode is image")


class SettingsOut(BaseModel):
    email: str
    display_name: str
    background: Background
    background_image_url: str | None
    photo_key: str | None
    photo_url: str | None


class SettingsUpdate(StrictRequest):
    display_name: DisplayName | None = None
    background: Background | None = None
    photo_key: ImageKey | None = Field(default=None, description="an uploaded photo's key; null removes it")


class ImageUploadRequest(StrictRequest):
    purpose: Literal["photo", "background"]
    content_type: ImageType
    size: int = Field(gt=0, description="bytes; at most the configured limit (5 MiB by default)")


class ImageUploadResponse(BaseModel):
    """POST ``fields`` plus a ``file`` part to ``url`` (multipart/form-data), then set the key."""

    key: str
    url: str
    fields: dict[str, str]
    max_bytes: int
    expires_in: int
