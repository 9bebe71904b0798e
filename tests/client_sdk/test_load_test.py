"""``meet load-test`` as an operator runs it: a subprocess against the local stack, its JSON, exit code."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from client_sdk.errors import RateLimited
from client_sdk.loadtest.accounts import (
    Account,
    LoadTestError,
    RegistrationRefused,
    read_accounts,
    register_accounts,
)
from local_stack.aws import free_port
from tests.client_sdk.test_cli import logged_in, run


def test_two_publishers_two_subscribers_on_the_local_stack(stack, api, tmp_path: Path) -> None:
    operator = api.new_user("Operator")
    out = tmp_path / "load.json"
    saved = tmp_path / "accounts.txt"
    r = run(
        "load-test",
        "--publishers",
        "2",
        "--subscribers",
        "2",
        "--duration",
        "6",
        "--video",
        "512x288@8",
        "--json",
        str(out),
        "--save-accounts",
        str(saved),
        env=logged_in(tmp_path / "home", stack.api_url, operator),
        timeout=90,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed: everyone joined" in r.stdout and "Traceback" not in r.stderr
    print(r.stdout)  # shown with pytest -s
    report = json.loads(out.read_text())

    assert report["failures"] == []
    joins = report["participants"]
    assert [p["name"] for p in joins] == ["p1", "p2", "s1", "s2"]
    for p in joins:
        assert p["error"] is None and p["relay"].startswith("ws://"), p
        assert 0 < p["api_join_s"] < p["join_s"] < 30, p
    tracks = {(t["receiver"], t["publisher"], t["kind"]): t for t in report["tracks"]}
    for receiver in ("s1", "s2"):
        for publisher in ("p1", "p2"):
            for kind in ("video", "audio"):
                t = tracks[(receiver, publisher, kind)]
                assert t["frames"] > 0 and t["kbps"] > 0 and t["bytes"] > 0, t
                assert t["packets_received"] > 0 and t["loss_pct"] is not None, t
                assert t["jitter_ms"] is not None, t
            video = tracks[(receiver, publisher, "video")]
            assert video["first_frame_s"] is not None
            assert video["latency_ms"]["samples"] > 0 and 0 <= video["latency_ms"]["p50"] < 5000, video
    assert ("p1", "p2", "video") in tracks and ("p2", "p1", "audio") in tracks  # publishers see each other
    summary = report["summary"]
    for key in ("join_s", "api_join_s", "video_kbps", "audio_kbps", "video_loss_pct", "video_latency_ms"):
        assert summary[key]["n"] > 0 and summary[key]["p50"] is not None, (key, summary[key])
    assert "join: total" in r.stdout and "video bitrate" in r.stdout  # the summary table

    # The saved accounts run again without registering (what an operator does against a deployed API).
    assert len(read_accounts(saved)) == 4 and oct(saved.stat().st_mode & 0o777) == "0o600"


def test_wrong_api_url_fails_clearly(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    r = run(
        "load-test",
        "--api",
        url,
        "--email",
        "op@example.com",
        "--duration",
        "1",
        env={"MEETUP_PASSWORD": "whatever-1", "XDG_CONFIG_HOME": str(tmp_path)},
        timeout=60,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "cannot reach the API" in r.stderr and url in r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_an_account_that_cannot_log_in_fails_clearly(stack, api, tmp_path: Path) -> None:
    operator, good = api.new_user("Operator"), api.new_user("Good")
    accounts = tmp_path / "accounts.txt"
    accounts.write_text(f"# ours\n{good.email}:{good.password}\n{good.email}:not-the-password\n")
    r = run(
        "load-test",
        "--publishers",
        "1",
        "--subscribers",
        "1",
        "--duration",
        "1",
        "--video",
        "128x96@5",
        "--accounts",
        str(accounts),
        env=logged_in(tmp_path / "home", stack.api_url, operator),
        timeout=60,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "s1 could not join" in r.stderr and good.email in r.stderr, r.stderr
    assert "not-the-password" not in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_an_accounts_file_must_have_enough_good_lines(tmp_path: Path) -> None:
    path = tmp_path / "accounts.txt"
    path.write_text("a@example.com:secret-1\nno colon here\n")
    with pytest.raises(LoadTestError, match="line 2") as caught:
        read_accounts(path)
    assert "secret" not in str(caught.value)


def test_a_refused_registration_names_the_limit() -> None:
    class Api:
        calls = 0

        async def register(self, email: str, password: str, name: str) -> None:
            Api.calls += 1
            if Api.calls > 2:
                raise RateLimited(
                    "at most 2 new accounts from one address per 300 s; try again in 250 s",
                    code="rate_limited",
                    status=429,
                    retry_after=250,
                )

    with pytest.raises(RegistrationRefused) as caught:
        asyncio.run(register_accounts(Api(), 5, run_id="t", concurrency=1))  # type: ignore[arg-type]
    message = str(caught.value)
    assert caught.value.code == "rate_limited" and len(caught.value.registered) == 2
    assert "MEETUP_REGISTRATIONS_PER_IP" in message and "--accounts" in message and "250 s" in message
    assert all(isinstance(a, Account) for a in caught.value.registered)
