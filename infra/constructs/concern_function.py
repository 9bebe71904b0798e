"""One control-plane concern as a Lambda function: its own role, log group, configuration and alarms.

Each concern (auth, settings, meetings, chat, recordings) gets a role of its own that starts empty, so
the only permissions it holds are the ones the API stack grants it explicitly; the AWS managed
``AWSLambdaBasicExecutionRole`` (logs on every group in the account) is replaced by write access to
the function's own log group.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.nag import acknowledge, allow


class ConcernFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_name: str,
        handler: str,
        code: lambda_.Code,
        runtime: lambda_.Runtime,
        memory_mib: int,
        timeout: Duration,
        environment: Mapping[str, str],
        log_retention: logs.RetentionDays,
        alarm_topic: sns.ITopic | None = None,
        description: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{function_name}: only what this concern needs",
        )
        allow(self.role, ["logs:CreateLogStream", "logs:PutLogEvents"], [self.log_group.log_group_arn])
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=description,
            runtime=runtime,
            architecture=lambda_.Architecture.ARM_64,
            handler=handler,
            code=code,
            memory_size=memory_mib,
            timeout=timeout,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
            environment=dict(environment),
        )
        # Both on the function: it owns the inline policy that active tracing adds to the role.
        acknowledge(
            self.function,
            "IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level scoping",
        )
        acknowledge(
            self.function,
            "L1",
            f"Pinned to python{runtime.name.removeprefix('python')} on purpose: the bundle's wheels are "
            "resolved for that interpreter (meetup:lambda:python); newer runtimes are adopted deliberately",
        )
        if alarm_topic is not None:
            self._alarms(alarm_topic, timeout)

    def _alarms(self, topic: sns.ITopic, timeout: Duration) -> None:
        """Errors (unhandled: the API answers 500), throttling, and p99 duration near the timeout."""
        fn = self.function
        period = Duration.minutes(5)
        alarms = [
            fn.metric_errors(period=period, statistic="Sum").create_alarm(
                self,
                "Errors",
                alarm_description=f"{fn.function_name}: unhandled errors",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            fn.metric_throttles(period=period, statistic="Sum").create_alarm(
                self,
                "Throttles",
                alarm_description=f"{fn.function_name}: invocations throttled (concurrency limit)",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            fn.metric_duration(period=period, statistic="p99").create_alarm(
                self,
                "Duration",
                alarm_description=f"{fn.function_name}: p99 duration above 80 % of the timeout",
                threshold=timeout.to_milliseconds() * 0.8,
                evaluation_periods=3,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]
        for alarm in alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
