"""The accounts a load test's virtual participants log in with: registered for the run (bounded by the
API's per-address registration limit) or read from a file the operator keeps for repeated runs."""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from client_sdk.client import Client
from client_sdk.errors import MeetupError, RateLimited


class LoadTestError(MeetupError):
    """A load test could not be set up (accounts, meeting); ``code`` says why."""


class RegistrationRefused(LoadTestError):
    """The API refused to register more accounts. ``registered`` holds those it did create (they can be
    saved and reused with ``--accounts``)."""

    def __init__(self, message: str, *, code: str, registered: list[Account]) -> None:
        super().__init__(message, code=code)
        self.registered = registered


@dataclass(frozen=True)
class Account:
    email: str
    password: str


def read_accounts(path: Path) -> list[Account]:
    """``email:password`` lines; blank lines and ``#`` comments are skipped. A bad line is reported by
    its number only: the file holds passwords."""
    accounts = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        email, sep, password = line.partition(":")
        if not sep or "@" not in email or not password:
            raise LoadTestError(f"{path}: line {number} is not email:password", code="bad_accounts_file")
        accounts.append(Account(email.strip(), password))
    return accounts


def write_accounts(path: Path, accounts: list[Account]) -> None:
    """Save accounts for ``--accounts`` (readable by the owner only: they are passwords)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# meet load-test accounts (email:password), reuse with --accounts\n")
        out.writelines(f"{a.email}:{a.password}\n" for a in accounts)
    os.chmod(path, 0o600)


async def register_accounts(
    client: Client, count: int, *, run_id: str, domain: str = "example.com", concurrency: int = 4
) -> list[Account]:
    """Register ``count`` fresh accounts, ``concurrency`` at a time.

    A deployed API allows few registrations per address (``MEETUP_REGISTRATIONS_PER_IP``, 20 per 300 s
    by default): a refusal stops the run with :class:`RegistrationRefused` naming that limit, rather than
    hammering the API until the window passes."""
    gate = asyncio.Semaphore(concurrency)
    registered: list[Account] = []
    refusals: list[MeetupError] = []

    async def one(index: int) -> None:
        async with gate:
            if refusals:
                return
            account = Account(f"load-{run_id}-{index}@{domain}", secrets.token_urlsafe(15))
            try:
                await client.register(account.email, account.password, f"load test {index}")
            except MeetupError as exc:
                refusals.append(exc)
                return
            registered.append(account)

    await asyncio.gather(*(one(i) for i in range(1, count + 1)))
    if refusals:
        exc = refusals[0]
        hint = "register fewer, or pass existing accounts with --accounts FILE (email:password lines)"
        if isinstance(exc, RateLimited):
            message = (
                f"the API refused to register more accounts after {len(registered)} of {count}: {exc} "
                f"(its per-address registration limit, MEETUP_REGISTRATIONS_PER_IP); {hint}"
            )
        else:
            message = f"registering account {len(registered) + 1} of {count} failed: {exc}; {hint}"
        raise RegistrationRefused(message, code=exc.code, registered=registered)
    return registered
