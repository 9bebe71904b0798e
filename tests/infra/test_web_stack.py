"""Web stack: web/ deployed to a private bucket that only CloudFront reads (OAC), HTTPS on app.<domain>
with security headers, and every API path forwarded uncached to the API so the client is same-origin."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from tests.infra.synth import NEEDS_CDK, REPO, Synth

pytest.importorskip("aws_cdk", reason=NEEDS_CDK)

from functions.app import ROUTERS
from infra.stacks.web import WEB_REGION, api_path_patterns, web_domain

#: CloudFront's managed policies (their ids are fixed by AWS).
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"


def _one(synth: Synth, type_: str) -> tuple[str, dict[str, Any]]:
    found = synth.resources(synth.meetup.web, type_)
    assert len(found) == 1, (type_, list(found))
    ((logical_id, resource),) = found.items()
    return logical_id, resource["Properties"]


def _distribution(synth: Synth) -> dict[str, Any]:
    return _one(synth, "AWS::CloudFront::Distribution")[1]["DistributionConfig"]


def _site_bucket_id(synth: Synth) -> str:
    buckets = synth.resources(synth.meetup.web, "AWS::S3::Bucket")
    enforced = [{"ObjectOwnership": "BucketOwnerEnforced"}]  # the log bucket keeps ACLs for CloudFront
    (site,) = [k for k, b in buckets.items() if b["Properties"]["OwnershipControls"]["Rules"] == enforced]
    return site


def test_the_stack_lives_where_cloudfront_takes_certificates(synth: Synth) -> None:
    web = synth.meetup.web
    assert web.region == WEB_REGION == "us-east-1"
    _, certificate = _one(synth, "AWS::CertificateManager::Certificate")
    assert certificate["DomainName"] == web_domain(synth.meetup.config)
    assert certificate["ValidationMethod"] == "DNS"


def test_the_site_bucket_is_private_and_read_by_cloudfront_only(synth: Synth) -> None:
    web = synth.meetup.web
    site = _site_bucket_id(synth)
    props = synth.resources(web, "AWS::S3::Bucket")[site]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert "WebsiteConfiguration" not in props  # served through CloudFront only, never as an S3 website
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert props["LoggingConfiguration"]["LogFilePrefix"] == "site/"

    policy = next(
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in synth.resources(web, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": site}
    )
    reads = [s for s in policy if s["Effect"] == "Allow"]
    assert len(reads) == 1
    (read,) = reads
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert read["Action"] == "s3:GetObject"
    distribution_id, _ = _one(synth, "AWS::CloudFront::Distribution")
    assert distribution_id in json.dumps(read["Condition"]["StringEquals"]["AWS:SourceArn"])
    denies = [s for s in policy if s["Effect"] == "Deny"]
    assert denies and denies[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

    config = _distribution(synth)
    (s3_origin,) = [o for o in config["Origins"] if "S3OriginConfig" in o]
    assert s3_origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # OAC, not the legacy OAI
    assert "OriginAccessControlId" in s3_origin
    _, oac = _one(synth, "AWS::CloudFront::OriginAccessControl")
    assert oac["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    assert oac["OriginAccessControlConfig"]["SigningProtocol"] == "sigv4"


def test_https_only_on_the_web_domain_with_logs(synth: Synth) -> None:
    config = _distribution(synth)
    assert config["Aliases"] == [web_domain(synth.meetup.config)]
    assert config["ViewerCertificate"]["MinimumProtocolVersion"] == "TLSv1.2_2021"
    assert config["ViewerCertificate"]["SslSupportMethod"] == "sni-only"
    assert config["DefaultRootObject"] == "index.html"
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    assert config["DefaultCacheBehavior"]["CachePolicyId"] == CACHING_OPTIMIZED
    assert config["DefaultCacheBehavior"]["AllowedMethods"] == ["GET", "HEAD"]
    assert config["Logging"]["Prefix"] == "cloudfront/"
    records = synth.resources(synth.meetup.web, "AWS::Route53::RecordSet").values()
    assert sorted(r["Properties"]["Type"] for r in records) == ["A", "AAAA"]
    for record in records:
        assert record["Properties"]["Name"] == f"{web_domain(synth.meetup.config)}."
        assert "DNSName" in record["Properties"]["AliasTarget"]


def test_security_headers_on_every_answer(synth: Synth) -> None:
    config = synth.meetup.config
    policy_id, policy = _one(synth, "AWS::CloudFront::ResponseHeadersPolicy")
    headers = policy["ResponseHeadersPolicyConfig"]
    security = headers["SecurityHeadersConfig"]
    assert security["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 365 * 24 * 3600
    assert security["StrictTransportSecurity"]["IncludeSubdomains"] is True
    assert security["ContentTypeOptions"]["Override"] is True
    assert security["FrameOptions"]["FrameOption"] == "DENY"
    assert security["ReferrerPolicy"]["ReferrerPolicy"] == "no-referrer"
    directives = security["ContentSecurityPolicy"]["ContentSecurityPolicy"].split("; ")
    csp = dict(directive.split(" ", 1) for directive in directives)
    assert csp["default-src"] == csp["style-src"] == "'self'"
    # Scripts from this origin only; WebAssembly may compile (MediaPipe's segmentation), eval may not.
    assert csp["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
    assert f"wss://*.{config.domain}" in csp["connect-src"]  # the relays' signalling
    assert f"https://{config.bucket_name}.s3.amazonaws.com" in csp["connect-src"]  # presigned uploads
    custom = {h["Header"]: h["Value"] for h in headers["CustomHeadersConfig"]["Items"]}
    assert "camera=(self)" in custom["Permissions-Policy"]
    assert "display-capture=(self)" in custom["Permissions-Policy"]
    distribution = _distribution(synth)
    for behavior in [distribution["DefaultCacheBehavior"], *distribution["CacheBehaviors"]]:
        assert behavior["ResponseHeadersPolicyId"] == {"Ref": policy_id}


def test_every_api_route_is_forwarded_uncached_to_the_api(synth: Synth) -> None:
    config = synth.meetup.config
    distribution = _distribution(synth)
    (api_origin,) = [o for o in distribution["Origins"] if "CustomOriginConfig" in o]
    assert api_origin["DomainName"] == config.api_domain
    assert api_origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert api_origin["CustomOriginConfig"]["OriginSSLProtocols"] == ["TLSv1.2"]
    behaviors = {b["PathPattern"]: b for b in distribution["CacheBehaviors"]}
    assert sorted(behaviors) == api_path_patterns()
    for behavior in behaviors.values():
        assert behavior["TargetOriginId"] == api_origin["Id"]
        assert behavior["ViewerProtocolPolicy"] == "https-only"  # a redirected POST would lose its body
        assert behavior["CachePolicyId"] == CACHING_DISABLED
        # Every viewer header but Host (API Gateway routes its custom domain by Host), Authorization too.
        assert behavior["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST
        assert set(behavior["AllowedMethods"]) >= {"GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS"}

    def forwarded(path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in behaviors)

    for router in ROUTERS.values():
        for route in router.routes:
            assert forwarded(route.path.replace("{", "").replace("}", "")), route.path  # type: ignore[attr-defined]
    web_files = [p.relative_to(REPO / "web").as_posix() for p in (REPO / "web").rglob("*") if p.is_file()]
    assert "index.html" in web_files
    assert not [f for f in web_files if forwarded(f"/{f}")], "a web/ file is shadowed by an API path"


def test_the_client_calls_its_own_origin(synth: Synth) -> None:
    """config.json says same origin (CloudFront forwards the API paths), and the media bucket lets the
    web origin upload (presigned POST) and read (photos)."""
    config = synth.meetup.config
    assert json.loads((REPO / "web" / "config.json").read_text()) == {"apiBaseUrl": ""}
    assert f"https://{web_domain(config)}" in config.web_origins
    data = synth.meetup.data
    media = next(
        b["Properties"]
        for b in synth.resources(data, "AWS::S3::Bucket").values()
        if b["Properties"].get("BucketName") == config.bucket_name
    )
    origins = {o for rule in media["CorsConfiguration"]["CorsRules"] for o in rule["AllowedOrigins"]}
    assert f"https://{web_domain(config)}" in origins


def test_web_folder_is_deployed_and_cloudfront_invalidated(synth: Synth) -> None:
    web = synth.meetup.web
    deployments = list(synth.resources(web, "Custom::CDKBucketDeployment").values())
    (deployment,) = [d for d in deployments if "DestinationBucketKeyPrefix" not in d["Properties"]]
    props = deployment["Properties"]
    assert props["DestinationBucketName"] == {"Ref": _site_bucket_id(synth)}
    assert props["DistributionPaths"] == ["/*"]
    assert props["Prune"] is True
    assert props["SystemMetadata"] == {"cache-control": "no-cache"}
    # MediaPipe's model and wasm (npm) go with it, under vendor/, and its pruning leaves them alone.
    (vendor,) = [d["Properties"] for d in deployments if "DestinationBucketKeyPrefix" in d["Properties"]]
    assert vendor["DestinationBucketKeyPrefix"] == "vendor/selfie_segmentation/"
    assert vendor["DestinationBucketName"] == {"Ref": _site_bucket_id(synth)}
    assert props["Exclude"] == ["vendor/selfie_segmentation/*"]
    assets = json.loads((synth.outdir / f"{web.artifact_id}.assets.json").read_text())
    staged = [a["source"]["path"] for a in assets["files"].values() if a["source"].get("packaging") == "zip"]
    assert any((synth.outdir / path / "index.html").exists() for path in staged)
    wasm = "selfie_segmentation_solution_simd_wasm_bin.wasm"
    assert any((synth.outdir / path / wasm).exists() for path in staged)
    # Its Lambda logs to its own group with retention; no AWS managed policy on its role.
    roles = synth.resources(web, "AWS::IAM::Role").values()
    assert all("ManagedPolicyArns" not in r["Properties"] for r in roles)
    (group,) = synth.resources(web, "AWS::Logs::LogGroup").values()
    assert group["Properties"]["RetentionInDays"] == synth.meetup.config.log_retention_days


def test_no_open_nag_finding_in_the_web_stack(synth: Synth) -> None:
    report = synth.validation_report()
    plugin = next(p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions")
    open_findings = [
        f"{v['ruleName']}: {c['constructPath']}"
        for v in plugin["violations"]
        for c in v["violatingConstructs"]
        if c["constructPath"].startswith(f"{synth.meetup.web.stack_name}/")
    ]
    assert not open_findings, open_findings
