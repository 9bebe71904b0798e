"""Web: the browser client (web/) as a static site on ``app.<domain>``, and the API on the same origin.

A private S3 bucket, read only by CloudFront through Origin Access Control, holds the files of web/
(copied as they are: plain ES modules, no build step) and CloudFront serves them over HTTPS with security
headers. The API's paths (``/auth/*``, ``/settings``, ``/meetings/*`` ..., read from the FastAPI routers
like the API stack's routes) go to ``api.<domain>`` uncached, so the client calls its own origin:
config.json says ``"apiBaseUrl": ""`` here and in the local stack, and the API needs no CORS. Relays are
reached directly (``wss://relay-<region>.<domain>``); media never passes through CloudFront.

CloudFront wants its certificate in us-east-1, so this stack lives there whatever the primary region.
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import DefaultStackSynthesizer, Duration, RemovalPolicy, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.config import InfraConfig
from infra.constructs.nag import acknowledge, allow, wildcard_findings

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
#: npm files served with the client (MediaPipe's model and wasm): site path -> folder (web/vendor.json).
WEB_VENDOR = WEB_DIR / "vendor.json"


def web_vendor() -> dict[str, Path]:
    """The npm folders to deploy with the client; a missing one fails synth (``./dev`` runs ``npm ci``)."""
    entries = json.loads(WEB_VENDOR.read_text()) if WEB_VENDOR.is_file() else {}
    folders = {path: WEB_DIR.parent / folder for path, folder in entries.items() if not path.startswith("//")}
    missing = [str(folder) for folder in folders.values() if not folder.is_dir()]
    if missing:
        raise FileNotFoundError(f"the web client's npm files are missing (run npm ci): {missing}")
    return folders


#: CloudFront only takes certificates from us-east-1.
WEB_REGION = "us-east-1"


def web_domain(config: InfraConfig) -> str:
    """Where the client is served; the media bucket's CORS origins (``config.web_origins``) include it."""
    return f"app.{config.domain}"


def api_path_patterns() -> list[str]:
    """CloudFront path patterns covering every route of the API (``/meetings`` and ``/meetings/*`` ...)."""
    from functions.app import ROUTERS

    patterns: set[str] = set()
    for router in ROUTERS.values():
        for route in router.routes:
            path: str = route.path  # type: ignore[attr-defined]
            first = "/" + path.strip("/").split("/", 1)[0]
            patterns.add(first if path == first else f"{first}/*")
    return sorted(patterns)


