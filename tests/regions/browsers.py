"""Browsers in a site of the WAN (tests/regions/netns.py): Chromium (Playwright) and Firefox ESR
(puppeteer-core over WebDriver BiDi, tests/browser/firefox.py), each a ``WebUser`` of
tests/browser/harness.py, so one test drives both.

Each browser runs inside the site's network namespace, with the site's own address: Firefox never pairs a
127.0.0.1 candidate (MACHINE.md), so a browser on loopback proves nothing about Firefox. Chromium goes in
through a wrapper script as its executable (``ip netns exec NS chromium "$@"``; Playwright talks to it over
a pipe, which crosses namespaces); Firefox's driver process runs in the namespace with it (puppeteer
reaches Firefox over the namespace's loopback).

The web client is served over plain http from the control site's address, which is not a secure context
(getUserMedia needs one): Chromium is told to treat that origin as secure, Firefox that host.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import subprocess
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser.firefox import FirefoxPage, require_firefox
from tests.browser.harness import CHROMIUM, FLAGS, WebUser, require_chromium
from tests.regions.netns import Wan

BROWSERS = ("firefox", "chromium")


class Browsers:
    """``async with Browsers(wan, web_url, tmp_path) as b: user = await b.open("firefox", 2, "Ann")``."""

    def __init__(
        self,
        wan: Wan,
        web_url: str,
        tmp_path: Path,
        trust: Path | None = None,
        hosts: dict[str, str] | None = None,
    ) -> None:
        self.wan = wan
        self.web_url = web_url
        self.tmp_path = tmp_path
        self.trust = trust  # a CA certificate (PEM) every browser trusts (the stack's TURN/TLS one)
        self.hosts = hosts or {}  # name -> address, resolved in the browsers' sites (the TURN name)
        self._profiles = itertools.count()
        self._stack = AsyncExitStack()
        self._playwright = None

    async def __aenter__(self) -> Browsers:
        await self._stack.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.__aexit__(*exc)

    async def open(self, browser: str, site: int, name: str) -> WebUser:
        """A fresh profile of ``browser`` ("firefox" or "chromium") in ``site``, as user ``name``."""
        profile = self.tmp_path / f"{browser}-{next(self._profiles)}"
        self._resolve_names(site)
        if browser == "firefox":
            return WebUser(await self._firefox(site, profile), name)
        if browser == "chromium":
            return WebUser(await self._chromium(site, profile), name)
        raise ValueError(f"no browser {browser!r} (one of {BROWSERS})")

    def _resolve_names(self, site: int) -> None:
        """``ip netns exec`` mounts /etc/netns/NS/hosts over /etc/hosts: the site resolves ``hosts``
        with no DNS server. Written once per site, removed on exit."""
        ns = self.wan.netns(site)
        if not self.hosts or ns is None:
            return
        folder = Path("/etc/netns") / ns
        if (folder / "hosts").exists():
            return
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", *(f"{ip} {name}" for name, ip in self.hosts.items())]
        (folder / "hosts").write_text("\n".join(lines) + "\n")
        self._stack.callback(shutil.rmtree, folder, ignore_errors=True)

    async def _firefox(self, site: int, profile: Path) -> FirefoxPage:
        require_firefox()
        prefix = tuple(self.wan.command_in(site, []))
        if self.trust is not None:
            trust_ca(profile, self.trust)  # the profile is Firefox's certificate database
        page = await FirefoxPage.launch(
            profile, prefix, secure_hosts=(urlsplit(self.web_url).hostname or "",)
        )
        self._stack.push_async_callback(page.close)
        return page

    async def _chromium(self, site: int, profile: Path):  # -> playwright.async_api.Page
        require_chromium()
        if self._playwright is None:
            from playwright.async_api import async_playwright

            self._playwright = await self._stack.enter_async_context(async_playwright())
        wrapper = self.tmp_path / f"chromium-in-site-{site}"
        argv = shlex.join(self.wan.command_in(site, [CHROMIUM]))
        wrapper.write_text(f'#!/bin/sh\nexec {argv} "$@"\n')
        wrapper.chmod(0o755)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.web_url))
        env = {}
        if self.trust is not None:  # Chromium on Linux reads $HOME/.pki/nssdb
            home = self.tmp_path / f"home-{profile.name}"
            trust_ca(home / ".pki" / "nssdb", self.trust)
            env = {**os.environ, "HOME": str(home)}
        context = await self._playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(wrapper),
            headless=True,
            args=[*FLAGS, f"--unsafely-treat-insecure-origin-as-secure={origin}"],
            viewport={"width": 1280, "height": 720},
            env=env or None,
        )
        self._stack.push_async_callback(context.close)
        return context.pages[0] if context.pages else await context.new_page()


def trust_ca(database: Path, cert: Path) -> None:
    """Make the NSS certificate database in ``database`` (new or not) trust ``cert`` as a CA for TLS
    servers: how a browser trusts the local stack's self-signed TURN/TLS certificate (certutil, Debian's
    libnss3-tools). Both browsers verify a ``turns:`` server's certificate and give up on one they do not
    trust."""
    certutil = shutil.which("certutil")
    if certutil is None:
        pytest.skip("no certutil (Debian: apt-get install libnss3-tools)")
    database.mkdir(parents=True, exist_ok=True)
    db = f"sql:{database}"
    if not (database / "cert9.db").exists():
        subprocess.run([certutil, "-N", "-d", db, "--empty-password"], check=True, capture_output=True)
    subprocess.run(
        [certutil, "-A", "-d", db, "-n", "meetup-edge local TURN", "-t", "C,,", "-i", str(cert)],
        check=True,
        capture_output=True,
    )
