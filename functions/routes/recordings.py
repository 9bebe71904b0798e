"""Recordings: multipart uploads to S3 through presigned part URLs, resumable; listing and download."""

from __future__ import annotations

import contextlib
import math
import secrets
from datetime import timedelta

from botocore.exceptions import ClientError
from fastapi import APIRouter, Response
from pynamodb.exceptions import TransactWriteError

from functions import storage
from functions.core.config import get_settings
from functions.core.deps import UserId
from functions.core.errors import ApiError, error_responses
from functions.core.observability import count
from functions.core.security import normalize_meeting_id
from functions.models import MeetingModel, RecordingModel, RecordingQuotaModel
from functions.models.base import transaction, utcnow
from functions.services.meetings import meeting_for_member
from meetup_protocol.schemas.base import MeetingIdPath
from meetup_protocol.schemas.recordings import (
    MAX_PARTS,
    MIN_PART_BYTES,
    PartUrl,
    RecordingComplete,
    RecordingId,
    RecordingOut,
    RecordingStart,
    UploadedPart,
    UploadPlan,
)

router = APIRouter(prefix="/meetings", tags=["recordings"], responses=error_responses(400, 401, 404, 422))

DEFAULT_PART_BYTES = 8 * 1024 * 1024


def _part_size(size: int, requested: int | None) -> int:
    if requested is not None:
        if math.ceil(size / requested) > MAX_PARTS:
            raise ApiError(422, "too_many_parts", f"size / part_size exceeds {MAX_PARTS} parts")
        return requested
    return max(DEFAULT_PART_BYTES, math.ceil(size / 1000 / MIN_PART_BYTES) * MIN_PART_BYTES)


def _part_bytes(rec: RecordingModel, part_number: int) -> int:
    part_size = int(rec.part_size)
    return min(part_size, int(rec.size) - (part_number - 1) * part_size)


def _plan(rec: RecordingModel, uploaded: dict[int, tuple[str, int]]) -> UploadPlan:
    part_count = math.ceil(int(rec.size) / int(rec.part_size))
    done = [UploadedPart(part_number=n, etag=etag, size=size) for n, (etag, size) in sorted(uploaded.items())]
    pending = [
        PartUrl(
            part_number=n, size=_part_bytes(rec, n), url=storage.presigned_part(rec.s3_key, rec.upload_id, n)
        )
        for n in range(1, part_count + 1)
        if n not in uploaded or uploaded[n][1] != _part_bytes(rec, n)
    ]
    return UploadPlan(
        recording_id=rec.recording_id,
        part_size=int(rec.part_size),
        part_count=part_count,
        uploaded=done,
        pending=pending,
        expires_in=get_settings().presign_ttl_s,
    )


def _recording_out(rec: RecordingModel) -> RecordingOut:
    return RecordingOut(
        recording_id=rec.recording_id,
        meeting_id=rec.meeting_id,
        owner_id=rec.owner_id,
        filename=rec.filename,
        content_type=rec.content_type,
        size=int(rec.size),
        status=rec.status,  # type: ignore[arg-type]
        created_at=rec.created_at,
        completed_at=rec.completed_at,
        download_url=storage.presigned_get(rec.s3_key, rec.filename) if rec.status == "complete" else None,
    )


def _own_recording(meeting_id: str, recording_id: str, user_id: str) -> RecordingModel:
    meeting, _ = meeting_for_member(meeting_id, user_id)
    try:
        rec = RecordingModel.get(meeting.meeting_id, recording_id, consistent_read=True)
    except RecordingModel.DoesNotExist:
        raise ApiError(404, "recording_not_found", "no such recording") from None
    if rec.owner_id != user_id:
        raise ApiError(403, "not_owner", "only the uploader can change this recording")
    return rec


def _own_upload(meeting_id: str, recording_id: str, user_id: str) -> RecordingModel:
    rec = _own_recording(meeting_id, recording_id, user_id)
    if rec.status != "uploading":
        raise ApiError(409, "upload_closed", f"the upload is already {rec.status}")
    return rec


def _refuse_after_grace(meeting: MeetingModel) -> None:
    """No new uploads once the meeting has been over for longer than the grace (the recorder uploads as
    the meeting ends, so uploads start right after it)."""
    if meeting.status != "ended" or meeting.ended_at is None:
        return
    grace = timedelta(seconds=get_settings().recording_grace_after_end_s)
    if utcnow() > meeting.ended_at + grace:
        raise ApiError(410, "meeting_ended", "the meeting ended too long ago to start a recording upload")


