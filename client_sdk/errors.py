"""Typed exceptions for every failure a caller can handle; each carries the API's error code."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime


class MeetupError(Exception):
    """Base of every SDK error. ``code`` is the API's machine-readable error code."""

    def __init__(self, message: str, *, code: str = "error", status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class ConnectionFailed(MeetupError):
    """The API could not be reached (network down, DNS, timeout)."""


class AuthError(MeetupError):
    """Not logged in, wrong credentials, or a token that expired and could not be refreshed."""


class Forbidden(MeetupError):
    """Logged in, but not allowed (e.g. ending someone else's meeting)."""


class WrongPasscode(Forbidden):
    pass


class NotAllowed(Forbidden):
    """A host control asked by someone whose role does not allow it (a guest; a co-host acting on the
    host, or ending the meeting)."""


class RemovedByHost(Forbidden):
    """A host removed this user from the meeting: it cannot join again."""


class MeetingLocked(Forbidden):
    """The meeting is locked: nobody new is admitted, passcode or not."""


class DeniedByHost(Forbidden):
    """A host denied this user entry from the waiting room (joining again asks anew)."""


class WaitingForHost(MeetupError):
    """In the meeting's waiting room and no host admitted us (yet, or within the wait asked for)."""

    def __init__(self, participant_id: str) -> None:
        super().__init__("waiting for a host to admit you", code="waiting_for_host")
        self.participant_id = participant_id


class NotFound(MeetupError):
    pass


class MeetingNotFound(NotFound):
    pass


class ParticipantNotFound(NotFound):
    """No participant with that id in this meeting."""


class WrongMeetingOrPasscode(WrongPasscode, MeetingNotFound):
    """A join with a meeting id that does not exist or a passcode that is not its own: the API answers both
    alike (so meeting ids cannot be enumerated), and ``except WrongPasscode`` or ``except MeetingNotFound``
    catches it either way."""


class Conflict(MeetupError):
    """The request clashes with the current state (email taken, idempotency key reused ...)."""


class MeetingFull(Conflict):
    pass


class MeetingEnded(MeetupError):
    pass


class RecordingQuotaExceeded(Conflict):
    """No room for another recording upload: too many per participant (or unfinished at once), or the
    meeting's recordings declare too many bytes. Aborting an unfinished upload frees its share."""


class InvalidRequest(MeetupError):
    """The API rejected the request's content (4xx validation errors)."""


class RateLimited(MeetupError):
    """Too many attempts; ``retry_after`` seconds until the next is accepted."""

    def __init__(self, message: str, *, code: str, status: int, retry_after: float) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class ServerError(MeetupError):
    """The API failed (5xx); retrying later may help."""


class UploadInterrupted(MeetupError):
    """A part could not be uploaded; resume with ``upload_recording(..., recording_id=...)``."""

    def __init__(self, recording_id: str, reason: str) -> None:
        super().__init__(f"upload of {recording_id} interrupted: {reason}", code="upload_interrupted")
        self.recording_id = recording_id


_BY_CODE: dict[str, type[MeetupError]] = {
    "wrong_meeting_or_passcode": WrongMeetingOrPasscode,
    "wrong_passcode": WrongPasscode,  # APIs before wrong_meeting_or_passcode
    "meeting_not_found": MeetingNotFound,
    "meeting_full": MeetingFull,
    "meeting_ended": MeetingEnded,
    "recording_quota_exceeded": RecordingQuotaExceeded,
    "not_allowed": NotAllowed,
    "not_host": NotAllowed,
    "removed_by_host": RemovedByHost,
    "meeting_locked": MeetingLocked,
    "denied_by_host": DeniedByHost,
    "participant_not_found": ParticipantNotFound,
}
_BY_STATUS: dict[int, type[MeetupError]] = {
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: MeetingEnded,
}


#: Waits a server may ask for, bounded: a hostile or broken ``Retry-After`` must not park a client.
RETRY_AFTER_BOUNDS_S = (0.0, 300.0)


def retry_after_seconds(value: str | None, now: float | None = None) -> float:
    """``Retry-After`` in seconds (RFC 9110: delay-seconds or an HTTP date), 1 when absent or unreadable,
    within :data:`RETRY_AFTER_BOUNDS_S`."""
    low, high = RETRY_AFTER_BOUNDS_S
    if not value:
        return 1.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 1.0
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(high, max(low, seconds)) if seconds == seconds else 1.0  # NaN: unreadable


def error_from_response(status: int, body: object, retry_after: str | None = None) -> MeetupError:
    """Map an API error answer to the most specific exception."""
    error = body.get("error") if isinstance(body, dict) else None
    code = str(error.get("code", "error")) if isinstance(error, dict) else "error"
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    message = message or f"HTTP {status}"
    if status == 429:
        return RateLimited(message, code=code, status=status, retry_after=retry_after_seconds(retry_after))
    if status >= 500:
        return ServerError(message, code=code, status=status)
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or InvalidRequest
    return cls(message, code=code, status=status)


class EffectsNotInstalled(MeetupError, ImportError):
    """Background blur or replacement was asked for, but the SDK's optional ``effects`` (mediapipe,
    OpenCV) are not installed: ``pip install 'meetup-edge-sdk[effects]'``."""

    def __init__(self, missing: str | None = None) -> None:
        super().__init__(
            "background effects (blur, image) need the SDK's optional extra: "
            "pip install 'meetup-edge-sdk[effects]' (mediapipe 0.10.14 has wheels for CPython 3.8-3.12 only)"
            + (f"; missing: {missing}" if missing else ""),
            code="effects_not_installed",
        )


class NoRelayReachable(MeetupError):
    """None of the relays the API offered could be reached."""


class MediaPathFailed(NoRelayReachable):
    """A relay answered, but no media path to it worked: not direct, nor any TURN path offered.
    ``attempts`` maps each path tried to why it failed."""

    def __init__(self, message: str, *, code: str, attempts: dict[str, str]) -> None:
        super().__init__(message, code=code)
        self.attempts = attempts


class TurnRefused(MediaPathFailed):
    """Direct media failed and the TURN server refused this join's credential (401: wrong or expired);
    ``attempts`` says how each path failed."""