def content_security_policy(config: InfraConfig) -> str:
    """Scripts and styles from this origin only; network to this origin (the API), the relays (wss and
    their /healthz RTT probes) and the media bucket (presigned uploads, photos)."""
    bucket = config.bucket_name
    s3_hosts = f"https://{bucket}.s3.amazonaws.com https://{bucket}.s3.{config.primary_region}.amazonaws.com"
    return "; ".join(
        [
            "default-src 'self'",
            # 'wasm-unsafe-eval': MediaPipe's segmentation (background effects) compiles WebAssembly;
            # it allows wasm only, not eval of scripts.
            "script-src 'self' 'wasm-unsafe-eval'",
            "style-src 'self'",
            f"img-src 'self' data: {s3_hosts}",
            "media-src 'self'",
            f"connect-src 'self' wss://*.{config.domain} https://*.{config.domain} {s3_hosts}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


#: Camera, microphone and screen capture for this origin only; nothing else.
PERMISSIONS_POLICY = (
    "camera=(self), microphone=(self), display-capture=(self), geolocation=(), payment=(), usb=()"
)


class WebStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.config = config
        self.domain_name = web_domain(config)
        self.zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=config.hosted_zone_id, zone_name=config.domain
        )
        self.logs = self._log_bucket()
        self.bucket = s3.Bucket(
            self,
            "Site",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            server_access_logs_bucket=self.logs,
            server_access_logs_prefix="site/",
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.vendor = web_vendor()
        self.headers = self._security_headers()
        self.distribution = self._distribution()
        self._dns()
        self.deployment = self._deploy()

    def _log_bucket(self) -> s3.Bucket:
        """CloudFront standard logs need ACLs (BucketOwnerPreferred); the site bucket's access logs too."""
        bucket = s3.Bucket(
            self,
            "Logs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=Duration.days(365))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(bucket, "S1", "This is the access log destination; logging it into itself would loop")
        return bucket

    def _security_headers(self) -> cloudfront.ResponseHeadersPolicy:
        return cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="meetup-edge web client: CSP, HSTS and friends",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(self.config), override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(730), include_subdomains=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
                # The legacy XSS auditor is gone from browsers; "0" is today's advice (OWASP).
                xss_protection=cloudfront.ResponseHeadersXSSProtection(protection=False, override=True),
            ),
            custom_headers_behavior=cloudfront.ResponseCustomHeadersBehavior(
                custom_headers=[
                    cloudfront.ResponseCustomHeader(
                        header="Permissions-Policy", value=PERMISSIONS_POLICY, override=True
                    ),
                    cloudfront.ResponseCustomHeader(
                        header="Cross-Origin-Opener-Policy", value="same-origin", override=True
                    ),
                ]
            ),
        )

    def _distribution(self) -> cloudfront.Distribution:
        config = self.config
        certificate = acm.Certificate(
            self,
            "Certificate",
            domain_name=self.domain_name,
            validation=acm.CertificateValidation.from_dns(self.zone),
        )
        api = origins.HttpOrigin(
            config.api_domain,
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
        )
        api_behavior = cloudfront.BehaviorOptions(
            origin=api,
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
            # Uncached, so every viewer header but Host (API Gateway matches its custom domain on Host)
            # reaches the API, Authorization included.
            cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
            origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
            response_headers_policy=self.headers,
        )
        distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"{config.name} web client",
            domain_names=[self.domain_name],
            certificate=certificate,
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self.headers,
                compress=True,
            ),
            additional_behaviors={pattern: api_behavior for pattern in api_path_patterns()},
            enable_logging=True,
            log_bucket=self.logs,
            log_file_prefix="cloudfront/",
        )
        acknowledge(
            distribution,
            "CFR1",
            "A meeting service is for anyone anywhere: no country is blocked at the edge; accounts, "
            "passcodes and throttles guard access",
        )
        acknowledge(
            distribution,
            "CFR2",
            "No WAF in front: the site is static files and the API behind it keeps its own stage throttling "
            "and per-user/per-address throttles; a web ACL (us-east-1) can be attached later",
        )
        return distribution

    def _dns(self) -> None:
        target = route53.RecordTarget.from_alias(targets.CloudFrontTarget(self.distribution))
        route53.ARecord(self, "Alias", zone=self.zone, record_name=self.domain_name, target=target)
        route53.AaaaRecord(self, "AliasV6", zone=self.zone, record_name=self.domain_name, target=target)

    def _deploy(self) -> s3deploy.BucketDeployment:
        """Copy web/ into the bucket at deploy time and invalidate CloudFront's copies. Files are sent
        ``no-cache`` (browsers revalidate by ETag: the modules are small and not content-hashed)."""
        log_group = logs.LogGroup(self, "DeployLogs", retention=self.config.log_retention)
        role = iam.Role(
            self,
            "DeployRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Copies the web client into its bucket (CDK BucketDeployment)",
        )
        # Its own role, so no AWSLambdaBasicExecutionRole managed policy: logs to its own group only.
        allow(role, ["logs:CreateLogStream", "logs:PutLogEvents"], [log_group.log_group_arn])
        deployment = s3deploy.BucketDeployment(
            self,
            "Deploy",
            sources=[s3deploy.Source.asset(str(WEB_DIR))],
            exclude=[f"{path}/*" for path in self.vendor],  # deployed below; pruning leaves them
            destination_bucket=self.bucket,
            distribution=self.distribution,
            distribution_paths=["/*"],
            cache_control=[s3deploy.CacheControl.no_cache()],
            prune=True,
            role=role,
            log_group=log_group,
            memory_limit=256,
        )
        self._acknowledge_deployment(deployment, role)
        for index, (path, folder) in enumerate(self.vendor.items()):
            vendor = s3deploy.BucketDeployment(
                self,
                f"DeployVendor{index}",
                sources=[s3deploy.Source.asset(str(folder))],
                destination_bucket=self.bucket,
                destination_key_prefix=f"{path}/",
                cache_control=[s3deploy.CacheControl.no_cache()],
                prune=True,
                role=role,
                log_group=log_group,
                memory_limit=256,
            )
            vendor.node.add_dependency(deployment)
        return deployment

    def _acknowledge_deployment(self, deployment: s3deploy.BucketDeployment, role: iam.Role) -> None:
        """What BucketDeployment grants and runs itself, acknowledged finding by finding: it reads its
        asset, syncs (lists, writes, prunes) the site bucket, and invalidates the distribution."""
        qualifier = self.synthesizer.bootstrap_qualifier or DefaultStackSynthesizer.DEFAULT_QUALIFIER
        assets = f"arn:{self.partition}:s3:::cdk-{qualifier}-assets-{self.account}-{self.region}/*"
        actions = ["s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*"]
        for finding in wildcard_findings(self, actions, [f"{self.bucket.bucket_arn}/*", assets]):
            acknowledge(
                role,
                finding,
                "BucketDeployment (aws-cdk-lib) reads the web/ asset from the CDK asset bucket and syncs it "
                "into the site bucket, pruning old files: object wildcards on those two buckets only",
            )
        acknowledge(
            deployment,
            "IAM5[Resource::*]",
            "BucketDeployment's statement for cloudfront:CreateInvalidation/GetInvalidation is fixed to "
            "'*' by aws-cdk-lib; it invalidates this distribution after each deploy",
        )
        handler = next(c for c in self.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
        acknowledge(
            handler,
            "L1",
            "The BucketDeployment handler's runtime is chosen by aws-cdk-lib and moves with its upgrades; "
            "it runs at deploy time only",
        )
