"""``meet remove``, ``meet mute``, ``meet promote``, ``meet lock`` against the local stack (real processes,
real HTTP), by a guest (refused, with the API's code), a co-host and the host."""

from __future__ import annotations

from pathlib import Path

from tests.client_sdk.test_cli import logged_in, run
from tests.conftest import Api, error_code


def test_host_commands(api: Api, stack, tmp_path: Path) -> None:
    meeting, host, (co, guest) = api.joined_meeting(2)
    mid = meeting["meeting_id"]
    as_host, as_co, as_guest = (
        logged_in(tmp_path / name, stack.api_url, user)
        for name, user in (("host", host), ("co", co), ("guest", guest))
    )
    for args in (("mute", mid), ("lock", mid), ("remove", mid, "Host"), ("promote", mid, "Guest 1")):
        r = run(*args, env=as_guest)
        assert r.returncode == 1 and "not_allowed" in r.stderr, (args, r.stdout, r.stderr)
    r = run("mute", mid, "--camera", env=as_host)
    assert r.returncode == 2, r.stderr  # a usage error: 'mute all' is for microphones

    r = run("promote", mid, "Guest 0", env=as_host)
    assert r.returncode == 0 and "Guest 0 is now co-host" in r.stdout, r.stderr
    r = run("mute", mid, "Guest 1", env=as_co)
    assert r.returncode == 0 and "muted Guest 1's microphone" in r.stdout, r.stderr
    assert "muted every guest's microphone" in run("mute", mid, env=as_co).stdout
    assert "unmuted Guest 1's camera" in run("mute", mid, "Guest 1", "--camera", "--unmute", env=as_co).stdout

    assert "locked" in run("lock", mid, env=as_co).stdout
    assert error_code(api.join(meeting, api.new_user("Late"))) == "meeting_locked"
    assert "unlocked" in run("lock", mid, "--unlock", env=as_co).stdout

    r = run("remove", mid, "Nobody", env=as_co)
    assert r.returncode == 1 and "participant_not_found" in r.stderr, r.stderr
    r = run("remove", mid, "Guest 1", env=as_co)
    assert r.returncode == 0 and "removed Guest 1" in r.stdout, r.stderr
    assert error_code(api.join(meeting, guest)) == "removed_by_host"

    r = run("promote", mid, "Guest 0", "--role", "host", env=as_host)
    assert r.returncode == 0 and "Guest 0 is now host" in r.stdout, r.stderr
    info = run("info", mid, env=as_host).stdout
    assert "Guest 0 (host)" in info and "Host (co_host)" in info, info
    assert "--hand" in run("join", "--help").stdout


def test_admit_command(api: Api, stack, tmp_path: Path) -> None:
    host = api.new_user("Host")
    meeting = api.new_meeting(host, waiting_room=True)
    mid = meeting["meeting_id"]
    ann, bob = api.new_user("Ann"), api.new_user("Bob")
    assert api.join(meeting, ann).status_code == 202 and api.join(meeting, bob).status_code == 202
    as_host = logged_in(tmp_path / "host", stack.api_url, host)
    listed = run("admit", mid, env=as_host)
    assert listed.returncode == 0 and "Ann (p_" in listed.stdout and "2 waiting" in listed.stdout, (
        listed.stderr
    )
    assert "admitted Ann" in run("admit", mid, "Ann", env=as_host).stdout
    assert "denied Bob" in run("admit", mid, "Bob", "--deny", env=as_host).stdout
    assert api.post(f"/meetings/{mid}/join", ann, json={}).status_code == 200
    assert error_code(api.post(f"/meetings/{mid}/join", bob, json={})) == "denied_by_host"
    r = run("admit", mid, "Carol", env=as_host)
    assert r.returncode == 1 and "participant_not_found" in r.stderr
