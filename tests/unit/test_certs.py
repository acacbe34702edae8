"""``logferry certs``: a CA and certificates that logferry's own TLS contexts accept, written safely."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from logferry import cli_certs
from logferry.certs import LEAF_DAYS, init_ca, issue
from logferry.cli import main
from logferry.config.schema import ClientAuth
from logferry.errors import ConfigError
from logferry.tls import PemFile, client_context, server_context


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_writes_a_ca_and_a_private_key_only_we_can_read(tmp_path: Path) -> None:
    init_ca(tmp_path / "ca", "site-a")
    key, cert = tmp_path / "ca" / "ca.key", tmp_path / "ca" / "ca.crt"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = load(cert)
    assert ca.subject == ca.issuer
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "site-a"
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"


def test_nothing_is_overwritten_without_force(tmp_path: Path) -> None:
    init_ca(tmp_path, "site-a")
    before = (tmp_path / "ca.crt").read_bytes()
    with pytest.raises(ConfigError, match=r"already exist.*pass --force"):
        init_ca(tmp_path, "site-a")
    assert (tmp_path / "ca.crt").read_bytes() == before
    issue(tmp_path, "relay", ["127.0.0.1"])
    with pytest.raises(ConfigError, match=r"relay\.key"):
        issue(tmp_path, "relay", ["127.0.0.1"])
    init_ca(tmp_path, "site-a", force=True)
    assert (tmp_path / "ca.crt").read_bytes() != before


def test_server_certificate_names_every_host_and_works_with_our_contexts(tmp_path: Path) -> None:
    init_ca(tmp_path, "site-a")
    issue(tmp_path, "relay", ["relay.example.org", "10.0.0.5", "::1"])
    cert = load(tmp_path / "relay.crt")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["relay.example.org"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("::1"),
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert stat.S_IMODE((tmp_path / "relay.key").stat().st_mode) == 0o600
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert LEAF_DAYS - 1 <= days <= LEAF_DAYS
    ctx = server_context(PemFile(str(tmp_path / "relay.crt"), "relay.tls_cert"),
                         PemFile(str(tmp_path / "relay.key"), "relay.tls_key"),
                         PemFile(str(tmp_path / "ca.crt"), "relay.tls_client_ca"),
                         ClientAuth.REQUIRED)  # fmt: skip
    assert ctx.get_ca_certs()[0]["subject"][-1] == (("commonName", "logferry CA site-a"),)


def test_client_certificate_names_its_source(tmp_path: Path) -> None:
    init_ca(tmp_path, "site-a")
    issue(tmp_path, "edge-1", [], client=True)
    cert = load(tmp_path / "edge-1-client.crt")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "edge-1"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["edge-1"]
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    client_context(PemFile(str(tmp_path / "ca.crt"), "agent.tls_ca"),
                   PemFile(str(tmp_path / "edge-1-client.crt"), "agent.tls_cert"),
                   PemFile(str(tmp_path / "edge-1-client.key"), "agent.tls_key"))  # fmt: skip


@pytest.mark.parametrize(
    ("name", "hosts", "client", "message"),
    [
        ("relay", [], False, "needs at least one --host"),
        ("relay", ["bad host"], False, "expected a host name or IP address"),
        ("../x", ["h"], False, "usable as a file name"),
    ],
)
def test_bad_requests_say_what_to_do(
    tmp_path: Path, name: str, hosts: list[str], client: bool, message: str
) -> None:
    init_ca(tmp_path, "site-a")
    with pytest.raises(ConfigError, match=message):
        issue(tmp_path, name, hosts, client=client)


def test_issue_without_a_ca_names_the_init_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="logferry certs init --dir"):
        issue(tmp_path, "relay", ["h"])


def test_command_line_prints_files_and_config_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(tmp_path / "certs")
    assert main(["certs", "init", "--dir", d, "--site", "site-a"]) == 0
    assert main(["certs", "issue", "--dir", d, "--name", "relay", "--host", "127.0.0.1"]) == 0
    assert main(["certs", "issue", "--dir", d, "--name", "edge-1", "--client"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path}/certs/ca.key: CA private key (mode 0600)" in out
    assert f'tls_cert = "{tmp_path}/certs/relay.crt"' in out
    assert f'tls_key = "{tmp_path}/certs/edge-1-client.key"' in out
    assert main(["certs", "init", "--dir", d, "--site", "site-a"]) == 2
    assert "pass --force" in capsys.readouterr().err


def test_cli_default_validity_matches_the_library() -> None:
    assert cli_certs.LEAF_DAYS == LEAF_DAYS
