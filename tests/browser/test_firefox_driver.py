"""The Firefox driver (tests/browser/firefox.py + firefox_driver.mjs) on its own: Playwright-shaped
calls work, and what goes wrong is a clear error, never a hang: a script that throws, an unknown
operation, a line that is not JSON, a wait that times out, and Firefox gone under a request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.browser.firefox import DriverError, FirefoxPage

PAGE = (
    "data:text/html,<title>t</title><form id=f><input name=a><select name=s><option>x</option>"
    "<option>y</option></select></form><p id=p>hi</p>"
)


async def test_the_driver_answers_and_fails_clearly(tmp_path: Path) -> None:
    page = await FirefoxPage.launch(tmp_path / "profile")
    try:
        assert page.version.startswith("firefox/")
        await page.goto(PAGE)
        assert await page.evaluate("1 + 2") == 3
        assert await page.evaluate("([a, b]) => a * b", [6, 7]) == 42
        assert await page.evaluate("async () => navigator.userAgent.includes('Firefox')")
        form = page.locator("#f")
        await form.locator("[name=a]").fill("typed")
        await form.locator("[name=s]").select_option("y")
        assert await page.evaluate("() => [document.forms.f.a.value, document.forms.f.s.value]") == [
            "typed",
            "y",
        ]
        assert await page.text_content("#p") == "hi" and await page.locator("p").count() == 1
        assert await page.wait_for_function("n => n > 1", arg=2, timeout=2000)

        with pytest.raises(DriverError, match="boom"):
            await page.evaluate("() => { throw new Error('boom'); }")
        with pytest.raises(DriverError, match="unknown op"):
            await page._request({"op": "no-such-op"})
        with pytest.raises(DriverError, match=r"[Tt]imeout|[Ww]aiting"):
            await page.wait_for_function("() => false", timeout=500)
        with pytest.raises(DriverError):
            await page.wait_for_selector("#never", timeout=500)
        # A line that is not JSON is answered (id null) and the driver keeps serving.
        assert page.proc.stdin is not None
        page.proc.stdin.write(b"not json\n")
        assert await page.evaluate("'still here'") == "still here"
        # Page errors are reported to the listeners.
        seen: list[str] = []
        page.on("pageerror", seen.append)
        await page.evaluate("() => { setTimeout(() => { throw new Error('late'); }, 0); }")
        await asyncio.sleep(0.5)
        assert any("late" in e for e in seen), seen
    finally:
        await page.close()
    # Firefox gone: a request fails at once instead of waiting for an answer that never comes.
    with pytest.raises((DriverError, ConnectionError, BrokenPipeError)):
        await asyncio.wait_for(page.evaluate("1"), 5)
