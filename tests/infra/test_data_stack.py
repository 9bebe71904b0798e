"""Data stack: global tables shaped like the models, replicated everywhere, recoverable, encrypted; the
media bucket private, encrypted, versioned, expiring what it should, open to presigned browser uploads;
backups of the tables that hold user data. (cdk-nag does not check AWS::DynamoDB::GlobalTable.)"""

from __future__ import annotations

import pytest

from tests.infra.synth import NEEDS_CDK, Synth

pytest.importorskip("aws_cdk", reason=NEEDS_CDK)

from aws_cdk.assertions import Match

from functions.core.config import get_settings
from functions.models import ALL_MODELS
from infra.constructs.tables import spec_of


def _tables(synth: Synth) -> dict[str, dict]:
    found = synth.resources(synth.meetup.data, "AWS::DynamoDB::GlobalTable")
    return {r["Properties"]["TableName"]: r for r in found.values()}


def test_one_global_table_per_model_with_its_keys_indexes_and_ttl(synth: Synth) -> None:
    config = synth.meetup.config
    tables = _tables(synth)
    expected = {config.table_name(spec_of(m, get_settings().table_prefix).name) for m in ALL_MODELS}
    assert expected | {config.table_name("relays")} == set(tables)
    for model in ALL_MODELS:
        spec = spec_of(model, get_settings().table_prefix)
        props = tables[config.table_name(spec.name)]["Properties"]
        keys = {k["KeyType"]: k["AttributeName"] for k in props["KeySchema"]}
        assert keys["HASH"] == model._hash_keyname
        assert keys.get("RANGE") == model._range_keyname
        lsis = {i["IndexName"]: i for i in props.get("LocalSecondaryIndexes", [])}
        assert set(lsis) == {i.name for i in spec.local_indexes}
        for index in spec.local_indexes:
            assert lsis[index.name]["KeySchema"][1]["AttributeName"] == index.sort_key[0]  # type: ignore[index]
        ttl = props.get("TimeToLiveSpecification")
        if spec.ttl_attribute:
            assert ttl == {"AttributeName": spec.ttl_attribute, "Enabled": True}
        else:
            assert ttl is None


def test_ttl_where_records_expire(synth: Synth) -> None:
    tables = _tables(synth)
    for name in ("refresh-tokens", "throttles", "relays"):
        ttl = tables[synth.meetup.config.table_name(name)]["Properties"]["TimeToLiveSpecification"]
        assert ttl == {"AttributeName": "expires_at", "Enabled": True}


def test_every_table_is_replicated_protected_recoverable_encrypted_on_demand(synth: Synth) -> None:
    regions = set(synth.meetup.config.regions)
    assert len(regions) >= 2
    for name, table in _tables(synth).items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", name
        assert props["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}, name
        assert {r["Region"] for r in props["Replicas"]} == regions, name
        for replica in props["Replicas"]:
            assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name
            assert replica["DeletionProtectionEnabled"] is True, name
        assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain", name


def test_media_bucket_is_private_encrypted_versioned_and_logged(synth: Synth) -> None:
    config = synth.meetup.config
    template = synth.template(synth.meetup.data)
    template.has_resource(
        "AWS::S3::Bucket",
        {
            "Properties": Match.object_like(
                {
                    "BucketName": config.bucket_name,
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                        ]
                    },
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "LoggingConfiguration": Match.object_like({"LogFilePrefix": "media/"}),
                }
            ),
            "DeletionPolicy": "Retain",
        },
    )
    # enforce_ssl: a Deny on aws:SecureTransport=false, on every bucket of the stack
    policies = synth.resources(synth.meetup.data, "AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_media_bucket_cors_and_lifecycle(synth: Synth) -> None:
    config = synth.meetup.config
    buckets = synth.resources(synth.meetup.data, "AWS::S3::Bucket")
    media = next(b for b in buckets.values() if b["Properties"].get("BucketName") == config.bucket_name)
    (cors,) = media["Properties"]["CorsConfiguration"]["CorsRules"]
    assert set(cors["AllowedMethods"]) == {"GET", "HEAD", "PUT", "POST"}
    assert cors["ExposedHeaders"] == ["ETag"]  # multipart completion needs each part's ETag
    assert cors["AllowedOrigins"] == list(config.web_origins) and "*" not in cors["AllowedOrigins"]
    rules = {r["Id"]: r for r in media["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert rules["recordings-to-infrequent-access"]["Prefix"] == "recordings/"
    assert rules["recordings-to-infrequent-access"]["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": config.recordings_ia_days}
    ]
    assert rules["expire-old-versions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": config.noncurrent_version_days
    }


def test_backup_plan_covers_user_data_tables(synth: Synth) -> None:
    template = synth.template(synth.meetup.data)
    template.resource_count_is("AWS::Backup::BackupVault", 1)
    plan = next(iter(synth.resources(synth.meetup.data, "AWS::Backup::BackupPlan").values()))
    rules = {r["RuleName"]: r for r in plan["Properties"]["BackupPlan"]["BackupPlanRule"]}
    assert rules["daily"]["Lifecycle"]["DeleteAfterDays"] == synth.meetup.config.backup_daily_retention_days
    assert (
        rules["monthly"]["Lifecycle"]["DeleteAfterDays"] == synth.meetup.config.backup_monthly_retention_days
    )
    selection = next(iter(synth.resources(synth.meetup.data, "AWS::Backup::BackupSelection").values()))
    selected = selection["Properties"]["BackupSelection"]["Resources"]
    logical = {ref["Fn::GetAtt"][0] for ref in selected}
    names = {
        synth.resources(synth.meetup.data, "AWS::DynamoDB::GlobalTable")[lid]["Properties"]["TableName"]
        for lid in logical
    }
    config = synth.meetup.config
    assert names == {
        config.table_name(t) for t in ("users", "emails", "meetings", "participants", "chat", "recordings")
    }
