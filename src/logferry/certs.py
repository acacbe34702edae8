"""``logferry certs``: a private CA for one site, and the certificates its relay, collector and agents use.

``certs init --dir DIR --site NAME`` writes ``ca.key`` and ``ca.crt`` (self-signed, 10 years).
``certs issue --dir DIR --name NAME --host HOST...`` writes ``NAME.crt`` / ``NAME.key``: a server certificate
whose subject-alt-names are the host names and IP addresses clients dial. ``--client`` writes
``NAME-client.crt`` / ``NAME-client.key`` instead: a client certificate whose common name (and DNS name,
when it is one) is NAME, the source name of the agent or the name of the relay, which is the identity a
server compares with the Hello's source under mutual TLS (docs/TLS.md).

Keys are EC P-256, written unencrypted with mode 0600 (the daemons start unattended); certificates are valid
825 days unless ``--days`` says otherwise. Nothing is overwritten without ``--force``. After writing, the
command prints the config lines that use the files (``logferry.cli_certs`` is the command line).

This module must never send a key anywhere, never write a key readable by others, and never replace an
existing file silently.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from logferry.errors import ConfigError

CA_DAYS = 3650
LEAF_DAYS = 825  # the longest validity common TLS clients accept for a leaf certificate
CLOCK_SKEW = datetime.timedelta(minutes=5)  # a peer whose clock is a little behind still accepts a new cert


@dataclass(frozen=True, slots=True)
class Written:
    """What one command wrote: files and the config lines that use them."""

    files: list[tuple[Path, str]]
    config: list[str]


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    # EC keys sign (ECDHE does the key exchange): digital_signature, plus certificate signing for the CA.
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _check_free(paths: list[Path], force: bool) -> None:
    taken = [str(p) for p in paths if p.exists()]
    if taken and not force:
        raise ConfigError(
            f"{', '.join(taken)} already exist(s); pass --force to replace (anything that trusted or used "
            "the old files must then be given the new ones)",
            path="logferry certs",
        )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file created with its final mode, then rename: never a readable key."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def init_ca(directory: Path, site: str, *, force: bool = False) -> Written:
    """A private CA for ``site``: ``ca.key`` (0600) and a self-signed ``ca.crt``."""
    if not site.strip():
        raise ConfigError("expected a site name, got an empty one", path="--site")
    directory.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = directory / "ca.key", directory / "ca.crt"
    _check_free([key_path, cert_path], force)
    key = _new_key()
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "logferry"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site),
        x509.NameAttribute(NameOID.COMMON_NAME, f"logferry CA {site}"),
    ])  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    until = cert.not_valid_after_utc.date()
    return Written(
        [(key_path, "CA private key (mode 0600): keep it off the servers, it signs new certificates"),
         (cert_path, f"CA certificate, valid until {until}: give it to every relay, collector and agent")],
        [f'tls_ca = "{cert_path}"          # [agent]: trust this CA for the relay',
         f'collector_ca = "{cert_path}"    # [relay]: trust this CA for the collector',
         f'tls_client_ca = "{cert_path}"   # [relay], [collector]: mutual TLS'],
    )  # fmt: skip


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key_path, cert_path = directory / "ca.key", directory / "ca.crt"
    if not key_path.is_file() or not cert_path.is_file():
        raise ConfigError(
            f"no CA in {directory} (ca.key and ca.crt); run "
            f"`logferry certs init --dir {directory} --site NAME` first",
            path="--dir",
        )
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{key_path} is not an EC key written by `logferry certs init`", path="--dir")
    return cert, key


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host or not host.isascii() or any(c.isspace() or c in "/:@" for c in host):
        raise ConfigError(f"expected a host name or IP address, got {host!r}", path="--host")
    return x509.DNSName(host.lower())


def issue(
    directory: Path,
    name: str,
    hosts: list[str],
    *,
    client: bool = False,
    days: int = LEAF_DAYS,
    force: bool = False,
) -> Written:
    """A server certificate for ``hosts``, or (``client``) a client certificate naming the source ``name``."""
    if not name.strip() or "/" in name or name.startswith("."):
        raise ConfigError(f"expected a name usable as a file name, got {name!r}", path="--name")
    if not client and not hosts:
        raise ConfigError(
            "a server certificate needs at least one --host: the names or addresses clients dial "
            "(e.g. --host relay.example.org --host 10.0.0.5)",
            path="--host",
        )
    if days < 1:
        raise ConfigError(f"expected at least 1 day, got {days}", path="--days")
    ca_cert, ca_key = _load_ca(directory)
    stem = f"{name}-client" if client else name
    key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.crt"
    _check_free([key_path, cert_path], force)
    alt = [_alt_name(h) for h in hosts]
    if client and name.isascii() and all(c.isalnum() or c in "-._" for c in name):
        alt.insert(0, x509.DNSName(name))  # the source name as a SAN too: verifiers that ignore the CN see it
    key = _new_key()
    site = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "logferry"),
        *([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, str(site[0].value))] if site else []),
        x509.NameAttribute(NameOID.COMMON_NAME, name),
    ])  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    until = cert.not_valid_after_utc.date()
    ca_path = directory / "ca.crt"
    if client:
        kind = f"client certificate for source {name!r}, valid until {until}"
        config = [
            f"# [agent] {name}:  tls = true, and",
            f'tls_ca = "{ca_path}"',
            f'tls_cert = "{cert_path}"',
            f'tls_key = "{key_path}"',
            f"# or [relay] named {name}, toward the collector:  collector_tls = true, and",
            f'collector_ca = "{ca_path}"',
            f'collector_cert = "{cert_path}"',
            f'collector_key = "{key_path}"',
            "# the server checking it: tls_client_ca = the CA above (tls_client_auth defaults to required)",
        ]
    else:
        kind = f"server certificate for {', '.join(hosts)}, valid until {until}"
        config = [
            f"# [relay] or [collector] {name}: TLS on its logferry/1 port (and the relay's syslog TLS port)",
            f'tls_cert = "{cert_path}"',
            f'tls_key = "{key_path}"',
            f'# its clients trust the CA: tls_ca (agent) or collector_ca (relay) = "{ca_path}"',
        ]
    return Written([(key_path, "private key (mode 0600)"), (cert_path, kind)], config)
