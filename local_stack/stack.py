"""Bring the local stack up and down: AWS endpoint, configuration, tables and bucket, the API."""

from __future__ import annotations

import json
import mimetypes
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from local_stack.aws import MotoServer, free_port
from local_stack.relays import RelayProcess
from local_stack.turn import TurnServer, turnserver_binary
from meetup_protocol.tokens import generate_join_keypair

#: The browser client (plain files, no build step), served by the local API at ``WEB_PATH``.
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
WEB_PATH = "/app"
#: Files of npm packages served with the client (web/vendor.json: URL path -> folder, from the repo root).
WEB_VENDOR = WEB_DIR / "vendor.json"


def web_vendor() -> dict[str, Path]:
    """The npm folders the client loads (MediaPipe's model and wasm), by the path they are served at."""
    if not WEB_VENDOR.is_file():
        return {}
    entries = json.loads(WEB_VENDOR.read_text())
    return {path: WEB_DIR.parent / folder for path, folder in entries.items() if not path.startswith("//")}


#: Test suites and benchmarks make every account, and every deliberate wrong password, from one loopback
#: address: the per-address caps on those (functions/core/config.py) would refuse them.
MANY_USERS_FROM_ONE_ADDRESS = {
    "MEETUP_REGISTRATIONS_PER_IP": "1000000",
    "MEETUP_LOGIN_FAILURES_PER_IP": "1000000",
}


def _wait_registered(url: str, timeout_s: float = 10.0) -> None:
    from functions.models import RelayModel

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(r.url == url for r in RelayModel.scan(consistent_read=True)):
            return
        time.sleep(0.05)
    raise TimeoutError(f"relay {url} did not register within {timeout_s} s")


@dataclass
class LocalStack:
    """The platform on loopback: moto (DynamoDB + S3), relays, the API. ``start()`` returns once every
    part answers; ``stop()`` tears it down.

    Configuration reaches the functions through the same environment variables as in Lambda, set in this
    process before the functions are imported. ``env`` holds them for child processes (relays).
    """

    host: str = "127.0.0.1"
    api_port: int = 0
    #: One relay process per region label, started on loopback; they join the relay registry.
    relay_regions: list[str] = field(default_factory=lambda: ["local"])
    #: Emulated distance per region: delay added to that relay's /healthz, which the SDK probes.
    relay_probe_delay_ms: dict[str, float] = field(default_factory=dict)
    #: API settings (``MEETUP_*``) of this stack on top of the defaults, e.g. MANY_USERS_FROM_ONE_ADDRESS.
    settings: dict[str, str] = field(default_factory=dict)
    #: coturn (TURN over UDP, TCP and TLS) with the stack: None starts it where ``turnserver`` is
    #: installed (and runs without TURN, saying so in ``turn_note``, where it is not); True requires it.
    turn: bool | None = None
    #: TURN's UDP+TCP and TLS ports; 0: free ones (tests run several stacks on one machine).
    turn_port: int = 0
    turn_tls_port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    relays: list[RelayProcess] = field(default_factory=list)
    turn_server: TurnServer | None = None
    #: What became of TURN: the URLs it serves, or why there is none.
    turn_note: str = ""
    api_url: str = ""
    join_public_key: str = ""
    _moto: MotoServer | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    def configure(self) -> None:
        self._moto = MotoServer(self.host)
        self._moto.start()
        private_pem, self.join_public_key = generate_join_keypair()
        self.env = {
            "AWS_ENDPOINT_URL": self._moto.url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",  # moto accepts any credentials
            "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "MEETUP_JWT_SECRET": secrets.token_urlsafe(32),
            "MEETUP_JOIN_PRIVATE_KEY": private_pem,
            "MEETUP_JOIN_PUBLIC_KEY": self.join_public_key,
            "MEETUP_CLUSTER_SECRET": secrets.token_urlsafe(32),  # relays' gossip and links
            "POWERTOOLS_METRICS_DISABLED": "true",
            **self._start_turn(),
            **self.settings,
        }
        os.environ.update(self.env)
        from functions.core.config import get_settings

        get_settings.cache_clear()  # in case something read the configuration before it was set
        from functions.models import create_tables
        from functions.storage import ensure_bucket

        create_tables()
        ensure_bucket()
        for region in self.relay_regions:
            self.add_relay(region, self.relay_probe_delay_ms.get(region, 0.0))

    def _start_turn(self) -> dict[str, str]:
        """Start coturn if wanted and installed; the API's TURN settings (empty without TURN)."""
        if self.turn is False:
            self.turn_note = "off"
            return {}
        if turnserver_binary() is None:
            if self.turn:
                raise RuntimeError(
                    "TURN was asked for, but no turnserver is installed (apt-get install coturn)"
                )
            self.turn_note = "not installed (Debian: apt-get install coturn): clients get no TURN servers"
            return {}
        try:
            self.turn_server = TurnServer(self.host, self.turn_port, self.turn_tls_port).start()
        except (OSError, RuntimeError, TimeoutError) as exc:
            if self.turn:
                raise
            self.turn_note = f"turnserver did not start ({exc}): clients get no TURN servers"
            return {}
        self.turn_note = ", ".join(self.turn_server.urls)
        return {
            "MEETUP_TURN_URLS": ",".join(self.turn_server.urls),
            "MEETUP_TURN_SECRET": self.turn_server.secret,
        }

    def add_relay(self, region: str, probe_delay_ms: float = 0.0) -> RelayProcess:
        """Start one more relay; it registers itself, so the API offers it from its first heartbeat."""
        relay = RelayProcess(region, self.join_public_key, self.host, probe_delay_ms=probe_delay_ms)
        relay.start()
        self.relays.append(relay)
        _wait_registered(relay.url)
        return relay

    @property
    def web_url(self) -> str:
        """The browser client, same origin as the API (so it needs no CORS), or "" without web/."""
        return f"{self.api_url}{WEB_PATH}/" if self.api_url and WEB_DIR.is_dir() else ""

    def _uvicorn(self) -> uvicorn.Server:
        from fastapi.staticfiles import StaticFiles

        from functions.app import create_app

        self.api_port = self.api_port or free_port(self.host)
        self.api_url = f"http://{self.host}:{self.api_port}"
        app = create_app()
        if WEB_DIR.is_dir():  # the Lambda apps stay API-only: the cloud serves web/ from CloudFront
            mimetypes.add_type("application/wasm", ".wasm")  # streaming compilation wants this type
            for path, folder in web_vendor().items():  # before web/ itself: the longer prefix wins
                if folder.is_dir():
                    app.mount(f"{WEB_PATH}/{path}", StaticFiles(directory=folder), name=path)
            app.mount(WEB_PATH, StaticFiles(directory=WEB_DIR, html=True), name="web")
        # proxy_headers off: uvicorn would take X-Forwarded-For from any client on 127.0.0.1 (every local
        # client); the API decides the caller's address itself (functions/core/client_address.py).
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.api_port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
        )
        return uvicorn.Server(config)

    def start(self) -> LocalStack:
        """Start everything in background threads (tests, the demo)."""
        self.configure()
        self._server = self._uvicorn()
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def serve_forever(self) -> None:
        """Serve the API in this thread until Ctrl-C (``meet local up``)."""
        self._server = self._uvicorn()
        try:
            self._server.run()
        finally:
            self.stop()

    @property
    def aws_url(self) -> str:
        return self._moto.url if self._moto else ""

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None
        for relay in self.relays:
            relay.stop()
        self.relays = []
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self.turn_server is not None:
            self.turn_server.stop()
            self.turn_server = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
