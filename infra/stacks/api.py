"""API: the HTTP API in front of one Lambda per concern, their keys, grants and alarms (primary region).

Routes are read from the FastAPI routers (``functions.app.ROUTERS``), so API Gateway sends each path to
the function that serves it; anything else reaches ``$default`` (the auth function), which answers
with the API's own JSON 404. Access is granted per concern from :data:`ACCESS`: a function reaches only
the tables and bucket prefixes listed for it, by exact ARN, with the actions it uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import jsii
from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from constructs import Construct

from infra.config import InfraConfig
from infra.constructs.alarm_topic import AlarmTopic
from infra.constructs.concern_function import ConcernFunction
from infra.constructs.lambda_bundle import lambda_code, python_runtime
from infra.constructs.nag import acknowledge, allow
from infra.constructs.secrets import PlatformSecrets
from infra.constructs.tables import TableSpec, table_specs

READ = ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem")
WRITE = (*READ, "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
#: The relay registry is small (one item per relay process) and read whole, cached for a second.
REGISTRY = ("dynamodb:Scan", "dynamodb:GetItem")
S3_IMAGES = ("s3:PutObject", "s3:GetObject", "s3:DeleteObject")
S3_RECORDINGS = ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")


@dataclass(frozen=True)
class Access:
    tables: dict[str, tuple[str, ...]]
    bucket_prefix: str = ""
    bucket_actions: tuple[str, ...] = ()
    #: ``head_object`` answers 404 for a missing key only with ListBucket (else 403).
    list_prefix: bool = False
    join_key: bool = False
    relays: bool = False
    #: Hands out TURN credentials (reads the TURN secret: read only).
    turn: bool = False


#: What each concern touches, read from its routes (functions/routes/*.py, functions/services, core).
ACCESS: dict[str, Access] = {
    "auth": Access(
        tables={"users": WRITE, "emails": WRITE, "refresh-tokens": WRITE, "throttles": WRITE},
    ),
    "settings": Access(
        tables={"users": WRITE}, bucket_prefix="users/", bucket_actions=S3_IMAGES, list_prefix=True
    ),
    "meetings": Access(
        tables={
            "meetings": WRITE,
            "participants": WRITE,
            "throttles": WRITE,
            "users": READ,
            "relays": REGISTRY,
        },
        join_key=True,
        relays=True,
        turn=True,
    ),
    # The join key signs the relay notice of each stored message (functions/services/relay_notices.py);
    # posts are rate limited per participant in the throttles table (functions/core/rate_limit.py).
    "chat": Access(
        tables={"chat": WRITE, "meetings": WRITE, "participants": READ, "users": READ, "throttles": WRITE},
        join_key=True,
    ),
    "recordings": Access(
        tables={"recordings": WRITE, "meetings": WRITE, "participants": READ},
        bucket_prefix="recordings/",
        bucket_actions=S3_RECORDINGS,
    ),
}


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogs:
    """JSON access logs with the route template, never the raw path or query (ids, tokens)."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigw.LogGroupLogDestination(log_group)
        fields = {
            "requestId": "$context.requestId",
            "ip": "$context.identity.sourceIp",
            "time": "$context.requestTimeEpoch",
            "route": "$context.routeKey",
            "status": "$context.status",
            "latencyMs": "$context.responseLatency",
            "integrationLatencyMs": "$context.integrationLatency",
            "integrationError": "$context.integrationErrorMessage",
            "bytes": "$context.responseLength",
        }
        self._format = apigw_v1.AccessLogFormat.custom(json.dumps(fields))

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw_v1.AccessLogFormat:
        return self._format


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        specs: list[TableSpec] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.config = config
        self.specs = {s.name: s for s in (specs if specs is not None else table_specs())}
        retention = config.log_retention
        code = lambda_code(config.lambda_python)
        runtime = python_runtime(config.lambda_python)
        self.alarms = AlarmTopic(self, "Alarms", name=config.name, email=config.alarm_email)
        self.secrets = PlatformSecrets(
            self,
            "Secrets",
            name=config.name,
            replica_regions=list(config.regions[1:]),
            code=code,
            runtime=runtime,
            log_retention=retention,
            generation=config.key_generation,
            turn_rotation_days=config.turn_rotation_days,
        )
        self.functions: dict[str, ConcernFunction] = {}
        for concern, access in ACCESS.items():
            fn = ConcernFunction(
                self,
                concern.title(),
                function_name=f"{config.name}-{concern}",
                handler=f"functions.handlers.{concern}",
                code=code,
                runtime=runtime,
                memory_mib=config.lambda_auth_memory_mib if concern == "auth" else config.lambda_memory_mib,
                timeout=Duration.seconds(config.lambda_timeout_s),
                environment=self._environment(concern, access),
                log_retention=retention,
                alarm_topic=self.alarms.topic,
                description=f"meetup-edge API: {concern}",
            )
            self._grant(fn, access)
            self.functions[concern] = fn
        self.http_api = self._http_api(retention)

    # --- configuration and grants -----------------------------------------------------------------

    def _environment(self, concern: str, access: Access) -> dict[str, str]:
        config = self.config
        env = {
            "MEETUP_TABLE_PREFIX": config.table_prefix,
            "MEETUP_JWT_SECRET_ARN": self.secrets.jwt.secret_arn,
            # Whoever reads the relay registry counts an entry fresh for three of the relays' heartbeats
            # (functions/services/relays.py: HEARTBEAT_FRESH_S).
            "MEETUP_RELAY_HEARTBEAT_S": str(config.relay_heartbeat_s),
            "POWERTOOLS_SERVICE_NAME": f"meetup-{concern}",
            "POWERTOOLS_METRICS_NAMESPACE": "MeetupEdge",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            # Responses carry tokens and presigned URLs: keep them out of traces.
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            "POWERTOOLS_LOGGER_LOG_EVENT": "false",
        }
        if access.bucket_prefix:
            env["MEETUP_BUCKET"] = config.bucket_name
        if access.join_key:
            env["MEETUP_JOIN_PRIVATE_KEY_ARN"] = self.secrets.join_private.secret_arn
        if access.relays:
            env["MEETUP_RELAYS"] = json.dumps(config.relay_endpoints(), separators=(",", ":"))
        if access.turn:
            # The secret's ARN, never its value: read (and cached a few minutes) at run time.
            env["MEETUP_TURN_URLS"] = config.turn_endpoints()
            env["MEETUP_TURN_SECRET_ARN"] = self.secrets.turn.secret_arn
        return env

    def table_arn(self, table: str, index: str | None = None) -> str:
        name = self.config.table_name(table)
        return self.format_arn(
            service="dynamodb", resource="table", resource_name=f"{name}/index/{index}" if index else name
        )

    def _grant(self, fn: ConcernFunction, access: Access) -> None:
        for table, actions in access.tables.items():
            resources = [self.table_arn(table)]
            if "dynamodb:Query" in actions:
                resources += [self.table_arn(table, i) for i in self.specs[table].index_names]
            allow(fn.role, actions, resources)
        if access.bucket_prefix:
            objects = self.format_arn(
                service="s3", region="", account="", resource=self.config.bucket_name,
                resource_name=f"{access.bucket_prefix}*",
            )  # fmt: skip
            allow(
                fn.role,
                access.bucket_actions,
                [objects],
                why_wildcard=f"object keys are per user/meeting, all under the {access.bucket_prefix} prefix",
            )
            if access.list_prefix:
                allow(
                    fn.role,
                    ["s3:ListBucket"],
                    [self.format_arn(service="s3", region="", account="", resource=self.config.bucket_name)],
                    conditions={"StringLike": {"s3:prefix": [f"{access.bucket_prefix}*"]}},
                )
        self.secrets.jwt.grant_read(fn.role)
        if access.join_key:
            self.secrets.join_private.grant_read(fn.role)
        if access.turn:
            self.secrets.turn.grant_read(fn.role)

    # --- HTTP API -----------------------------------------------------------------------------------

    def _http_api(self, retention: logs.RetentionDays) -> apigw.HttpApi:
        from functions.app import ROUTERS  # the routes the functions really serve

        config = self.config
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=config.hosted_zone_id, zone_name=config.domain
        )
        certificate = acm.Certificate(
            self,
            "Certificate",
            domain_name=config.api_domain,
            validation=acm.CertificateValidation.from_dns(zone),
        )
        domain = apigw.DomainName(self, "Domain", domain_name=config.api_domain, certificate=certificate)
        route53.ARecord(
            self,
            "ApiAlias",
            zone=zone,
            record_name=config.api_domain,
            target=route53.RecordTarget.from_alias(
                targets.ApiGatewayv2DomainProperties(
                    domain.regional_domain_name, domain.regional_hosted_zone_id
                )
            ),
        )
        lambda_integrations = {
            concern: integrations.HttpLambdaIntegration(f"{concern.title()}Integration", fn.function)
            for concern, fn in self.functions.items()
        }
        api = apigw.HttpApi(
            self,
            "HttpApi",
            api_name=config.name,
            create_default_stage=False,
            disable_execute_api_endpoint=True,  # one way in: the custom domain, throttled below
            default_integration=lambda_integrations["auth"],
        )
        for concern, router in ROUTERS.items():
            for route in router.routes:
                api.add_routes(
                    path=route.path,  # type: ignore[attr-defined]
                    methods=[apigw.HttpMethod(m) for m in sorted(route.methods)],  # type: ignore[attr-defined]
                    integration=lambda_integrations[concern],
                )
        access_logs = logs.LogGroup(self, "AccessLogs", retention=retention)
        self.stage = apigw.HttpStage(
            self,
            "Stage",
            http_api=api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=config.api_throttle_rate, burst_limit=config.api_throttle_burst
            ),
            access_log_settings=_AccessLogs(access_logs),
            domain_mapping=apigw.DomainMappingOptions(domain_name=domain),
        )
        acknowledge(
            api,
            "APIG4",
            "The functions authorise every request themselves (HS256 access tokens, checked in "
            "functions/core/deps.py); HTTP API JWT authorizers need a JWKS (RS256), and register/login "
            "must stay public",
        )
        self._api_alarms(api)
        return api

    def _api_alarms(self, api: apigw.HttpApi) -> None:
        """5xx answers and p99 latency as clients see them (including API Gateway's own failures)."""
        period = Duration.minutes(5)
        alarms = [
            api.metric_server_error(period=period, statistic="Sum").create_alarm(
                self,
                "Api5xx",
                alarm_description="API answered 5xx",
                threshold=5,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            api.metric_latency(period=period, statistic="p99").create_alarm(
                self,
                "ApiLatency",
                alarm_description=f"API p99 latency above {self.config.api_latency_alarm_ms} ms",
                threshold=self.config.api_latency_alarm_ms,
                evaluation_periods=3,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]
        for alarm in alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(self.alarms.topic))
