"""Secret names that Secrets Manager would misread as complete ARNs are refused at synth time.

A name ending in a hyphen and six characters (``meetup-edge/cluster-secret``) is read, where an ARN may
be given (``Secret.from_secret_name_v2``, an ECS task's secret ``valueFrom``), as an ARN whose random
suffix is ``secret``: nothing matches, and the relay tasks cannot pull their secrets.
"""

from __future__ import annotations

import pytest

from tests.infra.synth import NEEDS_CDK, Synth

pytest.importorskip("aws_cdk", reason=NEEDS_CDK)

import aws_cdk as cdk
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Annotations, Match

from infra.constructs.secrets import (
    SecretNameCheck,
    checked_secret_name,
    cluster_secret_name,
    jwt_secret_name,
    secret_name_problem,
)


@pytest.mark.parametrize("name", ["meetup-edge/cluster-secret", "x/jwt-signing-secret", "a-b-c/abc-123DEF"])
def test_names_ending_like_an_arn_suffix_are_refused(name: str) -> None:
    assert secret_name_problem(name)
    with pytest.raises(ValueError, match="hyphen and six characters"):
        checked_secret_name(name)


@pytest.mark.parametrize(
    "name", ["meetup-edge/relay-cluster-key", "x/join-public-key", "x/secret", "x/ab-1234567"]
)
def test_other_names_pass(name: str) -> None:
    assert secret_name_problem(name) is None and checked_secret_name(name) == name


def test_the_platforms_own_names_pass() -> None:
    for name in ("meetup-edge", "my-meetup", "m"):
        cluster_secret_name(name)
        jwt_secret_name(name)


def test_the_aspect_fails_a_synth_with_a_misread_name() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    secretsmanager.Secret(stack, "Bad", secret_name="meetup-edge/cluster-secret")
    secretsmanager.Secret(stack, "Good", secret_name="meetup-edge/relay-cluster-key")
    cdk.Aspects.of(app).add(SecretNameCheck())
    annotations = Annotations.from_stack(stack)
    errors = annotations.find_error("*", Match.string_like_regexp("hyphen and six characters"))
    assert [e.id for e in errors] == ["/S/Bad/Resource"]


def test_every_secret_of_the_app_and_every_relay_reference_is_safe(synth: Synth) -> None:
    names = [
        s["Properties"]["Name"]
        for s in synth.resources(synth.meetup.api, "AWS::SecretsManager::Secret").values()
    ]
    assert len(names) == 5 and not [n for n in names if secret_name_problem(n)]
    for stack in synth.meetup.relays.values():
        (task,) = synth.resources(stack, "AWS::ECS::TaskDefinition").values()
        for container in task["Properties"]["ContainerDefinitions"]:
            for secret in container.get("Secrets", []):
                value = secret["ValueFrom"]["Fn::Join"][1][-1]  # ...:secret:<name>
                assert secret_name_problem(value.rsplit(":", 1)[-1]) is None, value
