"""Cluster configuration with presets; the relay maps its ``MEETUP_RELAY_CLUSTER_*`` settings onto this.

Presets follow HashiCorp memberlist, whose defaults come from years of production use: ``lan()`` is its
DefaultLANConfig, ``wan()`` its DefaultWANConfig (probe every 5 s, timeout 3 s, suspicion multiplier 6,
gossip to 4 nodes every 500 ms, push-pull every 60 s). ``local()`` is for one machine (tests, benchmark,
demos on loopback): the same shape scaled down so a failure is detected in seconds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field


@dataclass
class ClusterConfig:
    #: This relay's id in the cluster (the registry's relay id); unique, stable for the process.
    node_id: str
    #: Shared HMAC secrets: the first signs, any verifies (add the new key everywhere, then make it
    #: first, then drop the old one: rotation without a split cluster). Empty secrets are refused.
    secrets: tuple[str, ...] = ()
    bind_host: str = "127.0.0.1"
    #: UDP and TCP on the same port number (0: any free port, both protocols get the same one).
    bind_port: int = 0
    #: Address other relays use (a task's public IP); defaults to ``bind_host``.
    advertise_host: str | None = None
    #: Initial peers as "host:port" (from configuration, or from the relay registry in the cloud).
    seeds: tuple[str, ...] = ()
    # Member metadata, gossiped with every alive announcement.
    region: str = "local"
    signalling_url: str = ""
    cascade_url: str = ""
    load: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)

    # SWIM failure detection.
    probe_interval_s: float = 1.0
    probe_timeout_s: float = 0.5
    indirect_checks: int = 3
    suspicion_mult: float = 4.0
    # Dissemination: piggybacked on probes and sent to ``gossip_nodes`` peers every ``gossip_interval_s``.
    gossip_interval_s: float = 0.2
    gossip_nodes: int = 3
    retransmit_mult: int = 4
    #: Dead members still get gossip this long, so that after a short partition they learn it and refute.
    gossip_to_dead_s: float = 30.0
    #: Full anti-entropy (members and every room) over TCP with one random peer.
    push_pull_interval_s: float = 30.0
    #: Try a dead member or an unreachable seed this often: how a healed partition finds itself again.
    reconnect_interval_s: float = 10.0
    stream_timeout_s: float = 10.0
    #: Bytes per UDP datagram (below a 1500-byte MTU minus IP/UDP headers); larger deltas go over TCP.
    max_datagram: int = 1400
    max_stream_frame: int = 16 * 1024 * 1024
    #: Messages older (or further in the future) than this are refused as replays; also bounds skew.
    replay_window_s: float = 60.0
    # Room state.
    chat_keep: int = 200
    #: Bytes of a chat notification (the protocol allows 2000 characters: up to 8000 bytes of UTF-8).
    chat_text_max: int = 8000
    #: A relay dead this long has its participants tombstoned ("evicted") by the survivors; the relay
    #: itself re-asserts them if it was only partitioned away.
    evict_after_s: float = 60.0
    #: An ended meeting is forgotten this long after it ended (its flag is all that is left of it).
    ended_retention_s: float = 3600.0

    def __post_init__(self) -> None:
        if not self.node_id:
            raise ValueError("node_id is required")
        if isinstance(self.secrets, str):
            self.secrets = (self.secrets,)
        if not self.secrets or not all(self.secrets):
            raise ValueError("at least one non-empty shared secret is required")
        if self.probe_timeout_s >= self.probe_interval_s:
            raise ValueError("probe_timeout_s must be shorter than probe_interval_s")

    @classmethod
    def local(cls, node_id: str, **kw: object) -> ClusterConfig:
        """Loopback and tests: the LAN shape, scaled so detection and healing take a few seconds."""
        base = dict(
            probe_interval_s=0.5, probe_timeout_s=0.2, suspicion_mult=4.0, gossip_interval_s=0.1,
            gossip_nodes=3, push_pull_interval_s=5.0, reconnect_interval_s=0.5, gossip_to_dead_s=5.0,
            stream_timeout_s=3.0, evict_after_s=5.0, replay_window_s=30.0,
        )  # fmt: skip
        return cls(node_id=node_id, **{**base, **kw})  # type: ignore[arg-type]

    @classmethod
    def lan(cls, node_id: str, **kw: object) -> ClusterConfig:
        """memberlist DefaultLANConfig: relays of one region."""
        return cls(node_id=node_id, **kw)  # type: ignore[arg-type]

    @classmethod
    def wan(cls, node_id: str, **kw: object) -> ClusterConfig:
        """memberlist DefaultWANConfig: relays across regions."""
        base = dict(
            probe_interval_s=5.0, probe_timeout_s=3.0, suspicion_mult=6.0, gossip_interval_s=0.5,
            gossip_nodes=4, push_pull_interval_s=60.0, reconnect_interval_s=30.0, gossip_to_dead_s=60.0,
            evict_after_s=120.0,
        )  # fmt: skip
        return cls(node_id=node_id, **{**base, **kw})  # type: ignore[arg-type]

    @classmethod
    def preset(cls, name: str, node_id: str, **kw: object) -> ClusterConfig:
        presets = {"local": cls.local, "lan": cls.lan, "wan": cls.wan}
        if name not in presets:
            raise ValueError(f"unknown cluster preset {name!r} (local, lan, wan)")
        return presets[name](node_id, **kw)

    def replace(self, **kw: object) -> ClusterConfig:
        return dataclasses.replace(self, **kw)  # type: ignore[arg-type]

    # -- derived bounds (memberlist's formulas), used by the protocol and asserted by the tests ------

    def suspicion_timeout_s(self, n: int) -> float:
        """How long a member stays suspect before it is declared dead: grows with log10 of the cluster,
        because a suspicion needs that many more gossip rounds to reach everyone (and be refuted)."""
        return self.suspicion_mult * max(1.0, math.log10(max(n, 1))) * self.probe_interval_s

    def retransmits(self, n: int) -> int:
        """How many times each update is piggybacked: enough rounds for an epidemic to reach n members."""
        return self.retransmit_mult * max(1, math.ceil(math.log10(n + 1)))

    def push_pull_interval_for(self, n: int) -> float:
        """memberlist's pushPullScale: push-pull carries the whole member list (O(n) bytes), so beyond 32
        members the interval grows with log2(n) to keep each relay's TCP load from growing with n."""
        if n <= 32:
            return self.push_pull_interval_s
        return self.push_pull_interval_s * (math.ceil(math.log2(n) - math.log2(32)) + 1)

    def detection_bound_s(self, n: int) -> float:
        """Documented upper bound from a crash to every live member marking the node dead.

        Some member probes the dead one within a few probe periods (each of the n-1 others probes it once
        per shuffled round: the chance nobody has after k periods is about e^-k, hence k = 6), one period
        for the direct and indirect probes, the suspicion timeout, and log2(n) gossip rounds (twice) for
        the suspicion and the death to reach everyone.
        """
        first_probe = min(n - 1, 6) * self.probe_interval_s
        spread = 2 * math.ceil(math.log2(max(n, 2))) * self.gossip_interval_s
        return first_probe + self.probe_interval_s + self.suspicion_timeout_s(n) + spread

    def convergence_bound_s(self, n: int) -> float:
        """Documented bound from healing a partition to identical room state everywhere.

        A dead member (the other side) is retried every reconnect interval; that push-pull merges both
        sides' rooms in one exchange, whose winning deltas then spread by gossip (log2 n rounds, four
        times for loss and for the re-gossip hop) while the other side refutes its death.
        """
        spread = 4 * math.ceil(math.log2(max(n, 2))) * self.gossip_interval_s
        return self.reconnect_interval_s + self.probe_interval_s + spread + self.stream_timeout_s / 3
