"""Keep coturn's secret table equal to the TURN secret's live versions in Secrets Manager.

coturn (``use-auth-secret`` with ``--userdb``, SQLite) reads the table ``turn_secret`` for every
allocation it authenticates and accepts a credential signed with any row of the realm (coturn
``userdb.c``: ``get_auth_secrets`` then one HMAC per secret). So a rotation needs no restart: this loop
copies the versions staged ``AWSPENDING``, ``AWSCURRENT`` and ``AWSPREVIOUS`` into the table (pending:
accepted before the API signs with it; previous: still accepted while API caches hold it), and a secret
staged nowhere any more, the retired one, leaves the table. See infra/runtime/turn_secret_rotation.py.

Runs in the TURN container (Debian's python3 and python3-boto3; this file only, no project imports):
``--once`` before coturn starts (failure: the container exits and ECS retries), then as a loop beside it.
Each successful sync touches ``<db>.synced``: the container health check fails when it gets stale, so a
task that can no longer read the secret is replaced instead of refusing new credentials after a rotation.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

STAGES = ("AWSPENDING", "AWSPREVIOUS")  # besides AWSCURRENT
log = logging.getLogger("turn-secret-sync")

#: coturn creates this table itself on start (turndb/schema.sql); created here too, so that the first
#: sync can run before coturn.
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS turn_secret (realm varchar(127) default '', value varchar(256), "
    "primary key (realm,value))"
)


def live_secrets(client: Any, secret_id: str) -> set[str]:
    """The secret's values under the stages coturn must accept. ``AWSCURRENT`` must be there (an error
    otherwise: no table is better than a stale one nobody notices); the others may be absent."""
    values = {client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]}
    for stage in STAGES:
        try:
            values.add(client.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"])
        except client.exceptions.ResourceNotFoundException:
            continue
    return {value for value in values if value}


def write_table(db: Path, realm: str, secrets: set[str]) -> bool:
    """Make the realm's rows exactly ``secrets`` in one transaction; True when something changed."""
    with sqlite3.connect(db, timeout=10) as conn:
        conn.execute(SCHEMA)
        rows = {r[0] for r in conn.execute("SELECT value FROM turn_secret WHERE realm = ?", (realm,))}
        if rows == secrets:
            return False
        conn.execute("DELETE FROM turn_secret WHERE realm = ?", (realm,))
        conn.executemany(
            "INSERT INTO turn_secret (realm, value) VALUES (?, ?)", [(realm, s) for s in secrets]
        )
    return True


def sync(client: Any, secret_id: str, db: Path, realm: str) -> None:
    secrets = live_secrets(client, secret_id)
    if write_table(db, realm, secrets):
        log.info("TURN secrets updated: %d accepted", len(secrets))  # never the values
    db.with_name(db.name + ".synced").touch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret-id", default=os.environ.get("TURN_SECRET_ID", ""))
    parser.add_argument("--db", type=Path, default=Path(os.environ.get("TURN_DB", "/var/lib/coturn/turndb")))
    parser.add_argument("--realm", default=os.environ.get("TURN_REALM", ""))
    parser.add_argument("--interval", type=float, default=float(os.environ.get("TURN_SYNC_S", "30")))
    parser.add_argument("--once", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s turn-secret-sync %(message)s")
    if not args.secret_id or not args.realm:
        parser.error("TURN_SECRET_ID and TURN_REALM are required")
    import boto3

    client = boto3.client("secretsmanager")
    if args.once:
        sync(client, args.secret_id, args.db, args.realm)
        return 0
    parent = os.getppid()  # coturn: the entrypoint shell that started this loop exec'd it
    while os.getppid() == parent:  # coturn gone: nothing left to keep in step
        time.sleep(args.interval)
        try:
            sync(client, args.secret_id, args.db, args.realm)
        except Exception as exc:  # keep serving with the last table; the health check watches staleness
            log.warning("TURN secret sync failed: %s: %s", type(exc).__name__, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
