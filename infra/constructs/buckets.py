"""S3 buckets: the media bucket (profile images and recordings) and the log buckets that audit access.

One media bucket serves both prefixes the functions write (``users/<id>/photo|background/...`` and
``recordings/<meeting>/<recording>/<file>``): permissions are split by prefix in IAM, and lifecycle rules
by prefix here. Encryption is SSE-S3: clients upload straight to S3 with presigned URLs, and SSE-KMS
would make every presigned PUT and multipart part a KMS call charged and permitted through the signing
role, for no protection beyond what SSE-S3 and the bucket policy give.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.constructs.nag import acknowledge


def log_bucket(scope: Construct, construct_id: str, *, expire_days: int = 365) -> s3.Bucket:
    """A private bucket for server/load balancer access logs (SSE-S3: what log delivery supports)."""
    bucket = s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        versioned=False,
        lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=Duration.days(expire_days))],
        removal_policy=RemovalPolicy.RETAIN,
    )
    acknowledge(bucket, "S1", "This is the access log destination; logging it into itself would loop")
    return bucket


class MediaBucket(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket_name: str,
        cors_origins: Sequence[str],
        recordings_ia_days: int,
        noncurrent_version_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = log_bucket(self, "AccessLogs")
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=bucket_name,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="media/",
            cors=[
                # Browsers upload with presigned POST (images) and PUT (recording parts, whose ETags the
                # client must read back to complete the upload) and download with presigned GET.
                s3.CorsRule(
                    allowed_methods=[
                        s3.HttpMethods.GET,
                        s3.HttpMethods.HEAD,
                        s3.HttpMethods.PUT,
                        s3.HttpMethods.POST,
                    ],
                    allowed_origins=list(cors_origins),
                    allowed_headers=["*"],
                    exposed_headers=["ETag"],
                    max_age=3000,
                )
            ],
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
                s3.LifecycleRule(
                    id="recordings-to-infrequent-access",
                    prefix="recordings/",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(recordings_ia_days),
                        )
                    ],
                ),
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=Duration.days(noncurrent_version_days),
                    expired_object_delete_marker=True,
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
