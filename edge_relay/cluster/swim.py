"""SWIM failure detection and gossip dissemination over authenticated UDP (Das, Gupta, Motivala 2002).

Every ``probe_interval_s`` a relay pings the next member of a shuffled round-robin list (so each member
is probed within a bounded time, SWIM section 4.3). No ack within ``probe_timeout_s``: it asks
``indirect_checks`` others to ping the target for it (a congested link between two relays does not kill
either). No ack by the end of the period: the target becomes suspect, which is gossiped; it has the
suspicion timeout to refute with a higher incarnation before every member declares it dead. Member
updates and room deltas ride on pings, acks and periodic gossip datagrams, each within one MTU.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

from edge_relay.cluster.broadcast import Broadcasts
from edge_relay.cluster.config import ClusterConfig
from edge_relay.cluster.members import Change, Member, MemberTable, State
from edge_relay.cluster.transport import Addr, FaultInjector, Stream, Transport
from edge_relay.cluster.wire import Codec

log = logging.getLogger("edge_relay.cluster")


async def cancel_all(tasks: Iterable[asyncio.Task[Any]], timeout: float = 2.0) -> None:
    """Cancel and wait, bounded: on Python 3.11 ``wait_for`` can swallow a cancellation that races with
    its inner result, so a loop may survive one ``cancel()``; loops also stop on ``Swim.running``."""
    pending = {t for t in tasks if not t.done()}
    deadline = asyncio.get_running_loop().time() + timeout
    while pending and asyncio.get_running_loop().time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    if pending:
        log.warning("cluster tasks did not stop", extra={"tasks": len(pending)})


PING, PING_REQ, ACK, GOSSIP = 1, 2, 3, 4
#: Bytes kept free in a datagram for the envelope (~90 B with a 40-character relay id) and the probe
#: fields around the piggyback (a ping-req with target id and address: ~80 B).
ENVELOPE_RESERVE = 256


class Swim:
    def __init__(
        self,
        config: ClusterConfig,
        on_stream: Callable[[Stream], Any],
        faults: FaultInjector | None = None,
    ) -> None:
        self.config = config
        host = config.advertise_host or config.bind_host
        local = Member(
            config.node_id, host, config.bind_port, 0, State.ALIVE, config.region,
            config.signalling_url, config.cascade_url, config.load, dict(config.extra),
        )  # fmt: skip
        self.table = MemberTable(local)
        self.codec = Codec(config.node_id, config.secrets, config.replay_window_s)
        self.transport = Transport(
            self._on_datagram, on_stream, faults, config.stream_timeout_s, config.max_stream_frame
        )
        self.broadcasts = Broadcasts()
        #: Set by the room layer: called with the "r" items of every accepted datagram.
        self.on_rooms: Callable[[list[Any]], None] = lambda items: None
        self.listeners: list[Callable[[Change], None]] = []
        self._seq = itertools.count(1)
        self._pending: dict[int, Callable[[], None]] = {}
        self._suspicions: dict[str, asyncio.TimerHandle] = {}
        self._probe_order: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.rng = random.Random()  # noqa: S311 (peer selection, not secrets)
        self.running = False

    @property
    def local(self) -> Member:
        return self.table.local

    async def start(self) -> None:
        port = await self.transport.start(self.config.bind_host, self.config.bind_port)
        self.local.port = port
        self.running = True
        self._tasks = [asyncio.create_task(self._probe_loop()), asyncio.create_task(self._gossip_loop())]

    async def stop(self, leave: bool) -> None:
        if leave:
            self.table.leaving = True
            self.local.incarnation += 1
            self.local.state = State.LEFT
            for m in self.table.others():  # tell everyone directly: a leave must not wait for a probe
                self._send(m.addr, GOSSIP, {"g": [self.local.to_wire()]}, piggyback=False)
            await asyncio.sleep(0.01)
        self.running = False
        await cancel_all(self._tasks)
        for handle in self._suspicions.values():
            handle.cancel()
        self._suspicions.clear()
        await self.transport.stop()

    # -- sending ------------------------------------------------------------------------------------

    def _send(self, addr: Addr, kind: int, payload: dict[str, Any], piggyback: bool = True) -> None:
        if piggyback:
            limit = self.config.retransmits(self.table.live_count())
            payload.update(self.broadcasts.take(self.config.max_datagram - ENVELOPE_RESERVE, limit))
        data = self.codec.seal(kind, payload)
        if len(data) > self.config.max_datagram:  # would fragment on a WAN path; never expected
            self.transport.stats["udp_oversize_out"] += 1
        self.transport.send(addr, data)

    def broadcast(self, m: Member) -> None:
        self.broadcasts.put("g", m.id, m.to_wire())

    # -- receiving ----------------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, src: Addr) -> None:
        if len(data) > self.config.max_datagram + 64:
            self.codec.rejected["oversize"] += 1
            return
        msg = self.codec.open(data)
        if msg is None or not isinstance(msg.payload, dict):
            if msg is not None:
                self.codec.rejected["malformed"] += 1
            return
        p = msg.payload
        try:
            self.merge_members(p.get("g", []))
            if p.get("r"):
                self.on_rooms(p["r"])
            if msg.kind == PING and p.get("to") == self.local.id:
                self._send(src, ACK, {"s": int(p["s"])})
            elif msg.kind == PING_REQ:
                self._indirect(src, int(p["s"]), str(p["to"]), p["a"])
            elif msg.kind == ACK:
                callback = self._pending.pop(int(p["s"]), None)
                if callback is not None:
                    callback()
        except (KeyError, TypeError, ValueError, IndexError):
            self.codec.rejected["malformed"] += 1

    def merge_members(self, rows: Any, from_push_pull: bool = False) -> None:
        if not isinstance(rows, list):
            raise ValueError("member list is not a list")
        for row in rows:
            try:
                upd = Member.from_wire(row)
            except ValueError:
                self.codec.rejected["malformed"] += 1
                continue
            change = self.table.apply(upd, from_push_pull)
            if change is not None:
                self.handle(change)

    def handle(self, change: Change) -> None:
        m = change.member
        self.broadcast(m)
        if change.kind == "suspect":
            old = self._suspicions.pop(m.id, None)
            if old is not None:
                old.cancel()
            timeout = self.config.suspicion_timeout_s(self.table.live_count())
            loop = asyncio.get_running_loop()
            self._suspicions[m.id] = loop.call_later(timeout, self._expire, m.id, m.incarnation)
        elif m.state != State.SUSPECT and m.id in self._suspicions:
            self._suspicions.pop(m.id).cancel()
        for listener in self.listeners:
            try:
                listener(change)
            except Exception:
                log.exception("cluster member listener failed")

    def _expire(self, member_id: str, incarnation: int) -> None:
        self._suspicions.pop(member_id, None)
        change = self.table.expire_suspect(member_id, incarnation)
        if change is not None:
            log.info("cluster member dead", extra={"member": member_id})
            self.handle(change)

    def _indirect(self, requester: Addr, seq: int, target_id: str, target_addr: Any) -> None:
        """Ping ``target`` on behalf of ``requester`` and relay the ack (SWIM's ping-req)."""
        host, port = target_addr
        if not isinstance(host, str) or type(port) is not int:
            raise ValueError("bad ping-req address")
        mine = next(self._seq)
        self._pending[mine] = lambda: self._send(requester, ACK, {"s": seq})
        self._send((host, port), PING, {"s": mine, "to": target_id})
        asyncio.get_running_loop().call_later(self.config.probe_timeout_s, self._pending.pop, mine, None)

    # -- probing ------------------------------------------------------------------------------------

    def _next_target(self) -> Member | None:
        while True:
            if not self._probe_order:
                self._probe_order = [m.id for m in self.table.others()]
                self.rng.shuffle(self._probe_order)
                if not self._probe_order:
                    return None
            m = self.table.get(self._probe_order.pop())
            if m is not None and m.live:
                return m

    async def _probe_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self.running:
            started = loop.time()
            target = self._next_target()
            if target is not None:
                try:
                    await self._probe(target)
                except Exception:
                    log.exception("cluster probe failed")
            await asyncio.sleep(max(0.0, self.config.probe_interval_s - (loop.time() - started)))

    async def _probe(self, target: Member) -> None:
        cfg = self.config
        acked = asyncio.Event()
        seq = next(self._seq)
        self._pending[seq] = acked.set
        try:
            self._send(target.addr, PING, {"s": seq, "to": target.id})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(acked.wait(), cfg.probe_timeout_s)
            if acked.is_set():
                return
            helpers = [m for m in self.table.others(State.ALIVE) if m.id != target.id]
            for helper in self.rng.sample(helpers, min(cfg.indirect_checks, len(helpers))):
                self._send(helper.addr, PING_REQ, {"s": seq, "to": target.id, "a": list(target.addr)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(acked.wait(), cfg.probe_interval_s - cfg.probe_timeout_s)
        finally:
            self._pending.pop(seq, None)
        current = self.table.get(target.id)
        if not acked.is_set() and current is not None and current.state == State.ALIVE:
            suspect = current.snapshot()
            suspect.state = State.SUSPECT
            change = self.table.apply(suspect)
            if change is not None:
                log.info("cluster member suspect", extra={"member": target.id})
                self.handle(change)

    # -- gossip -------------------------------------------------------------------------------------

    def gossip_targets(self, count: int) -> list[Member]:
        """Live members, plus the recently dead: after a short partition they learn it and refute."""
        now = self.table.clock()
        pool = self.table.others()
        pool += [m for m in self.table.others(State.DEAD) if now - m.since < self.config.gossip_to_dead_s]
        return self.rng.sample(pool, min(count, len(pool)))

    async def _gossip_loop(self) -> None:
        while self.running:
            await asyncio.sleep(self.config.gossip_interval_s)
            for m in self.gossip_targets(self.config.gossip_nodes):
                if not self.broadcasts:
                    break
                self._send(m.addr, GOSSIP, {})
