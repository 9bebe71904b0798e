"""Browser fixtures: ``launch(name)`` opens a fresh Chromium profile on the web client's origin."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from tests.browser.harness import CHROMIUM, FLAGS, WebUser, require_chromium

#: ``launch(name, extra_flags=(), executable=CHROMIUM)``: extra Chromium flags (e.g.
#: ``--use-file-for-fake-video-capture=F``), and another Chromium command (e.g. a wrapper that starts it in
#: a network namespace).
Launch = Callable[..., Awaitable[WebUser]]


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[Launch]:
    """Open one Chromium per participant (own --user-data-dir under tmp_path); all closed afterwards."""
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        contexts = []
        profiles = itertools.count()

        async def open_browser(
            name: str, extra_flags: Sequence[str] = (), executable: str = CHROMIUM
        ) -> WebUser:
            context = await playwright.chromium.launch_persistent_context(
                str(tmp_path / f"chromium-{next(profiles)}"),
                executable_path=executable,
                headless=True,
                args=[*FLAGS, *extra_flags],
                viewport={"width": 1280, "height": 720},
            )
            contexts.append(context)
            page = context.pages[0] if context.pages else await context.new_page()
            return WebUser(page, name)

        yield open_browser
        for context in contexts:
            await context.close()
