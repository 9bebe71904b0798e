"""Firefox ESR for the browser tests: a page object with the shape of Playwright's ``Page`` that
``tests.browser.harness.WebUser`` uses (goto, click, fill, locator, evaluate, wait_for_function, ...), so a
test is written once for Chromium and Firefox.

Playwright's Python package drives only its own Firefox build (downloaded: not allowed here), so Debian's
``firefox-esr`` is driven over WebDriver BiDi by ``puppeteer-core`` (npm, never downloads a browser) in a
small Node process, ``firefox_driver.mjs``, spoken to in JSON lines. That process runs where Firefox must
run: ``prefix`` (e.g. ``ip netns exec NS``) puts both in a network namespace, since puppeteer reaches
Firefox's BiDi socket on the namespace's own loopback.

Firefox never pairs a 127.0.0.1 candidate (MACHINE.md), so WebRTC to a relay needs addresses of their own
(tests/regions). Prefs: fake camera and microphone granted without a prompt; ``secure_hosts`` lets a page
served over plain http from such an address use getUserMedia (secure context), as localhost may.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FIREFOX = "/usr/bin/firefox-esr"
REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("firefox_driver.mjs")
PREFS: dict[str, Any] = {
    "media.navigator.streams.fake": True,  # a moving pattern and a tone
    "media.navigator.permission.disabled": True,  # granted without a prompt
    "media.autoplay.default": 0,  # <video>/<audio> of the grid play without a click
    "media.autoplay.blocking_policy": 0,
    "media.gmp-manager.updateEnabled": False,  # no plugin downloads (OpenH264): offline
}
#: A request the driver does not answer within this long fails the test instead of hanging it.
REQUEST_TIMEOUT_S = 90.0


def require_firefox() -> None:
    """Skip the calling test, with the fix, when Firefox, Node or puppeteer-core is missing."""
    if not Path(FIREFOX).is_file():
        pytest.skip(f"Firefox is not installed at {FIREFOX} (Debian: apt-get install -y firefox-esr)")
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed (the Firefox driver runs puppeteer-core)")
    if not (REPO / "node_modules" / "puppeteer-core").is_dir():
        pytest.skip("puppeteer-core is not installed: npm ci")


class DriverError(AssertionError):
    """Firefox (or the driver) answered a request with an error."""


@dataclass
class ConsoleMessage:
    """What Playwright's ``page.on("console")`` hands over, as far as WebUser reads it."""

    type: str
    text: str


class FirefoxPage:
    """One Firefox with one page. ``await FirefoxPage.launch(profile)``, then Playwright-like calls."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.version = ""
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._handlers: dict[str, list[Callable[[Any], Any]]] = {}
        self._lock = asyncio.Lock()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def launch(
        cls, profile: Path, prefix: tuple[str, ...] = (), secure_hosts: tuple[str, ...] = ()
    ) -> FirefoxPage:
        require_firefox()
        profile.mkdir(parents=True, exist_ok=True)
        proc = await asyncio.create_subprocess_exec(
            *prefix,
            "node",
            str(DRIVER),
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**24,  # a screenshot path or a big SDP in one line
        )
        page = cls(proc)
        prefs = {**PREFS, "dom.securecontext.allowlist": ",".join(secure_hosts)}
        options = {"executablePath": FIREFOX, "profile": str(profile), "prefs": prefs}
        page.version = await page._request({"options": options}, first=True)
        return page

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                continue  # Firefox's own chatter on the driver's stdout
            if "event" in message:
                arg = (
                    message["text"]
                    if message["event"] == "pageerror"
                    else ConsoleMessage("error", message["text"])
                )
                for handler in self._handlers.get(message["event"], []):
                    handler(arg)
                continue
            waiter = self._waiting.pop(message.get("id"), None)
            if waiter is not None and not waiter.done():
                if message["ok"]:
                    waiter.set_result(message["value"])
                else:
                    waiter.set_exception(DriverError(message["error"]))
        for waiter in self._waiting.values():  # the driver exited: nobody will answer
            if not waiter.done():
                waiter.set_exception(DriverError("the Firefox driver exited"))

    async def _request(
        self, body: dict[str, Any], first: bool = False, timeout_s: float = REQUEST_TIMEOUT_S
    ) -> Any:
        async with self._lock:
            request_id = 0 if first else next(self._ids)
            line = body["options"] if first else {"id": request_id, **body}
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiting[request_id] = waiter
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps(line) + "\n").encode())
            await self.proc.stdin.drain()
            return await asyncio.wait_for(waiter, timeout_s)

    # --- Playwright's Page, as far as the tests use it ----------------------------------------------

    def on(self, event: str, handler: Callable[[Any], Any]) -> None:
        """``pageerror`` (a str) and ``console`` (error messages only: what WebUser records)."""
        self._handlers.setdefault(event, []).append(handler)

    async def goto(self, url: str) -> None:
        await self._request({"op": "goto", "url": url})

    async def evaluate(self, js: str, arg: Any = None) -> Any:
        return await self._request({"op": "evaluate", "js": js, "arg": arg})

    async def wait_for_function(self, js: str, arg: Any = None, timeout: float = 30_000) -> Any:
        return await self._request(
            {"op": "wait_for_function", "js": js, "arg": arg, "timeout": timeout},
            timeout_s=timeout / 1000 + 10,
        )

    async def wait_for_selector(self, selector: str, timeout: float = 30_000) -> None:
        await self._request(
            {"op": "wait_for_selector", "selector": selector, "timeout": timeout},
            timeout_s=timeout / 1000 + 10,
        )

    async def click(self, selector: str) -> None:
        await self._request({"op": "click", "selector": selector})

    async def fill(self, selector: str, value: str) -> None:
        await self._request({"op": "fill", "selector": selector, "value": value})

    async def text_content(self, selector: str) -> str | None:
        return await self._request({"op": "text_content", "selector": selector})

    async def screenshot(self, path: str) -> None:
        await self._request({"op": "screenshot", "path": path})

    def locator(self, selector: str) -> Locator:
        return Locator(self, selector)

    async def close(self) -> None:
        """Close Firefox (stdin EOF); kill the driver if it does not end within 15 s."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()


@dataclass
class Locator:
    """Playwright's ``Locator`` for CSS selectors: ``locator(a).locator(b)`` is ``a b``."""

    page: FirefoxPage
    selector: str

    def locator(self, selector: str) -> Locator:
        return Locator(self.page, f"{self.selector} {selector}")

    async def fill(self, value: str) -> None:
        await self.page.fill(self.selector, value)

    async def click(self) -> None:
        await self.page.click(self.selector)

    async def select_option(self, value: str) -> None:
        await self.page._request({"op": "select", "selector": self.selector, "value": value})

    async def text_content(self) -> str | None:
        return await self.page.text_content(self.selector)

    async def count(self) -> int:
        return await self.page._request({"op": "count", "selector": self.selector})
