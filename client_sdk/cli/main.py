"""The ``meet`` command line: accounts, meetings, joining from the terminal, the local stack, a demo."""

from __future__ import annotations

import typer

from client_sdk.cli import account, demo, host, join, load_test, local, meetings

app = typer.Typer(
    name="meet",
    help="meetup-edge: video meetings from the command line.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(account.register)
app.command()(account.login)
app.command()(account.logout)
app.command()(account.whoami)
app.command()(account.settings)
app.command()(meetings.create)
app.command()(meetings.info)
app.command("join")(join.join)
app.command()(meetings.chat)
app.command()(meetings.react)
app.command()(meetings.recordings)
app.command()(meetings.end)
app.command()(host.remove)
app.command()(host.mute)
app.command()(host.promote)
app.command()(host.lock)
app.command()(host.admit)
app.add_typer(local.app, name="local")
app.command("demo")(demo.demo)
app.command("load-test", help=load_test.HELP)(load_test.load_test)

if __name__ == "__main__":
    app()
