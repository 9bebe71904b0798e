"""The ``meet`` command line: the local stack and a demo meeting (more commands arrive with the SDK)."""

from __future__ import annotations

import typer

from client_sdk.cli import demo, local

app = typer.Typer(
    name="meet",
    help="meetup-edge: video meetings from the command line.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(local.app, name="local")
app.command("demo")(demo.demo)

if __name__ == "__main__":
    app()
