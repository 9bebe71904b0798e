"""Where the relay's CPU goes: py-spy samples of the relay process, summarised by function and by stage.

py-spy (``pip install py-spy``; it needs ptrace, i.e. root or CAP_SYS_PTRACE) records the relay's Python
stacks from outside, so the relay runs unmodified. It runs in its own window after the measured one:
by default py-spy pauses the target for each sample, which must not be billed to the relay's CPU
figures. Only busy samples are kept (idle threads, i.e. the event loop waiting in epoll, are dropped),
so shares are of the relay's busy time. A C call (the ``sendto`` syscall, libsrtp) has no frame of its
own: its time is the self time of the Python function calling it.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

#: Stages of the relay's work, by the innermost frame of a sample that matches one: (name, patterns),
#: a pattern being (function name or its last dotted part, "" for any; a substring of the file path).
STAGES: list[tuple[str, list[tuple[str, str]]]] = [
    ("UDP sendto (syscall + asyncio transport)", [("sendto", "asyncio/selector_events.py")]),
    ("SRTP protect (libsrtp via pylibsrtp, _send_rtp)", [("_send_rtp", "aiortc/rtcdtlstransport.py")]),
    ("aioice (send chain, receive queue, consent)", [("", "aioice/")]),
    ("RTP rewrite (header, extensions)", [("", "edge_relay/sfu/rtp.py"), ("rewrite", "sfu/forwarder.py")]),
    ("RTCP (feedback, reports, SR rewrite)", [("", "edge_relay/sfu/rtcp.py"), ("", "aiortc/rtp.py")]),
    ("fan-out loop (PublishedTrack.on_packet)", [("on_packet", "sfu/forwarder.py")]),
    ("ingress: history, loss stats, demux", [("", "edge_relay/sfu/"), ("_on_rtp", "rooms/participant.py")]),
    ("ingress: SRTP unprotect + DTLS read loop (_recv_next)", [("_recv_next", "aiortc/rtcdtlstransport.py")]),
    ("other aiortc (RTCP tasks, senders, clock)", [("", "site-packages/aiortc/")]),
    ("event loop: epoll_wait", [("select", "selectors.py")]),
    ("event loop: callbacks, tasks, futures", [("", "asyncio/")]),
    ("other (signalling, uvicorn, logging, ...)", [("", "")]),
]
#: Leaf frames of threads that wait (aiortc's idle decoder threads): not work, left out of the shares.
WAITING = ("wait", "threading.py")


def _frame(text: str) -> tuple[str, str]:
    """``name (path:line)`` -> (name, path)."""
    name, _, rest = text.partition(" (")
    return name, rest.rsplit(":", 1)[0].rstrip(")")


def summarise(raw: str, top: int = 12) -> dict[str, Any]:
    """Self time by function, inclusive time of the forwarding path, and time by stage (shares in %)."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    total = waiting = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        name, path = frames[-1]
        if _matches(name, path, *WAITING):
            waiting += count
            continue
        total += count
        self_time[f"{name} ({_short(path)})"] += count
        for fn in {f"{n} ({_short(p)})" for n, p in frames}:
            inclusive[fn] += count
        stages[_stage(frames)] += count
    if not total:
        return {"samples": 0}

    def pct(counter: Counter[str], n: int) -> list[dict[str, Any]]:
        return [{"function": k, "pct": v * 100 / total} for k, v in counter.most_common(n)]

    return {
        "samples": total,
        "waiting_samples": waiting,
        "self": pct(self_time, top),
        "inclusive": pct(inclusive, top * 2),
        "stages": [{"stage": k, "pct": v * 100 / total} for k, v in stages.most_common()],
    }


def _short(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return path.removeprefix(".11/")


def _matches(name: str, path: str, fn: str, suffix: str) -> bool:
    return (not fn or name == fn or name.endswith("." + fn)) and suffix in path


def _stage(frames: list[tuple[str, str]]) -> str:
    name, path = frames[-1]
    if "pylibsrtp" in path:  # libsrtp itself: protect on the way out, unprotect on the way in
        sending = any(_matches(n, p, "_send_rtp", "rtcdtlstransport") for n, p in frames)
        return STAGES[1][0] if sending else STAGES[7][0]
    for name, path in reversed(frames):
        for stage, patterns in STAGES[:-1]:
            if any(_matches(name, path, fn, suffix) for fn, suffix in patterns):
                return stage
    return STAGES[-1][0]


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, rate: int = 250, keep: Path | None = None) -> dict[str, Any]:
    """Sample ``pid`` for ``seconds``; returns the summary, or why there is none.

    ``keep``: where to save py-spy's collapsed stacks (``flamegraph.pl`` or speedscope read them).
    """
    exe = py_spy()
    if exe is None:
        return {"error": "py-spy not installed (pip install py-spy)"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "relay.txt"
        proc = await asyncio.create_subprocess_exec(
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--function",
            "--output",
            str(out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode != 0 or not out.exists():
            return {"error": f"py-spy failed ({proc.returncode}): {err.decode(errors='replace')[-300:]}"}
        raw = out.read_text()
        summary = summarise(raw)
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.write_text(raw)
            summary["raw"] = str(keep)
    summary["rate_hz"] = rate
    summary["seconds"] = seconds
    return summary