def _quota_exceeded(message: str) -> ApiError:
    return ApiError(409, "recording_quota_exceeded", message)


def _reserve_and_save(rec: RecordingModel) -> None:
    """Count the recording in the meeting's and its owner's quotas and save it, in one transaction whose
    conditions are the limits: concurrent starts cannot overshoot them."""
    settings = get_settings()
    size = int(rec.size)
    cap = settings.recording_bytes_per_meeting
    if size > cap:
        raise _quota_exceeded(f"a meeting's recordings may declare at most {cap} bytes in all")
    meeting_quota = RecordingQuotaModel.for_meeting(rec.meeting_id)
    user_quota = RecordingQuotaModel.for_user(rec.meeting_id, rec.owner_id)
    declared, started, in_progress = (
        RecordingQuotaModel.declared_bytes,
        RecordingQuotaModel.started,
        RecordingQuotaModel.in_progress,
    )
    try:
        with transaction() as tx:
            tx.update(
                meeting_quota,
                actions=[declared.add(size)],
                condition=declared.does_not_exist() | (declared <= cap - size),
            )
            tx.update(
                user_quota,
                actions=[started.add(1), in_progress.add(1)],
                condition=(started.does_not_exist() | (started < settings.recordings_per_participant))
                & (in_progress.does_not_exist() | (in_progress < settings.recording_uploads_in_progress)),
            )
            tx.save(rec, condition=RecordingModel.recording_id.does_not_exist())
    except TransactWriteError as exc:
        # PynamoDB sends puts before updates: [recording, meeting quota, participant quota].
        failed = [getattr(r, "code", None) == "ConditionalCheckFailed" for r in exc.cancellation_reasons]
        if failed[1:2] == [True]:
            raise _quota_exceeded(
                f"this meeting's recordings already declare close to {cap} bytes; no room for {size} more"
            ) from exc
        if failed[2:3] == [True]:
            raise _quota_exceeded(
                f"at most {settings.recordings_per_participant} recordings per participant and meeting, "
                f"{settings.recording_uploads_in_progress} unfinished at once: complete or abort one first"
            ) from exc
        raise


def _release(rec: RecordingModel, status: str) -> None:
    """Close an upload (``complete`` or ``aborted``) and give back what it held of the quotas, once: the
    status change is conditional and in the same transaction. Raises ``TransactWriteError`` when the
    upload was no longer open."""
    actions = [RecordingModel.status.set(status)]
    if status == "complete":
        actions.append(RecordingModel.completed_at.set(utcnow()))
    with transaction() as tx:
        tx.update(rec, actions=actions, condition=RecordingModel.status == "uploading")
        if rec.quota_counted:
            user_quota = RecordingQuotaModel.for_user(rec.meeting_id, rec.owner_id)
            held = [RecordingQuotaModel.in_progress.add(-1)]
            if status == "aborted":  # an aborted upload does not count as one of the participant's
                held.append(RecordingQuotaModel.started.add(-1))
                tx.update(
                    RecordingQuotaModel.for_meeting(rec.meeting_id),
                    actions=[RecordingQuotaModel.declared_bytes.add(-int(rec.size))],
                )
            tx.update(user_quota, actions=held)


@router.post("/{meeting_id}/recordings", status_code=201, responses=error_responses(409, 410))
def start_recording_upload(meeting_id: MeetingIdPath, body: RecordingStart, user_id: UserId) -> UploadPlan:
    """Start a multipart upload; PUT each part to its URL, then complete.

    Allowed until ``recording_grace_after_end_s`` after the meeting ended (410 ``meeting_ended`` later),
    within the quotas (409 ``recording_quota_exceeded``): recordings per participant, unfinished uploads
    per participant, bytes declared per meeting. Aborting an upload gives its share back.
    """
    meeting, _ = meeting_for_member(normalize_meeting_id(meeting_id), user_id)
    _refuse_after_grace(meeting)
    part_size = _part_size(body.size, body.part_size)
    recording_id = f"r_{secrets.token_hex(8)}"
    key = f"recordings/{meeting.meeting_id}/{recording_id}/{body.filename}"
    rec = RecordingModel(
        meeting.meeting_id,
        recording_id,
        owner_id=user_id,
        s3_key=key,
        upload_id="",
        filename=body.filename,
        content_type=body.content_type,
        size=body.size,
        part_size=part_size,
        created_at=utcnow(),
        quota_counted=True,
    )
    _reserve_and_save(rec)  # before S3: a refused start opens no multipart upload
    try:
        upload_id = storage.start_multipart(key, body.content_type)
        rec.update(actions=[RecordingModel.upload_id.set(upload_id)])
    except Exception:
        _release(rec, "aborted")
        raise
    return _plan(rec, {})


