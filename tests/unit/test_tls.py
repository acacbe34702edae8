"""TLS contexts from config: TLS 1.2 at least, verification on, and errors that name the option and file.

The handshake tests run a real ``TrackedServer`` on 127.0.0.1 in-process: a failed handshake is counted and
logged with the peer and reason, and the next connection is served as if nothing happened.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from logferry.certs import init_ca, issue
from logferry.config import AgentConfig, Role, load, load_relay
from logferry.config.schema import ClientAuth
from logferry.errors import ConfigError
from logferry.tls import PemFile, agent_tls, client_context, listener_tls, server_context, syslog_tls
from logferry.transport.listener import TrackedServer, peer_identities


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    init_ca(d, "site-a")
    issue(d, "relay", ["127.0.0.1", "localhost"])
    issue(d, "edge-1", [], client=True)
    return d


def pem(certs: Path, name: str, option: str = "relay.tls_cert") -> PemFile:
    return PemFile(str(certs / name), option)


def test_contexts_refuse_anything_older_than_tls_1_2(certs: Path) -> None:
    server = server_context(pem(certs, "relay.crt"), pem(certs, "relay.key", "relay.tls_key"))
    client = client_context(pem(certs, "ca.crt", "agent.tls_ca"))
    assert server.minimum_version == client.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server.verify_mode == ssl.CERT_NONE
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname


def test_a_client_without_a_ca_still_verifies_against_the_system_store() -> None:
    ctx = client_context(None)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


@pytest.mark.parametrize(
    ("auth", "mode"),
    [(ClientAuth.OPTIONAL, ssl.CERT_OPTIONAL), (ClientAuth.REQUIRED, ssl.CERT_REQUIRED)],
)
def test_client_auth_sets_the_verify_mode(certs: Path, auth: ClientAuth, mode: ssl.VerifyMode) -> None:
    ctx = server_context(pem(certs, "relay.crt"), pem(certs, "relay.key"), pem(certs, "ca.crt"), auth)
    assert ctx.verify_mode == mode


def test_a_ca_file_means_client_certificates_are_required(certs: Path) -> None:
    cfg = load_relay(None, {"tls_cert": str(certs / "relay.crt"), "tls_key": str(certs / "relay.key"),
                                  "tls_client_ca": str(certs / "ca.crt")})  # fmt: skip
    ctx = listener_tls(cfg)
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED


def _expired(certs: Path, tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "old")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now - datetime.timedelta(days=1)).sign(key, hashes.SHA256()))  # fmt: skip
    (tmp_path / "old.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "old.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    return tmp_path / "old.crt", tmp_path / "old.key"


def test_file_problems_name_the_option_and_the_file(certs: Path, tmp_path: Path) -> None:
    (tmp_path / "text.crt").write_text("hello\n")
    old_cert, old_key = _expired(certs, tmp_path)
    key = pem(certs, "relay.key", "relay.tls_key")
    cases = [
        (PemFile(str(tmp_path / "nope.crt"), "relay.tls_cert"), key,
         rf"relay.tls_cert: file {tmp_path}/nope.crt does not exist .*logferry certs"),
        (PemFile(str(tmp_path / "text.crt"), "relay.tls_cert"), key,
         rf"relay.tls_cert: {tmp_path}/text.crt is not a PEM file"),
        (pem(certs, "relay.crt"), pem(certs, "edge-1-client.key", "relay.tls_key"),
         rf"relay.tls_key: the key in {certs}/edge-1-client.key does not match the certificate in "
         rf"{certs}/relay.crt \(relay.tls_cert\)"),
        (PemFile(str(old_cert), "relay.tls_cert"), PemFile(str(old_key), "relay.tls_key"),
         rf"relay.tls_cert: the certificate in {old_cert} expired on \d{{4}}-\d\d-\d\d"),
        (pem(certs, "relay.key"), key,
         rf"relay.tls_cert: {certs}/relay.key holds no readable PEM certificate"),
    ]  # fmt: skip
    for cert, key_file, message in cases:
        with pytest.raises(ConfigError, match=message):
            server_context(cert, key_file)


@pytest.mark.parametrize(
    ("role", "overrides", "message"),
    [
        (Role.RELAY, {"tls_key": "k"}, "relay.tls_cert: set both tls_cert and tls_key, or neither"),
        (Role.RELAY, {"tls_client_auth": "optional"}, "relay.tls_client_auth: needs tls_client_ca"),
        (Role.RELAY, {"collector_server_name": "c"}, "relay.collector_server_name: has no effect while "
         "collector_tls is false; set collector_tls = true"),
        (Role.AGENT, {"tls_server_name": "r"}, "agent.tls_server_name: has no effect while tls is false"),
        (Role.AGENT, {"tls": "true", "tls_ca": "/no/such/ca.crt"},
         "agent.tls_ca: expected an existing PEM file, got '/no/such/ca.crt'"),
        (Role.COLLECTOR, {"tls_client_auth": "sometimes"},
         'collector.tls_client_auth: expected one of none, optional, required, got "sometimes"'),
    ],
)  # fmt: skip
def test_options_that_do_not_fit_together(role: Role, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(role, None, overrides)


def test_syslog_tls_says_why_it_is_off() -> None:
    ctx, why = syslog_tls(load_relay(None, {}))
    assert ctx is None and "set syslog_tls_cert and syslog_tls_key, or tls_cert and tls_key" in why
    ctx, why = syslog_tls(load_relay(None, {"syslog_tls_listen": ""}))
    assert ctx is None and 'syslog_tls_listen = ""' in why


def test_agent_server_name_defaults_to_the_relay_host(certs: Path) -> None:
    cfg = AgentConfig(tls=True, tls_ca=str(certs / "ca.crt"))
    client = agent_tls(cfg, "relay.example.org")
    assert client is not None and client.server_hostname == "relay.example.org"
    assert agent_tls(AgentConfig(), "h") is None


def test_peer_identities_come_only_from_a_verified_certificate() -> None:
    cert = {
        "subject": ((("organizationName", "logferry"),), (("commonName", "edge-1"),)),
        "subjectAltName": (("DNS", "edge-1.site"), ("IP Address", "10.0.0.1")),
    }
    assert peer_identities(cert) == {"edge-1", "edge-1.site"}
    assert peer_identities({}) == frozenset() and peer_identities(None) == frozenset()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readline())
    await writer.drain()


async def test_a_failed_handshake_is_counted_and_logged_and_others_go_on(
    certs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = server_context(pem(certs, "relay.crt"), pem(certs, "relay.key"))
    server = TrackedServer("test tls", _echo, tls=ctx, tls_handshake_timeout_s=5)
    address = await server.start("127.0.0.1", 0)
    port = int(address.rsplit(":", 1)[1])
    with caplog.at_level(logging.WARNING, "logferry.transport"):
        # A plain-TCP peer (an agent without tls = true) speaking logferry/1 to the TLS port.
        _, plain = await asyncio.open_connection("127.0.0.1", port)
        plain.write(b"\x00\x00\x00\x26" + b"\x96" * 38)
        await plain.drain()
        good = client_context(pem(certs, "ca.crt", "agent.tls_ca"))
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=good, server_hostname="localhost"
        )
        writer.write(b"hello over tls\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"hello over tls\n"
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
        for _ in range(50):
            if server.tls_failures:
                break
            await asyncio.sleep(0.02)
        writer.close()
        plain.close()
    assert server.tls_failures == 1
    assert "test tls: TLS handshake with 127.0.0.1:" in caplog.text
    assert "failed: wrong version number" in caplog.text or "failed: http request" in caplog.text
    await server.shutdown(1.0)
