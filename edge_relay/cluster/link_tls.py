"""TLS for relay-to-relay links, pinned through the gossip: every relay process addressable on its own.

Clients reach a region's relays through its load balancer, which picks a task; a link must reach one
particular relay (the one holding the meeting's participants). So each relay process also serves its
WebSocket on ``MEETUP_RELAY_CASCADE_PORT`` over TLS with a certificate it makes at start-up, and gossips
the URL and the certificate's SHA-256. No CA is involved: the gossip is authenticated (AES-GCM with the
cluster secret), so the fingerprint it carries is trusted, and a dialing relay accepts exactly that
certificate (pinning) before it sends its link token.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: Member metadata key of the fingerprint (``Member.extra``).
CERT_KEY = "cascade_cert"


class PinMismatch(ConnectionError):
    """The peer's certificate is not the one its relay gossiped: not the relay we meant to reach."""


@dataclass(frozen=True)
class LinkIdentity:
    cert_pem: bytes
    key_pem: bytes
    fingerprint: str  # hex SHA-256 of the DER certificate

    @classmethod
    def generate(cls, name: str, days: int = 30) -> LinkIdentity:
        """A fresh P-256 key and a self-signed certificate naming ``name`` (an IP address or a host)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64] or "relay")])
        try:
            alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            alt = x509.DNSName(name or "relay")
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .sign(key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cls(cert.public_bytes(serialization.Encoding.PEM), key_pem, hashlib.sha256(der).hexdigest())

    def write(self) -> tuple[str, str]:
        """The certificate and key as files (uvicorn takes paths), readable by this user only."""
        folder = Path(tempfile.mkdtemp(prefix="meetup-link-tls-"))  # 0700
        paths = folder / "cert.pem", folder / "key.pem"
        for path, data in zip(paths, (self.cert_pem, self.key_pem), strict=True):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        return str(paths[0]), str(paths[1])


def client_context() -> ssl.SSLContext:
    """No CA and no host name: the certificate is checked against the gossiped pin (``check_pin``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def check_pin(ws: Any, fingerprint: str) -> None:
    """Raise PinMismatch unless the connection's peer certificate has ``fingerprint``."""
    ssl_object = ws.transport.get_extra_info("ssl_object") if ws.transport is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der or not hmac.compare_digest(hashlib.sha256(der).hexdigest(), fingerprint.lower()):
        raise PinMismatch("the peer relay's certificate is not the one it announced")
