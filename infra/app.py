"""The CDK app: ``cdk synth`` (cdk.json runs ``python -m infra.app``) or ``python -m infra.app``.

Stacks, for regions ``[primary, *others]`` from ``meetup:regions``:

* ``<Name>-Data`` (primary): global tables replicated to every region, media bucket, backups.
* ``<Name>-Api`` (primary): HTTP API, one Lambda per concern, secrets (join public key replicated).
* ``<Name>-Relays-<region>`` (each region): VPC, Fargate relays behind a TLS NLB, regional DNS name.
* ``<Name>-Turn-<region>`` (each region): coturn on Fargate in the relays' VPC, behind its own NLB
  (UDP/TCP 3478, TLS 443), ``turn-<region>.<domain>``.
* ``<Name>-Routing`` (primary; Route 53 is global): latency-routed ``relay.<domain>``.
* ``<Name>-Web`` (us-east-1, CloudFront's certificate region): the browser client on ``app.<domain>``,
  with the API's paths forwarded to the API (same origin).

cdk-nag's AwsSolutions pack validates every synth; a finding fails it unless acknowledged with a reason
at the construct concerned (infra/constructs/nag.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import InfraConfig
from infra.constructs.secrets import SecretNameCheck
from infra.stacks.api import ApiStack
from infra.stacks.data import DataStack
from infra.stacks.relays import RelayStack
from infra.stacks.routing import RoutingStack
from infra.stacks.turn import TurnStack
from infra.stacks.web import WEB_REGION, WebStack


@dataclass
class MeetupApp:
    app: cdk.App
    config: InfraConfig
    data: DataStack
    api: ApiStack
    routing: RoutingStack
    web: WebStack
    relays: dict[str, RelayStack] = field(default_factory=dict)
    turn: dict[str, TurnStack] = field(default_factory=dict)


def build(app: cdk.App, nag: bool | None = None) -> MeetupApp:
    """Add every stack to ``app``; ``nag`` overrides ``meetup:nag`` (tests of single stacks skip it)."""
    config = InfraConfig.from_context(app.node)
    prefix = config.stack_prefix
    tags = {"project": config.name}
    for key, value in tags.items():
        cdk.Tags.of(app).add(key, value)

    def env(region: str) -> cdk.Environment:
        return cdk.Environment(account=config.account, region=region)

    primary = config.primary_region
    data = DataStack(app, f"{prefix}-Data", config=config, env=env(primary), description="meetup-edge data")
    api = ApiStack(app, f"{prefix}-Api", config=config, env=env(primary), description="meetup-edge API")
    api.add_stack_dependency(data)
    relays = {}
    turn = {}
    for region in config.regions:
        stack = RelayStack(
            app, f"{prefix}-Relays-{region}", config=config, region=region, env=env(region),
            description=f"meetup-edge relays in {region}",
        )  # fmt: skip
        stack.add_stack_dependency(data)  # the registry replica exists in this region
        stack.add_stack_dependency(api)  # the join public key (secret replica) exists in this region
        relays[region] = stack
        turn[region] = TurnStack(
            app, f"{prefix}-Turn-{region}", config=config, region=region, env=env(region),
            cluster=stack.cluster, alarm_topic=stack.alarm_topic.topic,
            description=f"meetup-edge TURN in {region}",
        )  # fmt: skip
        turn[region].add_stack_dependency(api)  # the TURN secret (replica) exists in this region
    routing = RoutingStack(
        app, f"{prefix}-Routing", config=config, env=env(primary), description="meetup-edge DNS"
    )
    for stack in relays.values():
        routing.add_stack_dependency(stack)  # health checks probe names the relay stacks create
    web = WebStack(
        app, f"{prefix}-Web", config=config, env=env(WEB_REGION), description="meetup-edge web client"
    )
    web.add_stack_dependency(api)  # CloudFront forwards the API's paths to api.<domain>
    cdk.Aspects.of(app).add(SecretNameCheck())  # a misread secret name fails the synth, not the deploy
    if config.nag if nag is None else nag:
        # Acknowledgments are also written into each resource's Metadata: the reasons travel with the
        # templates, for whoever reviews a change set.
        cdk.Validations.of(app).add_plugins(
            AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
        )
    return MeetupApp(
        app=app, config=config, data=data, api=api, routing=routing, web=web, relays=relays, turn=turn
    )


def main(context: dict[str, Any] | None = None) -> None:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    app = cdk.App(context=context)
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
