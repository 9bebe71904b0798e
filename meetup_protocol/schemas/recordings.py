"""Recordings: multipart upload plans, completion, listing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from meetup_protocol.schemas.base import StrictRequest

RecordingType = Literal["video/mp4", "video/webm", "video/x-matroska", "audio/ogg", "audio/webm"]
Filename = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,199}$")]
RecordingId = Annotated[str, StringConstraints(pattern=r"^r_[0-9a-f]{16}$")]
ETag = Annotated[str, StringConstraints(min_length=1, max_length=80)]

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PART_BYTES = 512 * 1024 * 1024
MAX_PARTS = 10_000
MAX_RECORDING_BYTES = 20 * 1024**3


class RecordingStart(StrictRequest):
    filename: Filename
    content_type: RecordingType
    size: int = Field(gt=0, le=MAX_RECORDING_BYTES, description="bytes")
    part_size: int | None = Field(
        default=None, ge=MIN_PART_BYTES, le=MAX_PART_BYTES, description="bytes per part; chosen when left out"
    )


class PartUrl(BaseModel):
    part_number: int
    size: int
    url: str


class UploadedPart(BaseModel):
    part_number: int
    size: int
    etag: str


class UploadPlan(BaseModel):
    """PUT each pending part's bytes to its URL; the ETag header of each answer identifies the part."""

    recording_id: str
    part_size: int
    part_count: int
    uploaded: list[UploadedPart]
    pending: list[PartUrl]
    expires_in: int


class CompletedPart(StrictRequest):
    part_number: int = Field(ge=1, le=MAX_PARTS)
    etag: ETag


class RecordingComplete(StrictRequest):
    parts: list[CompletedPart] | None = Field(
        default=None, max_length=MAX_PARTS, description="the client's ETags, checked against S3's when given"
    )


class RecordingOut(BaseModel):
    recording_id: str
    meeting_id: str
    owner_id: str
    filename: str
    content_type: str
    size: int
    status: Literal["uploading", "complete", "aborted"]
    created_at: datetime
    completed_at: datetime | None
    download_url: str | None
