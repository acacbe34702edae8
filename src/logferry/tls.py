"""TLS for logferry: ``ssl.SSLContext`` objects built from config, with the files checked first.

Every hop of logferry/1 (agent → relay, relay → collector) and the relay's syslog port (RFC 5425) can run
over TLS. This module turns the ``tls_*`` / ``collector_*`` / ``syslog_tls_*`` options into contexts:

- server side: certificate chain + key, optionally a CA for clients' certificates (``none`` → no client
  certificate asked, ``optional`` → checked when sent, ``required`` → the handshake fails without one);
- client side: the server's certificate is always verified (against ``*_ca``, or the system trust store
  when none is given) and its name checked; optionally a client certificate for mutual TLS.

TLS 1.2 is the minimum; OpenSSL picks TLS 1.3 whenever both sides speak it. Before a file reaches OpenSSL it
is read and parsed here, so a missing, unreadable, non-PEM, expired or mismatched file is reported as a
``ConfigError`` naming the option and the file, not as an OpenSSL error code. (The transport does the
handshakes: ``transport.listener`` upgrades accepted connections and reads a client certificate's names.)

This module must never open a socket, and never build a context that skips verifying the server.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from logferry.config.schema import AgentConfig, AnyConfig, ClientAuth, CollectorConfig, RelayConfig
from logferry.config.validate import tls_problems
from logferry.errors import ConfigError

if TYPE_CHECKING:  # cryptography costs ~0.1 s to import: only a role that configures TLS pays it
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

MIN_VERSION = ssl.TLSVersion.TLSv1_2
_VERIFY = {
    ClientAuth.NONE: ssl.CERT_NONE,
    ClientAuth.OPTIONAL: ssl.CERT_OPTIONAL,
    ClientAuth.REQUIRED: ssl.CERT_REQUIRED,
}
_MAKE_CERTS = "make one with `logferry certs` (docs/TLS.md)"


@dataclass(frozen=True, slots=True)
class PemFile:
    """A PEM file named by a config option, so every error can name both."""

    path: str
    option: str

    def fail(self, problem: str, what_to_do: str = _MAKE_CERTS) -> ConfigError:
        return ConfigError(f"{problem}; {what_to_do}", key=self.option)

    def read(self) -> bytes:
        try:
            data = Path(self.path).read_bytes()
        except FileNotFoundError:
            raise self.fail(f"file {self.path} does not exist (relative to the working directory)") from None
        except OSError as exc:
            raise self.fail(
                f"cannot read {self.path}: {exc.strerror or exc}",
                "check the file's permissions for the user logferry runs as",
            ) from None
        if b"-----BEGIN " not in data:
            raise self.fail(f"{self.path} is not a PEM file (no -----BEGIN line)")
        return data

    def certificates(self) -> list[x509.Certificate]:
        from cryptography import x509

        try:
            certs = x509.load_pem_x509_certificates(self.read())
        except ValueError as exc:
            raise self.fail(f"{self.path} holds no readable PEM certificate ({exc})") from None
        return certs

    def private_key(self) -> PrivateKeyTypes:
        from cryptography.hazmat.primitives import serialization

        try:
            return serialization.load_pem_private_key(self.read(), password=None)
        except (ValueError, TypeError) as exc:
            # TypeError: the key is encrypted; logferry runs unattended, so keys stay unencrypted (0600).
            raise self.fail(
                f"{self.path} holds no readable unencrypted PEM private key ({exc})",
                "keep the key unencrypted and readable only by logferry (chmod 600)",
            ) from None


@dataclass(frozen=True, slots=True)
class ClientTls:
    """What a sender needs to dial over TLS: the context and the name the server's certificate must carry."""

    context: ssl.SSLContext
    server_hostname: str


