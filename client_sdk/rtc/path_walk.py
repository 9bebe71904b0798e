"""Walking the relays and the media paths to each, in order, until media flows (used by ``Meeting``).

For each relay (nearest first), each path (``paths.plan_paths``: direct, then TURN over UDP, TCP, TLS) gets
one connection, held to its own timeout. Once direct has not connected within ``PROBE_DELAY_S`` (where it
works it mostly has), the TURN servers are asked for an allocation while direct goes on, as a browser
gathers relay candidates: a path whose server refuses or does not answer is skipped, and a refused
credential is known when direct fails, not after another wait. A relay that cannot be reached at all
moves the walk to the next relay; a path that connects but carries no media moves it to the next path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from client_sdk.errors import MediaPathFailed, MeetingEnded, MeetingFull, NoRelayReachable, TurnRefused
from client_sdk.rtc.connection import RelayConnection, RelayError
from client_sdk.rtc.paths import PROBE_DELAY_S, PathPlan, probe_turn, refused

log = logging.getLogger("client_sdk.meeting")


class PathWalk:
    """One (re)connection's walk. ``errors`` (path -> why it failed) is filled as it goes; TURN
    allocation checks go into ``probes``, so whoever owns that set can wait for them when leaving."""

    def __init__(
        self,
        plans: list[PathPlan],
        open_connection: Callable[[str, PathPlan], RelayConnection],
        errors: dict[str, str],
        probes: set[asyncio.Task[str | None]],
    ) -> None:
        self.plans = plans
        self.open_connection = open_connection
        self.errors = errors
        self._probes = probes
        self._checks: dict[str, asyncio.Task[str | None]] = {}

    async def connect(self, urls: list[str]) -> tuple[RelayConnection, str]:
        """The first connection whose media flows (or that needs none yet), and its relay's URL."""
        timer = asyncio.get_running_loop().call_later(PROBE_DELAY_S, self._check_turn)
        try:
            return await self._walk(urls)
        finally:
            timer.cancel()

    def _check_turn(self) -> None:
        for plan in self.plans:
            if plan.relay_only and plan.path not in self._checks:
                task = asyncio.ensure_future(probe_turn(plan))  # runs on (and is released) unawaited
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)
                self._checks[plan.path] = task

    async def _walk(self, urls: list[str]) -> tuple[RelayConnection, str]:
        unreachable: list[str] = []
        turn_refused: set[str] = set()
        for url in urls:
            for plan in self.plans:
                if plan.relay_only:
                    self._check_turn()
                    reason = await self._checks[plan.path]
                    if reason is not None:
                        self.errors[plan.path] = f"{plan.url}: {reason}"
                        if refused(reason):
                            turn_refused.add(plan.path)
                        continue
                connection = self.open_connection(url, plan)
                try:
                    await connection.connect()
                    if connection.expects_media:
                        await connection.wait_media(plan.timeout_s)
                except (RelayError, TimeoutError) as exc:
                    await connection.close(leave=False)
                    code = exc.code if isinstance(exc, RelayError) else ""
                    if code == "meeting_ended":
                        raise MeetingEnded(str(exc), code=code) from exc
                    if code == "meeting_full":
                        raise MeetingFull(str(exc), code=code) from exc
                    if code in ("media_timeout", "media_failed"):
                        log.info("media path failed", extra={"path": plan.path, "error": str(exc)})
                        self.errors[plan.path] = str(exc)
                        continue  # the next path to this relay
                    unreachable.append(f"{url}: {exc}")
                    break  # the relay itself is unreachable: the next relay
                return connection, url
        raise self._failure(unreachable, turn_refused)

    def _failure(self, unreachable: list[str], turn_refused: set[str]) -> Exception:
        if not self.errors:
            return NoRelayReachable(
                "no relay could be reached: " + ("; ".join(unreachable) or "none offered"),
                code="no_relay_reachable",
            )
        tried = "; ".join(f"{path}: {why}" for path, why in self.errors.items())
        if turn_refused:  # the credential is what failed: no other TURN path would take it either
            return TurnRefused(
                f"no direct media path, and the TURN servers refused the credential: {tried}",
                code="turn_refused",
                attempts=dict(self.errors),
            )
        turn = [plan.path for plan in self.plans if plan.relay_only]
        return MediaPathFailed(
            f"no media path worked ({', '.join(self.errors)}): {tried}"
            + ("" if turn else " (the API offered no TURN server)"),
            code="media_path_failed",
            attempts=dict(self.errors),
        )
