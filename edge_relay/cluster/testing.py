"""N relays' cluster layers in one process on loopback, with partitions and loss: for tests, the
benchmark and demos (netem is not available here, so faults are injected at the transport)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from edge_relay.cluster.config import ClusterConfig
from edge_relay.cluster.members import State
from edge_relay.cluster.node import Cluster
from edge_relay.cluster.transport import FaultInjector


class LocalCluster:
    def __init__(
        self,
        n: int,
        secret: str = "test-secret",  # noqa: S107 (loopback test clusters only)
        preset: str = "local",
        **overrides: Any,
    ) -> None:
        self.n, self.secret, self.preset, self.overrides = n, secret, preset, overrides
        self.nodes: list[Cluster] = []

    def config(self, i: int, seeds: tuple[str, ...]) -> ClusterConfig:
        return ClusterConfig.preset(
            self.preset, f"relay-{i:02d}", secrets=(self.secret,), seeds=seeds, region=f"region-{i % 3}",
            signalling_url=f"ws://127.0.0.1:{7000 + i}/ws", cascade_url=f"ws://127.0.0.1:{7000 + i}/cascade",
            **self.overrides,
        )  # fmt: skip

    async def start(self) -> LocalCluster:
        first = Cluster(self.config(0, ()), FaultInjector())
        await first.start()
        self.nodes = [first]
        seed = (f"127.0.0.1:{first.address[1]}",)
        rest = [Cluster(self.config(i, seed), FaultInjector()) for i in range(1, self.n)]
        await asyncio.gather(*(node.start() for node in rest))
        self.nodes += rest
        return self

    async def restart(self, node: Cluster) -> Cluster:
        """A crashed relay comes back with the same id on a new port (it must refute its own death)."""
        i = int(node.node_id.rsplit("-", 1)[1])
        fresh = Cluster(self.config(i, (f"127.0.0.1:{self.nodes[0].address[1]}",)), FaultInjector())
        await fresh.start()
        self.nodes = [fresh if n is node else n for n in self.nodes]
        return fresh

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop(leave=False) for node in self.nodes), return_exceptions=True)

    async def __aenter__(self) -> LocalCluster:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def partition(self, *groups: Iterable[Cluster]) -> None:
        """Cut every link between different groups, both ways (UDP in and out, TCP out)."""
        sides = [list(g) for g in groups]
        for i, side in enumerate(sides):
            others = [node.address for j, other in enumerate(sides) if j != i for node in other]
            for node in side:
                assert node.faults is not None
                node.faults.block(*others)

    def heal(self) -> None:
        for node in self.nodes:
            assert node.faults is not None
            node.faults.heal()

    @staticmethod
    def sees(nodes: Iterable[Cluster], ids: set[str]) -> bool:
        """Every node in ``nodes`` has exactly ``ids`` (minus itself) as alive members."""
        return all({m.id for m in n.members(include_suspect=False)} == ids - {n.node_id} for n in nodes)

    @staticmethod
    def state_of(nodes: Iterable[Cluster], member_id: str, state: State) -> bool:
        return all((m := n.member(member_id)) is not None and m.state == state for n in nodes)

    @staticmethod
    def rooms_identical(nodes: list[Cluster]) -> bool:
        first = {mid: r.digest() for mid, r in nodes[0].rooms.items()}
        return bool(first) and all(
            {mid: r.digest() for mid, r in n.rooms.items()} == first for n in nodes[1:]
        )


async def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> float:
    """Seconds until ``condition()`` held; raises TimeoutError past ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"condition not met within {timeout:.1f} s")
        await asyncio.sleep(step)
    return time.monotonic() - started