def _check_dates(file: PemFile, cert: x509.Certificate, now: datetime.datetime) -> None:
    if cert.not_valid_after_utc < now:
        raise file.fail(f"the certificate in {file.path} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if cert.not_valid_before_utc > now:
        raise file.fail(
            f"the certificate in {file.path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} "
            "UTC",
            "check this machine's clock",
        )


def _load_chain(ctx: ssl.SSLContext, cert: PemFile, key: PemFile) -> None:
    leaf = cert.certificates()[0]
    _check_dates(cert, leaf, datetime.datetime.now(datetime.UTC))
    private = key.private_key()
    from cryptography.hazmat.primitives import serialization

    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(
        serialization.Encoding.PEM, public
    ) != leaf.public_key().public_bytes(serialization.Encoding.PEM, public):
        raise key.fail(
            f"the key in {key.path} does not match the certificate in {cert.path} ({cert.option})",
            "give the key that was written together with that certificate",
        )
    try:
        ctx.load_cert_chain(cert.path, key.path)
    except ssl.SSLError as exc:
        raise cert.fail(f"OpenSSL refused {cert.path} with {key.path}: {exc.reason or exc}") from None


def _load_ca(ctx: ssl.SSLContext, ca: PemFile) -> None:
    certs = ca.certificates()
    now = datetime.datetime.now(datetime.UTC)
    if all(c.not_valid_after_utc < now for c in certs):
        raise ca.fail(f"every certificate in {ca.path} has expired")
    try:
        ctx.load_verify_locations(cafile=ca.path)
    except ssl.SSLError as exc:
        raise ca.fail(f"OpenSSL refused {ca.path}: {exc.reason or exc}") from None


def server_context(
    cert: PemFile, key: PemFile, client_ca: PemFile | None = None, client_auth: ClientAuth = ClientAuth.NONE
) -> ssl.SSLContext:
    """A server context: TLS ≥ 1.2, this certificate, clients' certificates checked as ``client_auth`` says.

    ``client_ca`` is required unless ``client_auth`` is ``none`` (``config_problems`` reports it earlier).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = MIN_VERSION
    _load_chain(ctx, cert, key)
    if client_auth is not ClientAuth.NONE:
        if client_ca is None:
            raise ValueError(f"client_auth {client_auth.value} needs a client CA")
        _load_ca(ctx, client_ca)
    ctx.verify_mode = _VERIFY[client_auth]
    return ctx


def client_context(
    ca: PemFile | None, cert: PemFile | None = None, key: PemFile | None = None
) -> ssl.SSLContext:
    """A client context: TLS ≥ 1.2; the server verified (``ca``, else the system's trust store) and its name
    checked."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by construction
    ctx.minimum_version = MIN_VERSION
    if ca is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        _load_ca(ctx, ca)
    if cert is not None and key is not None:
        _load_chain(ctx, cert, key)
    return ctx


def _file(path: str, option: str) -> PemFile | None:
    return PemFile(path, option) if path else None


def _pair(cfg: AnyConfig, role: str, cert: str, key: str) -> tuple[PemFile, PemFile] | None:
    cert_path, key_path = getattr(cfg, cert), getattr(cfg, key)
    return (PemFile(cert_path, f"{role}.{cert}"), PemFile(key_path, f"{role}.{key}")) if cert_path else None


def _check(cfg: AnyConfig) -> None:
    problems = tls_problems(cfg)  # as `logferry config check` reports them; here for configs built in code
    if problems:
        key, message = problems[0]
        raise ConfigError(message, key=key)


def listener_tls(cfg: RelayConfig | CollectorConfig) -> ssl.SSLContext | None:
    """The context of a relay's or collector's logferry/1 port; None while tls_cert is unset."""
    _check(cfg)
    role = "relay" if isinstance(cfg, RelayConfig) else "collector"
    pair = _pair(cfg, role, "tls_cert", "tls_key")
    if pair is None:
        return None
    return server_context(*pair, _file(cfg.tls_client_ca, f"{role}.tls_client_ca"), cfg.client_auth())


def syslog_tls(cfg: RelayConfig) -> tuple[ssl.SSLContext | None, str]:
    """The context of the relay's syslog TLS port, or None and why it stays off (for the log)."""
    _check(cfg)
    if not cfg.syslog_tls_listen:
        return None, 'syslog over TLS is off (syslog_tls_listen = "")'
    pair = _pair(cfg, "relay", "syslog_tls_cert", "syslog_tls_key") or _pair(
        cfg, "relay", "tls_cert", "tls_key"
    )
    if pair is None:
        return None, (
            f"syslog over TLS ({cfg.syslog_tls_listen}) is off: no certificate; set syslog_tls_cert and "
            "syslog_tls_key, or tls_cert and tls_key"
        )
    client_ca = _file(cfg.syslog_tls_client_ca, "relay.syslog_tls_client_ca")
    return server_context(*pair, client_ca, cfg.syslog_client_auth()), ""


def agent_tls(cfg: AgentConfig, relay_host: str) -> ClientTls | None:
    """The agent's context toward the relay; None unless ``tls = true``."""
    _check(cfg)
    if not cfg.tls:
        return None
    pair = _pair(cfg, "agent", "tls_cert", "tls_key") or (None, None)
    ctx = client_context(_file(cfg.tls_ca, "agent.tls_ca"), *pair)
    return ClientTls(ctx, cfg.tls_server_name or relay_host)


def collector_tls(cfg: RelayConfig, collector_host: str) -> ClientTls | None:
    """The relay's context toward the collector; None unless ``collector_tls = true``."""
    _check(cfg)
    if not cfg.collector_tls:
        return None
    pair = _pair(cfg, "relay", "collector_cert", "collector_key") or (None, None)
    ctx = client_context(_file(cfg.collector_ca, "relay.collector_ca"), *pair)
    return ClientTls(ctx, cfg.collector_server_name or collector_host)
