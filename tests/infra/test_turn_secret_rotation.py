"""The TURN secret's rotation function (infra/runtime/turn_secret_rotation.py) and the TURN tasks' secret
sync (infra/turn/secret_sync.py) against moto's Secrets Manager (AWS mocked, nothing else): which versions
coturn is told to accept before, during and after a rotation, retries of every step, and events that must
not go through."""

from __future__ import annotations

import contextlib
import importlib.util
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.runtime import turn_secret_rotation as rotation
from tests.infra.synth import REPO
from tests.infra.turn_rotation import REGION, begin_rotation, rotate, step

NAME = "meetup-edge/turn-auth-key"
FIRST = "a" * 64


def _load_sync() -> Any:
    spec = importlib.util.spec_from_file_location("secret_sync", REPO / "infra" / "turn" / "secret_sync.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


secret_sync = _load_sync()


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("TURN_SYNC_WAIT_S", "0")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("secretsmanager", region_name=REGION)
        client.create_secret(Name=NAME, SecretString=FIRST)
        yield client


def _stages(client: Any) -> dict[str, str]:
    """stage -> value, for the stages coturn is told about."""
    found = {}
    for stage in ("AWSCURRENT", *secret_sync.STAGES):
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            found[stage] = client.get_secret_value(SecretId=NAME, VersionStage=stage)["SecretString"]
    return found


def test_a_rotation_keeps_the_old_secret_accepted_and_retires_the_one_before(client: Any) -> None:
    second = rotate(client, NAME)
    assert second != FIRST and rotation.acceptable_secret(second)
    assert _stages(client) == {"AWSCURRENT": second, "AWSPREVIOUS": FIRST}
    assert secret_sync.live_secrets(client, NAME) == {second, FIRST}
    third = rotate(client, NAME)
    assert _stages(client) == {"AWSCURRENT": third, "AWSPREVIOUS": second}
    assert secret_sync.live_secrets(client, NAME) == {third, second}  # FIRST is retired


def test_the_pending_secret_is_accepted_before_the_api_signs_with_it(client: Any) -> None:
    """Between createSecret and finishSecret the API still signs with the old current value, and the TURN
    tasks already accept the new one: the order that lets no credential be refused."""
    arn = client.describe_secret(SecretId=NAME)["ARN"]
    token = begin_rotation(NAME)
    step(arn, token, "createSecret")
    pending = client.get_secret_value(SecretId=NAME, VersionStage="AWSPENDING")["SecretString"]
    assert (
        client.get_secret_value(SecretId=NAME, VersionStage="AWSCURRENT")["SecretString"] == FIRST
    )  # what the API signs with
    assert secret_sync.live_secrets(client, NAME) == {FIRST, pending}
    step(arn, token, "createSecret")  # a retry keeps the same pending value
    assert client.get_secret_value(SecretId=NAME, VersionStage="AWSPENDING")["SecretString"] == pending
    for name in ("setSecret", "testSecret", "finishSecret", "finishSecret"):  # finish retried: no-op
        step(arn, token, name)
    assert _stages(client) == {"AWSCURRENT": pending, "AWSPREVIOUS": FIRST}


def test_set_secret_waits_for_the_tasks_to_sync(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(rotation.time, "sleep", slept.append)
    monkeypatch.setenv("TURN_SYNC_WAIT_S", "150")
    arn = client.describe_secret(SecretId=NAME)["ARN"]
    token = begin_rotation(NAME)
    step(arn, token, "createSecret")
    step(arn, token, "setSecret")
    assert slept == [150.0]


def test_events_that_do_not_fit_are_refused(client: Any) -> None:
    arn = client.describe_secret(SecretId=NAME)["ARN"]
    with pytest.raises(rotation.RotationError, match="not enabled"):
        step(arn, "0" * 36, "createSecret")
    token = begin_rotation(NAME)
    with pytest.raises(rotation.RotationError, match="not a version"):
        step(arn, "1" * 36, "createSecret")
    with pytest.raises(rotation.RotationError, match="unknown rotation step"):
        step(arn, token, "dropSecret")
    current = client.describe_secret(SecretId=NAME)["VersionIdsToStages"]
    old = next(v for v, stages in current.items() if "AWSCURRENT" in stages)
    step(arn, old, "finishSecret")  # the current version itself: nothing to do, no error


@pytest.mark.parametrize("bad", ["short", "has space" * 8, "quote'" * 8, "é" * 40])
def test_a_pending_value_coturn_cannot_take_fails_the_test_step(client: Any, bad: str) -> None:
    arn = client.describe_secret(SecretId=NAME)["ARN"]
    token = begin_rotation(NAME)
    client.put_secret_value(
        SecretId=NAME, ClientRequestToken=token, SecretString=bad, VersionStages=["AWSPENDING"]
    )
    with pytest.raises(rotation.RotationError, match="coturn"):
        step(arn, token, "testSecret")
    assert (
        client.get_secret_value(SecretId=NAME, VersionStage="AWSCURRENT")["SecretString"] == FIRST
    )  # nothing was finished


def test_the_sync_writes_exactly_the_live_secrets_and_only_when_they_change(
    client: Any, tmp_path: Path
) -> None:
    db = tmp_path / "turndb"
    secret_sync.sync(client, NAME, db, "turn.example")
    assert (tmp_path / "turndb.synced").exists()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO turn_secret VALUES ('other.realm', 'kept')")
    assert not secret_sync.write_table(db, "turn.example", {FIRST})
    second = rotate(client, NAME)
    third = rotate(client, NAME)
    secret_sync.sync(client, NAME, db, "turn.example")
    with sqlite3.connect(db) as conn:
        rows = set(conn.execute("SELECT realm, value FROM turn_secret"))
    assert rows == {("turn.example", second), ("turn.example", third), ("other.realm", "kept")}


def test_the_sync_refuses_a_missing_secret(client: Any, tmp_path: Path) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        secret_sync.sync(client, "meetup-edge/no-such-secret", tmp_path / "db", "r")
    assert not (tmp_path / "db.synced").exists()