@router.get("/{meeting_id}/recordings/{recording_id}/upload", responses=error_responses(403, 409))
def resume_recording_upload(
    meeting_id: MeetingIdPath, recording_id: RecordingId, user_id: UserId
) -> UploadPlan:
    """What S3 already holds, and fresh URLs for the parts still missing (after a failure or expiry)."""
    rec = _own_upload(normalize_meeting_id(meeting_id), recording_id, user_id)
    return _plan(rec, storage.uploaded_parts(rec.s3_key, rec.upload_id))


@router.post("/{meeting_id}/recordings/{recording_id}/complete", responses=error_responses(403, 409))
def complete_recording_upload(
    meeting_id: MeetingIdPath, recording_id: RecordingId, body: RecordingComplete, user_id: UserId
) -> RecordingOut:
    rec = _own_recording(normalize_meeting_id(meeting_id), recording_id, user_id)
    if rec.status == "complete":
        return _recording_out(rec)  # a retried completion
    if rec.status != "uploading":
        raise ApiError(409, "upload_closed", f"the upload is already {rec.status}")
    uploaded = storage.uploaded_parts(rec.s3_key, rec.upload_id)
    plan = _plan(rec, uploaded)
    if plan.pending:
        missing = [p.part_number for p in plan.pending][:20]
        raise ApiError(409, "parts_missing", f"parts not uploaded (or of the wrong size): {missing}")
    if body.parts is not None:
        theirs = {p.part_number: p.etag.strip('"') for p in body.parts}
        ours = {n: etag.strip('"') for n, (etag, _) in uploaded.items()}
        if theirs != ours:
            raise ApiError(409, "etag_mismatch", "the parts' ETags differ from what S3 received")
    try:
        storage.complete_multipart(
            rec.s3_key, rec.upload_id, [(n, etag) for n, (etag, _) in sorted(uploaded.items())]
        )
    except ClientError as exc:
        raise ApiError(409, "upload_rejected", "S3 refused to assemble the parts") from exc
    with contextlib.suppress(TransactWriteError):  # a concurrent completion won: same result
        _release(rec, "complete")
    rec.refresh(consistent_read=True)
    count("RecordingsUploaded")
    return _recording_out(rec)


@router.post(
    "/{meeting_id}/recordings/{recording_id}/abort",
    status_code=204,
    response_class=Response,
    responses=error_responses(403, 409),
)
def abort_recording_upload(meeting_id: MeetingIdPath, recording_id: RecordingId, user_id: UserId) -> Response:
    """Abort an unfinished upload: S3 drops its parts, and it no longer counts in the quotas."""
    rec = _own_upload(normalize_meeting_id(meeting_id), recording_id, user_id)
    storage.abort_multipart(rec.s3_key, rec.upload_id)
    try:
        _release(rec, "aborted")
    except TransactWriteError as exc:  # a concurrent abort or completion won
        rec.refresh(consistent_read=True)
        raise ApiError(409, "upload_closed", f"the upload is already {rec.status}") from exc
    return Response(status_code=204)


@router.get("/{meeting_id}/recordings")
def list_recordings(meeting_id: MeetingIdPath, user_id: UserId) -> list[RecordingOut]:
    """The meeting's finished recordings, each with a presigned download URL."""
    meeting, _ = meeting_for_member(normalize_meeting_id(meeting_id), user_id)
    recs = RecordingModel.query(
        meeting.meeting_id, filter_condition=RecordingModel.status == "complete", consistent_read=True
    )
    return [_recording_out(r) for r in recs]


@router.get("/{meeting_id}/recordings/{recording_id}")
def get_recording(meeting_id: MeetingIdPath, recording_id: RecordingId, user_id: UserId) -> RecordingOut:
    meeting, _ = meeting_for_member(normalize_meeting_id(meeting_id), user_id)
    try:
        rec = RecordingModel.get(meeting.meeting_id, recording_id, consistent_read=True)
    except RecordingModel.DoesNotExist:
        raise ApiError(404, "recording_not_found", "no such recording") from None
    return _recording_out(rec)
