"""Configuration of the control plane, read from the environment in this one place.

The same code runs in Lambda and on the local stack: only these values differ. Every variable is prefixed
``MEETUP_`` (``MEETUP_TABLE_PREFIX``, ``MEETUP_BUCKET`` ...). AWS endpoints come from the standard
``AWS_ENDPOINT_URL`` (honoured by boto3 and PynamoDB), never from a test-only switch here.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, Field, IPvAnyNetwork, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from meetup_protocol.turn import turn_url_path


class RelayEndpoint(BaseModel):
    """A relay a client may connect to, as handed out with a join token."""

    url: str
    region: str = "local"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEETUP_", extra="ignore")

    region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    table_prefix: str = "meetup-"
    bucket: str = "meetup-media"

    # Access tokens (HS256). In the cloud the secret comes from Secrets Manager via ``jwt_secret_arn``.
    jwt_secret: SecretStr | None = None
    jwt_secret_arn: str | None = None
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600

    # Join tokens (EdDSA): the API signs with the private key, relays verify with the public key only.
    join_private_key: SecretStr | None = None
    join_private_key_arn: str | None = None
    join_token_ttl_s: int = 300
    #: Notices for the relays (meetup_protocol/tokens.py): how long a chat notice may still be announced
    #: (a sender's outbox retries across a reconnect), and how long the API waits for a relay's answer.
    notice_ttl_s: int = 600
    relay_push_timeout_s: float = 2.0

    # Password/passcode hashing (argon2id). Defaults are OWASP's minimum (19 MiB, t=2, p=1).
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456

    # Brute-force throttles: failures allowed per fixed window (the reasoning: functions/core/throttle.py).
    throttle_window_s: int = 300
    passcode_failures_per_user: int = 5
    passcode_failures_per_ip: int = 20
    # Wrong passcodes against one meeting, over its lifetime, that raise an alert (never a refusal).
    passcode_failures_alert_per_meeting: int = 30
    login_failures_per_email: int = 10
    #: Per address: password guesses across accounts, and new accounts (each one a fresh per-user
    #: passcode bucket). Higher than per account: an office or a campus shares one address.
    login_failures_per_ip: int = 50
    registrations_per_ip: int = 20
    # Chat and reactions each user may post in one meeting per window (they are stored and fanned out).
    chat_posts_per_user: int = 120
    reactions_per_user: int = 120

    # Proxies whose X-Forwarded-For is believed (comma-separated networks, e.g. CloudFront's origin-facing
    # ranges). Empty: the caller is the address that connected (API Gateway's sourceIp in Lambda).
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)

    # Relays offered with a join token until the relay registry exists.
    relays: Annotated[list[RelayEndpoint], NoDecode] = Field(default_factory=list)

    #: TURN servers handed to clients with each join (comma list of ``turn:H:P?transport=udp``,
    #: ``turn:H:P?transport=tcp``, ``turns:H:P``), with credentials derived from ``turn_secret`` (coturn's
    #: ``static-auth-secret``) that expire with the join token. Either unset: no TURN offered.
    #: An entry may name its region (``us-east-1=turn:...``, as the CDK app sets it: every region's TURN
    #: server): a join then gets one ICE server per region, its relay's region first.
    turn_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    turn_secret: SecretStr | None = None
    #: In the cloud: the secret's ARN in Secrets Manager (rotated; read and cached a few minutes).
    turn_secret_arn: str | None = None

    # Uploads (size limits are part of the API schema: meetup_protocol/schemas)
    presign_ttl_s: int = 900

    # Recording quotas (each recording up to 20 GiB, meetup_protocol/schemas/recordings.py). Started uploads
    # count until aborted; an aborted upload gives its share back.
    recordings_per_participant: int = 5  # per participant and meeting: a few takes, and retries
    recording_uploads_in_progress: int = 2  # unfinished uploads per participant and meeting at once
    recording_bytes_per_meeting: int = 60 * 1024**3  # declared bytes of all a meeting's recordings
    # New uploads are refused this long after the meeting ended (the recorder uploads as it ends);
    # uploads started before stay resumable.
    recording_grace_after_end_s: int = 600
    max_request_bytes: int = 2 * 1024 * 1024  # fits the largest valid body (10,000 part ETags)

    @field_validator("relays", mode="before")
    @classmethod
    def _parse_relays(cls, value: object) -> object:
        """Accept JSON (``[{"url": ..., "region": ...}]``) or a comma list of ``region=url`` / ``url``."""
        if not isinstance(value, str):
            return value
        value = value.strip()
        if not value:
            return []
        if value.startswith("["):
            return json.loads(value)
        relays = []
        for item in value.split(","):
            region, sep, url = item.strip().partition("=")
            relays.append({"url": url, "region": region} if sep else {"url": region})
        return relays

    @field_validator("turn_urls", mode="before")
    @classmethod
    def _parse_turn_urls(cls, value: object) -> object:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("turn_urls")
    @classmethod
    def _check_turn_urls(cls, value: list[str]) -> list[str]:
        for entry in value:
            url = _turn_url(entry)[1]
            if turn_url_path(url) is None:
                raise ValueError(
                    f"not a TURN URL clients can use: {url!r} (turn:H:P?transport=udp|tcp or turns:H:P)"
                )
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    def table_name(self, name: str) -> str:
        return f"{self.table_prefix}{name}"

    def turn_urls_by_region(self) -> dict[str, list[str]]:
        """``turn_urls`` grouped by region in the configured order ("" for entries without one)."""
        groups: dict[str, list[str]] = {}
        for entry in self.turn_urls:
            region, url = _turn_url(entry)
            groups.setdefault(region, []).append(url)
        return groups


def _turn_url(entry: str) -> tuple[str, str]:
    """``region=url`` or ``url`` -> (region or "", url); a TURN URL itself never has an ``=`` before
    its ``?transport=`` query."""
    head, sep, url = entry.partition("=")
    if sep and "?" not in head and ":" not in head:
        return head.strip(), url.strip()
    return "", entry.strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
