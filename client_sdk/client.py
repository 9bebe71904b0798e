"""Async client of the control-plane API: accounts, settings, meetings, chat, reactions, recordings.

Responses are parsed into the API's own response models (``meetup_protocol.schemas``), so the wire format has
one definition. Access tokens refresh themselves: a 401 for an expired token triggers one refresh and one
retry, one refresh at a time (a refresh token works once: presenting it twice, even concurrently, makes
the API revoke the whole login). Every failure surfaces as a typed ``client_sdk.errors`` exception.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter

from client_sdk.errors import (
    ConnectionFailed,
    MeetupError,
    ServerError,
    UploadInterrupted,
    WaitingForHost,
    error_from_response,
)
from meetup_protocol.schemas.auth import TokenResponse, UserOut
from meetup_protocol.schemas.base import Page
from meetup_protocol.schemas.chat import ChatMessageOut, ChatMessagePosted, ReactionOut, ReactionPosted
from meetup_protocol.schemas.meetings import (
    HostAction,
    JoinResponse,
    MeetingCreated,
    MeetingOut,
    ParticipantOut,
    Waiting,
    WaitingOut,
)
from meetup_protocol.schemas.recordings import RecordingOut, UploadPlan
from meetup_protocol.schemas.settings import ImageUploadResponse, SettingsOut

ProgressCallback = Callable[[int, int], None]


def new_idempotency_key() -> str:
    return secrets.token_urlsafe(16)


class Client:
    """One user's session with the API. Use as ``async with Client(url) as api: ...``."""

    def __init__(
        self,
        base_url: str,
        *,
        access_token: str | None = None,
        refresh_token: str | None = None,
        timeout: float = 15.0,
        retries: int = 2,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.user: UserOut | None = None
        self._retries = retries
        self._refreshing = asyncio.Lock()
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)
        # Presigned S3 URLs are absolute and must not carry our Authorization header.
        self._s3 = httpx.AsyncClient(timeout=max(timeout, 60.0))

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._s3.aclose()

    # --- transport ---------------------------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, *, auth: bool, retry: bool, **kwargs: Any
    ) -> httpx.Response:
        """Send once, retrying where that cannot duplicate an effect.

        A connection that never opened is always retried; timeouts and 5xx only when ``retry`` says the
        call is idempotent (reads, and writes that carry an idempotency key or are naturally repeatable).
        """
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            headers = {"Authorization": f"Bearer {self.access_token}"} if auth and self.access_token else {}
            try:
                response = await self._http.request(method, path, headers=headers, **kwargs)
            except httpx.ConnectError as exc:
                if last:
                    raise ConnectionFailed(
                        f"cannot reach the API at {self.base_url}: {exc!r}", code="api_unreachable"
                    ) from exc
            except httpx.TransportError as exc:
                if last or not retry:
                    raise ConnectionFailed(
                        f"no answer from the API at {self.base_url}: {exc!r}", code="api_unreachable"
                    ) from exc
            else:
                if response.status_code < 500 or last or not retry:
                    return response
            await asyncio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    async def _request(
        self, method: str, path: str, *, auth: bool = True, retry: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        retry = method == "GET" if retry is None else retry
        sent_with = self.access_token
        response = await self._send(method, path, auth=auth, retry=retry, **kwargs)
        if response.status_code == 401 and auth and self.refresh_token and _is_expired(response):
            async with self._refreshing:
                if self.access_token == sent_with:  # else a concurrent call refreshed already
                    await self.refresh()
            response = await self._send(method, path, auth=auth, retry=retry, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            raise error_from_response(response.status_code, body, response.headers.get("Retry-After"))
        return response

    async def _json(self, model: Any, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        return TypeAdapter(model).validate_json(response.content)

    # --- accounts ---------------------------------------------------------------------------------------

    async def register(self, email: str, password: str, display_name: str) -> UserOut:
        body = {"email": email, "password": password, "display_name": display_name}
        return await self._json(UserOut, "POST", "/auth/register", auth=False, json=body)

    async def login(self, email: str, password: str) -> UserOut:
        tokens = await self._json(
            TokenResponse, "POST", "/auth/login", auth=False, json={"email": email, "password": password}
        )
        return self._use_tokens(tokens)

    async def refresh(self) -> UserOut:
        if not self.refresh_token:
            raise MeetupError("no refresh token: log in first", code="not_authenticated")
        tokens = await self._json(
            TokenResponse, "POST", "/auth/refresh", auth=False, json={"refresh_token": self.refresh_token}
        )
        return self._use_tokens(tokens)

    async def logout(self) -> None:
        if self.refresh_token:
            await self._request(
                "POST", "/auth/logout", auth=False, retry=True, json={"refresh_token": self.refresh_token}
            )
        self.access_token = self.refresh_token = None

    async def me(self) -> UserOut:
        return await self._json(UserOut, "GET", "/auth/me")

    def _use_tokens(self, tokens: TokenResponse) -> UserOut:
        self.access_token = tokens.access_token
        self.refresh_token = tokens.refresh_token
        self.user = tokens.user
        return tokens.user

    # --- settings ---------------------------------------------------------------------------------------

    async def settings(self) -> SettingsOut:
        return await self._json(SettingsOut, "GET", "/settings")

    async def update_settings(self, **changes: Any) -> SettingsOut:
        """Change ``display_name=``, ``background={"mode": ..., "image_key": ...}`` or ``photo_key=``.

        ``photo_key=None`` removes the photo.
        """
        return await self._json(SettingsOut, "PATCH", "/settings", json=changes)

    async def upload_image(self, purpose: str, data: bytes, content_type: str) -> str:
        """Upload a profile photo or background image; returns the key to set in the settings."""
        form = await self._json(
            ImageUploadResponse,
            "POST",
            "/settings/images",
            json={"purpose": purpose, "content_type": content_type, "size": len(data)},
        )
        response = await self._s3.post(
            form.url, data=form.fields, files={"file": ("upload", data, content_type)}
        )
        if response.status_code >= 300:
            raise ServerError(
                f"the image upload failed with HTTP {response.status_code}", code="upload_failed"
            )
        return form.key

    # --- meetings ---------------------------------------------------------------------------------------

    async def create_meeting(self, title: str = "Meeting", **options: Any) -> MeetingCreated:
        """Options: ``max_participants``, ``max_duration_minutes``, ``passcode``."""
        return await self._json(MeetingCreated, "POST", "/meetings", json={"title": title, **options})

    async def get_meeting(self, meeting_id: str) -> MeetingOut:
        return await self._json(MeetingOut, "GET", f"/meetings/{meeting_id}")

    async def join_meeting(
        self, meeting_id: str, passcode: str | None = None, region: str | None = None, wait_s: float = 0
    ) -> JoinResponse:
        """Admission to a meeting: a join token and the relays to present it to. In a waiting room, ask
        again (no passcode needed) for up to ``wait_s`` seconds: WaitingForHost when no host admitted us
        by then, DeniedByHost when one denied us."""
        body = {k: v for k, v in {"passcode": passcode, "region": region}.items() if v is not None}
        deadline = time.monotonic() + wait_s
        while True:
            response = await self._request("POST", f"/meetings/{meeting_id}/join", json=body, retry=True)
            if response.status_code != 202:
                return JoinResponse.model_validate(response.json())
            waiting = Waiting.model_validate(response.json())
            pause = min(5.0, max(0.5, waiting.retry_after_s))
            if time.monotonic() + pause > deadline:
                raise WaitingForHost(waiting.participant_id)
            await asyncio.sleep(pause)
            body.pop("passcode", None)

    async def participants(self, meeting_id: str) -> list[ParticipantOut]:
        return await self._json(list[ParticipantOut], "GET", f"/meetings/{meeting_id}/participants")

    async def leave_meeting(self, meeting_id: str) -> None:
        await self._request("POST", f"/meetings/{meeting_id}/leave", retry=True)

    async def end_meeting(self, meeting_id: str) -> MeetingOut:
        return await self._json(MeetingOut, "POST", f"/meetings/{meeting_id}/end", retry=True)

    # --- host controls (host and co-hosts; others get NotAllowed) -------------------------------------

    async def remove_participant(self, meeting_id: str, participant_id: str) -> HostAction:
        """Remove a participant: the relays drop it at once and the API refuses its joins from now on."""
        path = f"/meetings/{meeting_id}/participants/{participant_id}/remove"
        return await self._json(HostAction, "POST", path, retry=True)

    async def set_role(self, meeting_id: str, participant_id: str, role: str) -> HostAction:
        """Promote to ``co_host`` or demote to ``guest``."""
        path = f"/meetings/{meeting_id}/participants/{participant_id}/role"
        return await self._json(HostAction, "POST", path, json={"role": role}, retry=True)

    async def hand_over(self, meeting_id: str, participant_id: str) -> HostAction:
        """Give the host role to another participant (the host becomes a co-host)."""
        body = {"participant_id": participant_id}
        return await self._json(HostAction, "POST", f"/meetings/{meeting_id}/host", json=body, retry=True)

    async def mute_participant(
        self, meeting_id: str, participant_id: str | None, source: str = "microphone", muted: bool = True
    ) -> HostAction:
        """Mute one participant's source, or (``participant_id=None``) every guest's; ``muted=False``
        lets the participant unmute itself again."""
        body = {"participant_id": participant_id, "source": source, "muted": muted}
        return await self._json(HostAction, "POST", f"/meetings/{meeting_id}/mute", json=body, retry=True)

    async def waiting(self, meeting_id: str) -> list[WaitingOut]:
        """Who waits in the waiting room, first come first."""
        return await self._json(list[WaitingOut], "GET", f"/meetings/{meeting_id}/waiting")

    async def admit(self, meeting_id: str, participant_id: str, admit: bool = True) -> HostAction:
        """Admit (or with ``admit=False`` deny) a guest from the waiting room."""
        path = f"/meetings/{meeting_id}/waiting/{participant_id}/{'admit' if admit else 'deny'}"
        return await self._json(HostAction, "POST", path, retry=True)

    async def lock_meeting(self, meeting_id: str, locked: bool = True) -> MeetingOut:
        body = {"locked": locked}
        return await self._json(MeetingOut, "POST", f"/meetings/{meeting_id}/lock", json=body, retry=True)

    # --- chat and reactions -------------------------------------------------------------------------------

    async def send_chat(
        self, meeting_id: str, text: str, idempotency_key: str | None = None
    ) -> ChatMessagePosted:
        """Send a message; retries reuse one idempotency key, so the message is stored exactly once."""
        body = {"text": text, "idempotency_key": idempotency_key or new_idempotency_key()}
        path = f"/meetings/{meeting_id}/chat"
        return await self._json(ChatMessagePosted, "POST", path, json=body, retry=True)

    async def react(self, meeting_id: str, emoji: str, idempotency_key: str | None = None) -> ReactionPosted:
        body = {"emoji": emoji, "idempotency_key": idempotency_key or new_idempotency_key()}
        return await self._json(
            ReactionPosted, "POST", f"/meetings/{meeting_id}/reactions", json=body, retry=True
        )

    async def chat_page(
        self, meeting_id: str, cursor: str | None = None, limit: int = 50
    ) -> Page[ChatMessageOut]:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return await self._json(Page[ChatMessageOut], "GET", f"/meetings/{meeting_id}/chat", params=params)

    async def reactions_page(
        self, meeting_id: str, cursor: str | None = None, limit: int = 50
    ) -> Page[ReactionOut]:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return await self._json(Page[ReactionOut], "GET", f"/meetings/{meeting_id}/reactions", params=params)

    async def chat_history(self, meeting_id: str) -> AsyncIterator[ChatMessageOut]:
        """Every message of the meeting, oldest first, page by page."""
        cursor = None
        while True:
            page = await self.chat_page(meeting_id, cursor, limit=100)
            for message in page.items:
                yield message
            if not page.has_more:
                return
            cursor = page.next_cursor

    # --- recordings -------------------------------------------------------------------------------------

    async def recordings(self, meeting_id: str) -> list[RecordingOut]:
        return await self._json(list[RecordingOut], "GET", f"/meetings/{meeting_id}/recordings")

    async def recording(self, meeting_id: str, recording_id: str) -> RecordingOut:
        return await self._json(RecordingOut, "GET", f"/meetings/{meeting_id}/recordings/{recording_id}")

    async def upload_recording(
        self,
        meeting_id: str,
        path: Path,
        content_type: str = "video/mp4",
        *,
        recording_id: str | None = None,
        part_size: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> RecordingOut:
        """Upload a file as a multipart upload and complete it.

        Pass the ``recording_id`` of an earlier, interrupted upload to resume it: only the parts S3 does
        not hold yet are sent.
        """
        size = path.stat().st_size
        base = f"/meetings/{meeting_id}/recordings"
        if recording_id is None:
            body: dict[str, Any] = {"filename": path.name, "content_type": content_type, "size": size}
            if part_size is not None:
                body["part_size"] = part_size
            plan = await self._json(UploadPlan, "POST", base, json=body)
        else:
            plan = await self._json(UploadPlan, "GET", f"{base}/{recording_id}/upload")
        done = sum(p.size for p in plan.uploaded)
        if on_progress:
            on_progress(done, size)
        with path.open("rb") as source:
            for part in plan.pending:
                source.seek((part.part_number - 1) * plan.part_size)
                await self._put_part(part.url, source.read(part.size), plan.recording_id)
                done += part.size
                if on_progress:
                    on_progress(done, size)
        return await self._json(
            RecordingOut, "POST", f"{base}/{plan.recording_id}/complete", json={}, retry=True
        )

    async def _put_part(self, url: str, data: bytes, recording_id: str) -> None:
        for attempt in range(self._retries + 1):
            try:
                response = await self._s3.put(url, content=data)
                if response.status_code < 300:
                    return
                failure = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                failure = repr(exc)
            if attempt < self._retries:
                await asyncio.sleep(0.2 * 2**attempt)
        raise UploadInterrupted(recording_id, failure)

    async def fetch(self, url: str) -> bytes:
        """The bytes behind a link: a presigned URL, or an image link from the settings (relative to the
        API's base URL: ``photo_url``, ``background_image_url``)."""
        if url.startswith("/"):
            url = self.base_url + url
        response = await self._s3.get(url)
        if response.status_code >= 300:
            raise ServerError(f"download failed with HTTP {response.status_code}", code="download_failed")
        return response.content

    async def download(self, url: str, dest: Path) -> Path:
        async with self._s3.stream("GET", url) as response:
            if response.status_code >= 300:
                raise ServerError(f"download failed with HTTP {response.status_code}", code="download_failed")
            with dest.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
        return dest


def _is_expired(response: httpx.Response) -> bool:
    try:
        return response.json()["error"]["code"] == "token_expired"
    except (ValueError, KeyError, TypeError):
        return False


__all__ = ["Client", "new_idempotency_key"]
