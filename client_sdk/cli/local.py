"""``meet local ...``: run the platform on this machine (the embedded default)."""

from __future__ import annotations

import contextlib
import os
from typing import Annotated

import typer
from rich.console import Console

from client_sdk.cli.common import require_checkout

app = typer.Typer(help="Run the platform locally: AWS stand-in (moto), API and relays.", no_args_is_help=True)
console = Console()


@app.command("up")
def up(
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    regions: Annotated[
        str, typer.Option(help="Start one relay per region label (comma list); join tokens list them.")
    ] = "local",
) -> None:
    """Start the local stack and serve until Ctrl-C."""
    require_checkout("local up", "local_stack")
    from local_stack import LocalStack
    from local_stack.stack import WEB_DIR, WEB_PATH

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")
    from local_stack.turn import port_free

    stack = LocalStack(
        host=host,
        api_port=port,
        relay_regions=[r for r in regions.split(",") if r],
        # TURN's well-known ports where free (another stack may hold them: then free ones).
        turn_port=3478 if port_free(host, 3478) else 0,
        turn_tls_port=5349 if port_free(host, 5349) else 0,
    )
    with console.status("starting the local stack ..."):
        stack.configure()
    console.print(f"[bold green]local stack up[/]\n  API      http://{host}:{port}  (docs: /docs)")
    if WEB_DIR.is_dir():
        console.print(f"  web      http://{host}:{port}{WEB_PATH}/  (the browser client)")
    console.print(f"  AWS      {stack.aws_url}  (moto: DynamoDB + S3)")
    for relay in stack.relays:
        console.print(f"  relay    {relay.url}  (region {relay.region}; {relay.http_url}/metrics)")
    if stack.turn_server is not None:
        console.print(f"  TURN     {stack.turn_note}  (coturn)", markup=False)
        console.print(
            f"           its TLS certificate, for SSL_CERT_FILE: {stack.turn_server.cert_path}", markup=False
        )
    else:
        console.print(f"  TURN     none: {stack.turn_note}", markup=False)
    console.print("Ctrl-C stops everything.")
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it handled, once stopped
        stack.serve_forever()
    console.print("stopped.")
