"""S3 access: presigned uploads and downloads, multipart recordings, and checks on what was uploaded.

Every URL is SigV4 (``signature_version="s3v4"``): boto3 otherwise signs SigV2 URLs in us-east-1, which
newer regions and bucket policies refuse.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from functions.core import aws
from functions.core.config import get_settings


@lru_cache
def s3() -> BaseClient:
    """Built on first use, on the session the tables share (botocore's client, as boto3.client would
    make it; boto3 itself and s3transfer are not needed for presigning and single calls)."""
    settings = get_settings()
    return aws.session().create_client(
        "s3",
        region_name=settings.region,
        config=Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"}),
    )


def bucket() -> str:
    return get_settings().bucket


def ensure_bucket() -> None:
    """Create the media bucket if missing (the local stack; the cloud uses CDK)."""
    client = s3()
    try:
        client.head_bucket(Bucket=bucket())
    except ClientError:
        params: dict[str, Any] = {"Bucket": bucket()}
        region = get_settings().region
        if region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        client.create_bucket(**params)


def presigned_post(key: str, content_type: str, max_bytes: int) -> dict[str, Any]:
    """A browser-friendly upload form whose policy pins the exact key, the type and the size range.

    S3 enforces every condition (moto does not). The form stays usable until it expires, so what it
    uploads is never served as it is: see ``put_verified``.
    """
    if "${filename}" in key:
        raise ValueError("upload keys are exact: S3 would turn ${filename} into a starts-with condition")
    ttl = get_settings().presign_ttl_s
    return s3().generate_presigned_post(
        Bucket=bucket(),
        Key=key,
        Fields={"Content-Type": content_type},
        # boto3 adds {"bucket": ...} and {"key": key} (exact, as the key has no ${filename}).
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
        ExpiresIn=ttl,
    )


def presigned_get(key: str, filename: str | None = None) -> str:
    params: dict[str, Any] = {"Bucket": bucket(), "Key": key}
    if filename:
        params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
    return s3().generate_presigned_url("get_object", Params=params, ExpiresIn=get_settings().presign_ttl_s)


def head(key: str) -> dict[str, Any] | None:
    """The object's metadata, or None when it does not exist."""
    try:
        return s3().head_object(Bucket=bucket(), Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def read_prefix(key: str, length: int) -> bytes:
    """The first ``length`` bytes of an object (to check its magic number)."""
    resp = s3().get_object(Bucket=bucket(), Key=key, Range=f"bytes=0-{length - 1}")
    return resp["Body"].read()


def read_bounded(key: str, max_bytes: int) -> bytes | None:
    """At most ``max_bytes + 1`` bytes of an object (more than ``max_bytes`` means: too large), or None
    when it does not exist. One read: what the caller checks is exactly what it then stores or serves."""
    try:
        resp = s3().get_object(Bucket=bucket(), Key=key, Range=f"bytes=0-{max_bytes}")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchKey", "NotFound"):
            return None
        if code == "InvalidRange":  # an empty object
            return b""
        raise
    return resp["Body"].read(max_bytes + 1)


def put_verified(key: str, data: bytes, content_type: str, filename: str) -> None:
    """Store checked bytes under a key no presigned form can target, with the type we detected (never
    the uploader's) and a download disposition, so the object is safe even if served straight from S3."""
    s3().put_object(
        Bucket=bucket(),
        Key=key,
        Body=data,
        ContentType=content_type,
        ContentDisposition=f'attachment; filename="{filename}"',
        CacheControl="private, max-age=31536000, immutable",
    )


def delete(key: str) -> None:
    s3().delete_object(Bucket=bucket(), Key=key)


# --- multipart uploads (recordings) -------------------------------------------------------------------


def start_multipart(key: str, content_type: str) -> str:
    return s3().create_multipart_upload(Bucket=bucket(), Key=key, ContentType=content_type)["UploadId"]


def presigned_part(key: str, upload_id: str, part_number: int) -> str:
    return s3().generate_presigned_url(
        "upload_part",
        Params={"Bucket": bucket(), "Key": key, "UploadId": upload_id, "PartNumber": part_number},
        ExpiresIn=get_settings().presign_ttl_s,
    )


def uploaded_parts(key: str, upload_id: str) -> dict[int, tuple[str, int]]:
    """``part_number -> (etag, size)`` of the parts S3 already holds."""
    parts: dict[int, tuple[str, int]] = {}
    marker = 0
    while True:
        resp = s3().list_parts(Bucket=bucket(), Key=key, UploadId=upload_id, PartNumberMarker=marker)
        for part in resp.get("Parts", []):
            parts[int(part["PartNumber"])] = (str(part["ETag"]), int(part["Size"]))
        if not resp.get("IsTruncated"):
            return parts
        marker = int(resp["NextPartNumberMarker"])


def complete_multipart(key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
    s3().complete_multipart_upload(
        Bucket=bucket(),
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]},
    )


def abort_multipart(key: str, upload_id: str) -> None:
    s3().abort_multipart_upload(Bucket=bucket(), Key=key, UploadId=upload_id)
