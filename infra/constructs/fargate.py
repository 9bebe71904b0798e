"""What the relay and TURN services share: a Fargate task definition and a container image, both for the
CPU architecture the config picks (``relay_arm64``: Graviton, or x86-64)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from constructs import Construct


def task_definition(scope: Construct, *, cpu: int, memory_mib: int, arm64: bool) -> ecs.FargateTaskDefinition:
    """The ``Task`` of a Fargate service on Linux."""
    return ecs.FargateTaskDefinition(
        scope,
        "Task",
        cpu=cpu,
        memory_limit_mib=memory_mib,
        runtime_platform=ecs.RuntimePlatform(
            cpu_architecture=ecs.CpuArchitecture.ARM64 if arm64 else ecs.CpuArchitecture.X86_64,
            operating_system_family=ecs.OperatingSystemFamily.LINUX,
        ),
    )


def image(scope: Construct, directory: Path, *, arm64: bool, file: str | None = None) -> ecs.ContainerImage:
    """The ``Image`` asset built from ``directory`` (``file``: the Dockerfile in it, if not its own)."""
    platform = ecr_assets.Platform.LINUX_ARM64 if arm64 else ecr_assets.Platform.LINUX_AMD64
    asset = ecr_assets.DockerImageAsset(
        scope, "Image", directory=str(directory), file=file, platform=platform
    )
    return ecs.ContainerImage.from_docker_image_asset(asset)
