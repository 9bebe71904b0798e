"""A user-space WAN between network namespaces: netem, in user space.

Why: this kernel has no netem (``tc qdisc ... netem`` fails), yet multi-region tests need real IP traffic
with real one-way delay, loss and partitions between "regions". So every site gets a TUN device and this
process is the only link between them: it reads each IPv4 packet a site sends, finds the destination site
from the destination address (``PREFIX.<site>.x``), holds the packet for the pair's one-way delay and
writes it into that site's TUN, or drops it when the pair is cut. Each pair is a FIFO (a packet is never
released before the one ahead of it), so lowering a delay never reorders packets.

Site 0 is the control site in the root namespace (the test process, the API, moto); sites 1..N are
namespaces ``NAME-r<n>``. Each site has address ``PREFIX.<n>.1/32`` and a route to ``PREFIX.0.0/16``
through its TUN. IPv6 is disabled in the namespaces and dropped here.

Control, one command a line on stdin, one answer line on stdout (``ok ...`` or ``error ...``)::

    delay A B MS [oneway]   one-way delay A->B (and B->A unless oneway)
    loss A B PCT [oneway]   random loss, percent
    cut A B [oneway]        drop everything (also what is in flight)
    heal A B [oneway]
    stats                   ok {"pairs": {"A>B": {"forwarded", "bytes", "dropped", "queued"}}, "ignored": n}

``ready {json}`` is printed once every TUN is up. Stdin EOF, SIGTERM or SIGINT: the namespaces (and any
process left in them) are removed. Run as root: ``python -m tests.regions.wan --sites 3 --name meet-ab12``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import fcntl
import json
import os
import random
import signal
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
MTU = 1500  # WebRTC sends ~1200-byte packets; TCP's MSS follows the MTU, so nothing exceeds it
READ_SIZE = 65535  # a TUN without IFF_VNET_HDR never hands over more than the MTU, but read generously
MAX_QUEUE = 20000  # packets in flight per pair (a 20 ms link at 100 Mbit/s holds ~170)


def sh(*argv: str, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def namespace_pids(namespaces: list[str]) -> list[int]:
    """Processes in these namespaces (a zombie has left its namespace: not listed)."""
    return [int(p) for ns in namespaces for p in sh("ip", "netns", "pids", ns, check=False).split()]


def kill_namespace_processes(namespaces: list[str]) -> None:
    """SIGKILL whatever runs in these namespaces, and wait (briefly) until it is gone."""
    deadline = time.monotonic() + 2
    while (pids := namespace_pids(namespaces)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def open_tun(name: str) -> int:
    """A TUN device (raw IPv4/IPv6 packets, no packet-info header); gone when the fd is closed."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class Router:
    def __init__(self, sites: int, prefix: str, name: str, delay_ms: float, control_delay_ms: float) -> None:
        self.prefix = prefix
        self.prefix_bytes = bytes(int(o) for o in prefix.split("."))
        self.namespaces = {n: f"{name}-r{n}" for n in range(1, sites + 1)}
        stem = name.replace("-", "")[-10:]  # interface names have at most 15 characters
        self.tuns = {n: f"{stem}t{n}" for n in range(sites + 1)}
        self.fds: dict[int, int] = {}
        self.created: list[str] = []
        self.delay: dict[tuple[int, int], float] = {}
        self.loss: dict[tuple[int, int], float] = {}
        self.cut: set[tuple[int, int]] = set()
        for a in range(sites + 1):
            for b in range(sites + 1):
                self.delay[a, b] = (control_delay_ms if 0 in (a, b) else delay_ms) / 1000 if a != b else 0.0
        self.queues: dict[tuple[int, int], collections.deque[tuple[float, bytes]]] = {}
        self.timers: dict[tuple[int, int], asyncio.TimerHandle] = {}  # one per non-empty queue
        self.counts: dict[tuple[int, int], list[int]] = collections.defaultdict(lambda: [0, 0, 0])
        self.ignored = 0  # not IPv4, or not for a known site
        self.loop = asyncio.get_running_loop()

    def site_ip(self, n: int) -> str:
        return f"{self.prefix}.{n}.1"

    # --- set-up and tear-down --------------------------------------------------------------------------

    def setup(self) -> None:
        for n, tun in self.tuns.items():
            self.fds[n] = open_tun(tun)
            ns = self.namespaces.get(n)
            run = ["ip", "netns", "exec", ns] if ns else []
            if ns:
                sh("ip", "netns", "add", ns)
                self.created.append(ns)
                sh(*run, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", check=False)
                sh(*run, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1", check=False)
                sh("ip", "link", "set", tun, "netns", ns)
                sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh(*run, "sysctl", "-q", "-w", f"net.ipv6.conf.{tun}.disable_ipv6=1", check=False)
            ipn = ["ip", "-n", ns] if ns else ["ip"]
            sh(*ipn, "link", "set", tun, "mtu", str(MTU), "up")
            sh(*ipn, "addr", "add", f"{self.site_ip(n)}/32", "dev", tun)
            sh(*ipn, "route", "add", f"{self.prefix}.0.0/16", "dev", tun, "src", self.site_ip(n))
            self.loop.add_reader(self.fds[n], self.on_readable, n)

    async def reap(self, grace_s: float = 3.0) -> None:
        """End what the tests left in the namespaces (it would keep them alive): SIGTERM while the WAN
        still forwards, so an agent can leave its meeting and a relay drain, then SIGKILL."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
            for pid in namespace_pids(self.created):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while namespace_pids(self.created) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

    def teardown(self) -> None:
        for fd in self.fds.values():
            with contextlib.suppress(Exception):
                self.loop.remove_reader(fd)
            os.close(fd)  # deletes the TUN (and with it the root namespace's route)
        self.fds.clear()
        kill_namespace_processes(self.created)  # only if reap() did not run
        for ns in self.created:
            sh("ip", "netns", "del", ns, check=False)
        self.created.clear()

    # --- forwarding ------------------------------------------------------------------------------------

    def on_readable(self, src: int) -> None:
        fd = self.fds[src]
        for _ in range(256):  # a burst per wake-up, then let the timers run
            try:
                packet = os.read(fd, READ_SIZE)
            except BlockingIOError:
                return
            self.route(src, packet)

    def route(self, src: int, packet: bytes) -> None:
        if len(packet) < 20 or packet[0] >> 4 != 4 or packet[16:18] != self.prefix_bytes:
            self.ignored += 1  # IPv6 (disabled anyway) or outside the WAN
            return
        dst = packet[18]
        pair = (src, dst)
        if dst not in self.fds:
            self.ignored += 1
            return
        queue = self.queues.setdefault(pair, collections.deque())
        if pair in self.cut or random.random() < self.loss.get(pair, 0.0) or len(queue) >= MAX_QUEUE:
            self.counts[pair][2] += 1
            return
        delay = self.delay[pair]
        if delay <= 0 and not queue:
            self.write(pair, packet)
            return
        due = max(self.loop.time() + delay, queue[-1][0] if queue else 0.0)
        queue.append((due, packet))
        if pair not in self.timers:
            self.timers[pair] = self.loop.call_at(due, self.release, pair)

    def release(self, pair: tuple[int, int]) -> None:
        queue = self.queues[pair]
        horizon = self.loop.time() + 0.0005  # (asyncio wakes up with a millisecond's resolution)
        while queue and queue[0][0] <= horizon:
            self.write(pair, queue.popleft()[1])
        del self.timers[pair]
        if queue:
            self.timers[pair] = self.loop.call_at(queue[0][0], self.release, pair)

    def write(self, pair: tuple[int, int], packet: bytes) -> None:
        counts, fd = self.counts[pair], self.fds.get(pair[1])
        if fd is None:  # torn down while the packet was in flight
            return
        try:
            os.write(fd, packet)
        except OSError:  # the receiving stack is full (EAGAIN) or the device is going away
            counts[2] += 1
            return
        counts[0] += 1
        counts[1] += len(packet)

    # --- control ---------------------------------------------------------------------------------------

    def command(self, line: str) -> str:
        words = line.split()
        if not words:
            return "error empty command"
        if words == ["stats"]:
            keys = ("forwarded", "bytes", "dropped")
            stats = {
                f"{a}>{b}": {**dict(zip(keys, c, strict=True)), "queued": len(self.queues.get((a, b), ()))}
                for (a, b), c in sorted(self.counts.items())
            }
            return "ok " + json.dumps({"pairs": stats, "ignored": self.ignored})
        verb, args = words[0], words[1:]
        oneway = bool(args) and args[-1] == "oneway"
        args = args[:-1] if oneway else args
        arity = {"delay": 3, "loss": 3, "cut": 2, "heal": 2}
        if verb not in arity or len(args) != arity[verb]:
            return f"error usage: {verb} A B{' VALUE' if arity.get(verb) == 3 else ''} [oneway]"
        try:
            a, b = int(args[0]), int(args[1])
            value = float(args[2]) if len(args) == 3 else 0.0
        except ValueError:
            return f"error not a number: {line}"
        if a not in self.fds or b not in self.fds or a == b or value < 0:
            return f"error bad sites or value: {line}"
        for pair in [(a, b)] if oneway else [(a, b), (b, a)]:
            if verb == "delay":
                self.delay[pair] = value / 1000
            elif verb == "loss":
                self.loss[pair] = value / 100
            elif verb == "cut":
                self.cut.add(pair)
                if timer := self.timers.pop(pair, None):  # what was on the wire is lost too
                    timer.cancel()
                    self.counts[pair][2] += len(self.queues[pair])
                    self.queues[pair].clear()
            else:
                self.cut.discard(pair)
        return f"ok {line.strip()}"


async def serve(args: argparse.Namespace) -> None:
    router = Router(args.sites, args.prefix, args.name, args.delay_ms, args.control_delay_ms)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        router.loop.add_signal_handler(sig, stop.set)
    try:
        try:
            router.setup()
        except (OSError, RuntimeError) as exc:  # e.g. another WAN has this prefix: the caller picks again
            print(f"error {exc}", flush=True)
            return
        sites = {n: {"ip": router.site_ip(n), "netns": router.namespaces.get(n)} for n in router.tuns}
        print("ready " + json.dumps({"sites": sites}), flush=True)
        reader = asyncio.StreamReader()
        await router.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        async def control() -> None:
            while line := (await reader.readline()).decode():
                print(router.command(line), flush=True)

        task = asyncio.ensure_future(control())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        stopper.cancel()
        await router.reap()
    finally:
        router.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=3, help="region namespaces besides the control site")
    parser.add_argument("--prefix", default="10.77", help="first two octets of every site's /16")
    parser.add_argument("--name", default=f"meet-{os.getpid():x}", help="namespace names: NAME-r<n>")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="one-way delay between regions")
    parser.add_argument("--control-delay-ms", type=float, default=0.0, help="to and from site 0")
    args = parser.parse_args()
    if not 1 <= args.sites <= 250:
        parser.error("--sites must be 1..250")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
