"""Data: the DynamoDB global tables, the media bucket and the backup plan (primary region).

Tables are global: each relay region holds a replica, so a relay heartbeats into the registry next to
it and a future API region starts with the data already there. The media bucket is regional (clients
upload where the API signs). Other stacks reach these resources by their configured names, never by
CloudFormation exports, so a table or bucket change never waits for an importing stack to let go.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_backup as backup
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import InfraConfig
from infra.constructs.buckets import MediaBucket
from infra.constructs.nag import acknowledge
from infra.constructs.tables import GlobalTables, TableSpec, table_specs

#: Tables whose loss would lose user data; the rest (sessions, throttles, registry) rebuild themselves.
BACKED_UP = ("users", "emails", "meetings", "participants", "chat", "recordings")


class DataStack(Stack):
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
        self.tables = GlobalTables(
            self,
            "Tables",
            specs=specs if specs is not None else table_specs(),
            table_prefix=config.table_prefix,
            replica_regions=list(config.regions[1:]),
        )
        self.media = MediaBucket(
            self,
            "Media",
            bucket_name=config.bucket_name,
            cors_origins=config.web_origins,
            recordings_ia_days=config.recordings_ia_days,
            noncurrent_version_days=config.noncurrent_version_days,
        )
        self._backup_plan()

    def _backup_plan(self) -> None:
        """Daily and monthly snapshots on top of PITR (35 days): PITR undoes recent mistakes, the vault
        keeps independent copies for a year, outside the tables' own deletion path. The media bucket is
        protected by versioning instead: backing recordings up would double their storage cost."""
        config = self.config
        vault = backup.BackupVault(self, "Vault", backup_vault_name=f"{config.name}-vault")
        plan = backup.BackupPlan(self, "Plan", backup_plan_name=f"{config.name}-data", backup_vault=vault)
        plan.add_rule(
            backup.BackupPlanRule(
                rule_name="daily",
                schedule_expression=events.Schedule.cron(hour="3", minute="0"),
                delete_after=Duration.days(config.backup_daily_retention_days),
            )
        )
        plan.add_rule(
            backup.BackupPlanRule(
                rule_name="monthly",
                schedule_expression=events.Schedule.cron(day="1", hour="4", minute="0"),
                delete_after=Duration.days(config.backup_monthly_retention_days),
            )
        )
        role = iam.Role(
            self,
            "BackupRole",
            assumed_by=iam.ServicePrincipal("backup.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AWSBackupServiceRolePolicyForBackup"
                )
            ],
        )
        acknowledge(
            role,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup]",
            "AWS Backup's own service-role policy is the documented, AWS-maintained way to let it snapshot",
        )
        plan.add_selection(
            "Tables",
            role=role,
            resources=[
                backup.BackupResource.from_arn(self.tables.tables[name].table_arn)
                for name in BACKED_UP
                if name in self.tables.tables
            ],
        )
