"""cdk-nag acknowledgments, each with its reason, and IAM statements that carry their own.

cdk-nag 3 reads acknowledgments from CDK's ``Validations`` (``AwsSolutions::<rule>``) on a construct or
any of its ancestors. Wildcard findings (``AwsSolutions-IAM5[Resource::...]``) name the flattened resource
string, so :func:`allow` computes the very string cdk-nag will report for each wildcard it grants and
acknowledges exactly that, never the rule as a whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct

PACK = "AwsSolutions"


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Accept finding ``rule`` (``IAM4``, ``IAM5[Resource::*]`` ...) for ``scope`` and everything in it."""
    if len(reason) < 20:
        raise ValueError(f"give a real reason for acknowledging {rule}")
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PACK}::{PACK}-{rule}", reason=reason))


def flatten(value: Any) -> str:
    """A resolved CloudFormation value as cdk-nag prints it (its ``flattenCfnReference``)."""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Fn::Join":
            return arg[0].join(flatten(item) for item in arg[1])
        if fn == "Fn::Sub":
            return flatten(arg)
        if fn == "Fn::GetAtt":
            return f"<{flatten(arg[0])}.{flatten(arg[1])}>"
        if fn == "Fn::ImportValue":
            return flatten(arg)
        if fn == "Ref":
            return f"<{flatten(arg)}>"
    return json.dumps(value, separators=(",", ":"))


def wildcard_findings(stack: Stack, actions: Iterable[str], resources: Iterable[str]) -> list[str]:
    """The IAM5 findings a statement with these actions and resources will raise."""
    found = [f"IAM5[Action::{a}]" for a in actions if "*" in a]
    for resource in resources:
        text = flatten(stack.resolve(resource))
        if "*" in text:
            found.append(f"IAM5[Resource::{text}]")
    return found


def allow(
    grantee: iam.IRole,
    actions: Sequence[str],
    resources: Sequence[str],
    *,
    why_wildcard: str = "",
    conditions: dict[str, Any] | None = None,
) -> iam.PolicyStatement:
    """Add an Allow statement to ``grantee``; wildcards must be justified by ``why_wildcard``."""
    statement = iam.PolicyStatement(actions=list(actions), resources=list(resources), conditions=conditions)
    grantee.add_to_principal_policy(statement)
    findings = wildcard_findings(Stack.of(grantee), actions, resources)
    if findings and not why_wildcard:
        raise ValueError(f"wildcards in a grant to {grantee.node.path} need a reason: {findings}")
    for finding in findings:
        acknowledge(grantee, finding, why_wildcard)
    return statement
