"""coturn (Debian's ``turnserver``) for the local stack: TURN over UDP and TCP on one port, TLS on another.

Started from flags only (Debian's ``/etc/turnserver.conf`` logs to syslog and is not ours), with the TURN
REST API's ``use-auth-secret`` and a random secret, which reaches the API as ``MEETUP_TURN_SECRET`` (and
coturn through a private config file, not argv: it would show in ``ps``). The TLS certificate is made at
start for the listening address, by a throwaway local CA; a client that should trust it (aiortc verifies
``turns:`` with the default context) gets ``SSL_CERT_FILE=cert_path``, a browser imports ``ca_path``.

``--allow-loopback-peers`` lets coturn relay to 127.0.0.1 (the local relays): only ever here. Where no
``turnserver`` is installed, :func:`turnserver_binary` says None and the stack runs without TURN.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REALM = "meetup.local"


def turnserver_binary() -> str | None:
    return shutil.which("turnserver") or next(
        (p for p in ("/usr/bin/turnserver", "/usr/sbin/turnserver") if os.access(p, os.X_OK)), None
    )


def free_udp_tcp_port(host: str) -> int:
    """A port free for both TCP and UDP on ``host`` (TURN listens on both)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no port free for both TCP and UDP on {host}")


def port_free(host: str, port: int) -> bool:
    """Whether ``port`` is free on ``host`` for both TCP and UDP."""
    try:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind((host, port))
            udp.bind((host, port))
    except OSError:
        return False
    return True


def self_signed_certificate(host: str, directory: Path, name: str | None = None) -> tuple[Path, Path, Path]:
    """(certificate chain, key, CA certificate) PEM files for ``host`` (an IP address or a name) and
    ``name`` (a DNS name of it), valid for a day: a throwaway local CA and a server certificate it
    issued. The chain (server certificate, then the CA) is what coturn serves, and also a file a client
    can trust as is (``SSL_CERT_FILE``); the CA alone is what a browser imports. Not one self-signed
    certificate with CA:TRUE: Firefox (mozilla::pkix) refuses a CA certificate used as the server's own
    (MOZILLA_PKIX_ERROR_CA_CERT_USED_AS_END_ENTITY, checked with Firefox ESR 153 even with it trusted)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"meetup-edge local CA ({host})")])
    ca_usage = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment"), False)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
                **ca_usage,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    if name:
        names.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"meetup-edge local TURN ({host})")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    cert_path, key_path, ca_path = (directory / f"turn-{n}.pem" for n in ("cert", "key", "ca"))
    cert_path.write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    ca_path.write_bytes(ca.public_bytes(pem))
    key_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path, ca_path


class TurnServer:
    """``turnserver`` on ``host``: TURN/UDP and TURN/TCP on ``port``, TURN/TLS on ``tls_port`` (free
    ports unless given). ``log_path``: coturn's log goes there (else nowhere)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_port: int = 0,
        secret: str | None = None,
        allow_loopback_peers: bool = True,
        log_path: str | None = None,
        tls_name: str | None = None,
    ) -> None:
        self.host = host
        #: A DNS name for ``host`` in the ``turns:`` URL and the certificate (else the address): Firefox
        #: refuses TURN over TLS to an address (nricectx.cpp: "Refuse to try TLS without an FQDN").
        self.tls_name = tls_name
        self.port = port or free_udp_tcp_port(host)
        self.tls_port = tls_port or free_udp_tcp_port(host)
        self.secret = secret or secrets.token_urlsafe(32)
        self.allow_loopback_peers = allow_loopback_peers
        self.log_path = log_path
        self.cert_path: Path | None = None  # the TLS chain: what a Python client trusts (SSL_CERT_FILE)
        self.ca_path: Path | None = None  # the CA alone: what a browser imports (tests/regions/browsers.py)
        self._dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def urls(self) -> list[str]:
        """In the order clients try them: UDP, TCP, TLS."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return [
            f"turn:{host}:{self.port}?transport=udp",
            f"turn:{host}:{self.port}?transport=tcp",
            f"turns:{self.tls_name or host}:{self.tls_port}?transport=tcp",
        ]

    def command(self, binary: str) -> list[str]:
        assert self._dir is not None and self.cert_path is not None
        argv = [
            binary,
            "-c",
            str(self._dir / "turnserver.conf"),  # the secret only; everything else as flags
            f"--listening-ip={self.host}",
            f"--relay-ip={self.host}",
            f"--listening-port={self.port}",
            f"--tls-listening-port={self.tls_port}",
            f"--cert={self.cert_path}",
            f"--pkey={self._dir / 'turn-key.pem'}",
            "--use-auth-secret",
            f"--realm={REALM}",
            "--fingerprint",
            "--no-cli",
            "--no-dtls",
            "--no-software-attribute",
            "--no-multicast-peers",
            "--simple-log",
            "--log-file=stdout",
            f"--pidfile={self._dir / 'turnserver.pid'}",
        ]
        if self.allow_loopback_peers:
            argv.append("--allow-loopback-peers")
        return argv

    def start(self, timeout_s: float = 10.0) -> TurnServer:
        binary = turnserver_binary()
        if binary is None:
            raise FileNotFoundError("no turnserver (Debian: apt-get install coturn)")
        self._dir = Path(tempfile.mkdtemp(prefix="meetup-turn-"))
        self.cert_path, _, self.ca_path = self_signed_certificate(self.host, self._dir, self.tls_name)
        conf = self._dir / "turnserver.conf"
        conf.touch(mode=0o600)
        conf.write_text(f"static-auth-secret={self.secret}\n")
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(self.command(binary), stdout=log, stderr=subprocess.STDOUT)
        finally:
            if self.log_path:
                log.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"turnserver exited with code {code}")
            if self._accepts(self.port) and self._accepts(self.tls_port):
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"turnserver did not listen on {self.host}:{self.port} within {timeout_s} s")

    def _accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> TurnServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
