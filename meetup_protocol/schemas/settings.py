"""User settings: display name, background, profile photo."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from meetup_protocol.schemas.base import DisplayName, StrictRequest

#: Images are served through the API (GET /settings/images/...): a Lambda answer is at most 6 MB, and
#: API Gateway carries binary bodies base64-encoded (4/3 larger), so 4 MiB is the most that fits.
MAX_IMAGE_BYTES = 4 * 1024 * 1024
ImageType = Literal["image/jpeg", "image/png", "image/webp"]
ImageKey = Annotated[str, StringConstraints(max_length=200, pattern=r"^[A-Za-z0-9/_.-]+$")]


class PlainBackground(StrictRequest):
    """No effect (``none``) or a blurred background (``blur``)."""

    mode: Literal["none", "blur"]


class ImageBackground(StrictRequest):
    """The background replaced by an uploaded image (see ``POST /settings/images``)."""

    mode: Literal["image"]
    image_key: ImageKey


BackgroundChoice = Annotated[PlainBackground | ImageBackground, Field(discriminator="mode")]


class Background(BaseModel):
    mode: Literal["none", "blur", "image"]
    image_key: str | None


class SettingsOut(BaseModel):
    email: str
    display_name: str
    background: Background
    background_image_url: str | None = Field(
        description="a signed, expiring link to the image, relative to the API's base URL"
    )
    photo_key: str | None
    photo_url: str | None = Field(
        description="a signed, expiring link to the photo, relative to the API's base URL"
    )


class SettingsUpdate(StrictRequest):
    display_name: DisplayName | None = None
    background: BackgroundChoice | None = None
    photo_key: ImageKey | None = Field(default=None, description="an uploaded photo's key; null removes it")


class ImageUploadRequest(StrictRequest):
    purpose: Literal["photo", "background"]
    content_type: ImageType
    size: int = Field(gt=0, le=MAX_IMAGE_BYTES, description="bytes")


class ImageUploadResponse(BaseModel):
    """POST ``fields`` plus a ``file`` part to ``url`` (multipart/form-data), then set the key."""

    key: str
    url: str
    fields: dict[str, str]
    max_bytes: int
    expires_in: int
