"""The SNS topic alarms publish to, encrypted with a key CloudWatch may use.

An AWS managed key (``alias/aws/sns``) cannot be used here: its key policy does not let CloudWatch
encrypt, so alarm notifications would silently fail. A customer managed key (rotated yearly) whose
policy admits ``cloudwatch.amazonaws.com`` fixes that for ~1 USD a month per region.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class AlarmTopic(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, name: str, email: str = "") -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description=f"{name}: encrypts alarm notifications",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=None,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy, "*" is this key
            )
        )
        self.topic = sns.Topic(
            self, "Topic", display_name=f"{name} alarms", master_key=self.key, enforce_ssl=True
        )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
