"""The IAM statements the synthesised templates grant a role, resolved to the ARNs of the local stack.

Used by test_iam_enforced.py, which gives these statements, as they are, to IAM users of a moto server
with access control on. Only the services the local stack emulates are kept (DynamoDB, S3); the rest is
dropped by name in :data:`NOT_EMULATED`. A resource this module cannot resolve to a plain ARN fails
loudly (:class:`Unresolvable`): it never becomes ``*``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

#: Services whose calls the local stack makes against moto: their statements are kept.
EMULATED = ("dynamodb", "s3")
#: Services granted in the templates but not exercised locally, and why.
NOT_EMULATED = {
    "logs": "Lambda's and ECS's log delivery, not the application's own calls",
    "xray": "the Lambda runtime's tracing",
    # The local stack passes the secrets as environment variables (MEETUP_JWT_SECRET ...), so the
    # functions never call Secrets Manager there; test_secret_names.py checks the names.
    "secretsmanager": "secrets reach the local stack as environment variables",
}


class Unresolvable(ValueError):
    """A CloudFormation value that cannot be turned into the local stack's ARN."""


def load(outdir: Path, template_file: str) -> dict[str, Any]:
    return json.loads((outdir / template_file).read_text())


def role_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """Every statement of the policies attached to the role with logical id ``role``."""
    resources = template["Resources"]
    props = resources[role]["Properties"]
    if props.get("ManagedPolicyArns"):
        raise Unresolvable(
            f"{role} has managed policies, which this harness cannot read: {props['ManagedPolicyArns']}"
        )
    statements = [s for p in props.get("Policies", []) for s in _listed(p["PolicyDocument"]["Statement"])]
    for resource in resources.values():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and {"Ref": role} in resource[
            "Properties"
        ].get("Roles", []):
            statements += _listed(resource["Properties"]["PolicyDocument"]["Statement"])
    return statements


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _service(action: str) -> str:
    return action.split(":", 1)[0]


def resolve(value: Any, pseudo: dict[str, str]) -> str:
    """A Resource value as a plain string; ``pseudo`` maps AWS::Partition, AWS::Region, AWS::AccountId."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref" and arg in pseudo:
            return pseudo[arg]
        if fn == "Fn::Join":
            sep, parts = arg
            return sep.join(resolve(p, pseudo) for p in parts)
        if fn == "Fn::Sub" and isinstance(arg, str):

            def sub(m: re.Match[str]) -> str:
                if m.group(1) not in pseudo:
                    raise Unresolvable(f"Fn::Sub of ${{{m.group(1)}}} in {arg!r}")
                return pseudo[m.group(1)]

            return re.sub(r"\$\{([^}!]+)\}", sub, arg)
    raise Unresolvable(f"cannot resolve {json.dumps(value)} to a local ARN")


def local_policy(statements: list[dict[str, Any]], *, account: str, region: str) -> dict[str, Any]:
    """The emulated services' statements, resources resolved: a policy document for moto."""
    pseudo = {"AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": account}
    kept = []
    for statement in statements:
        if "NotAction" in statement or "NotResource" in statement:
            raise Unresolvable(f"NotAction/NotResource is not evaluated like AWS by moto: {statement}")
        actions = _listed(statement["Action"])
        services = {_service(a) for a in actions}
        if services <= set(NOT_EMULATED):
            continue
        unknown = services - set(EMULATED)
        if unknown or len(services) > 1:
            raise Unresolvable(f"statement mixes or names services not sorted here ({services}): {statement}")
        resources = [resolve(r, pseudo) for r in _listed(statement["Resource"])]
        kept.append({**statement, "Action": actions, "Resource": resources})
    if not kept:
        raise Unresolvable("no DynamoDB or S3 statement found: the wrong role?")
    return {"Version": "2012-10-17", "Statement": kept}


def without_action(policy: dict[str, Any], action: str) -> dict[str, Any]:
    """``policy`` less one action everywhere (statements left empty are dropped)."""
    statements = []
    for s in policy["Statement"]:
        actions = [a for a in s["Action"] if a != action]
        if actions:
            statements.append({**s, "Action": actions})
    return {**policy, "Statement": statements}
