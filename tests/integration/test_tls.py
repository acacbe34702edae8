"""TLS on every hop with real processes: agent → relay → collector, mutual TLS, and syslog over TLS.

One chain serves the module: a collector that requires a client certificate from its relay, a relay that
requires one from its agents and from syslog senders (all from the site's CA, made with ``logferry.certs``),
and whose ``devices`` table lists only another device, so an agent gets in by its certificate alone. Each
test starts its own agents or clients and checks, at the collector, what arrived and what did not.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from logferry.certs import init_ca, issue
from tests.integration.procs import Proc, Procs, query, wait_until

HOSTNAME = socket.gethostname()


@dataclass
class Site:
    procs: Procs
    root: Path
    certs: Path
    other_ca: Path
    collector: Proc
    relay: Proc

    @property
    def records_db(self) -> Path:
        return self.root / "collector" / "records.db"

    def stored(self, source: str) -> int:
        rows = query(self.records_db, "SELECT count(*) FROM records WHERE source = ?", source)
        return int(rows[0][0]) if rows else 0

    def journaled(self, source: str) -> int:
        rows = query(
            self.root / "relay" / "journal.db", "SELECT count(*) FROM journal WHERE source = ?", source
        )
        return int(rows[0][0]) if rows else 0

    def cert(self, name: str) -> str:
        return str(self.certs / name)

    def agent(self, source: str, *tls: str, lines: int = 0) -> Proc:
        """An agent over TLS sending ``lines`` lines from stdin (``tls``: extra ``--set`` pairs)."""
        sets = [arg for pair in tls for arg in ("--set", pair)]
        proc = self.procs.start(
            "agent", "--data", str(self.root / f"agent-{source}"), "--relay", self.relay.address(),
            "--source", source, "--stdin", "--set", "tls=true", "--set", f"tls_ca={self.cert('ca.crt')}",
            "--set", "reconnect_max_s=0.5", *sets, stdin=subprocess.PIPE,
        )  # fmt: skip
        assert proc.popen.stdin is not None
        proc.popen.stdin.write(b"".join(b"line %d from %s\n" % (i, source.encode()) for i in range(lines)))
        proc.popen.stdin.close()
        return proc


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("tls")
    certs, other = root / "certs", root / "other-ca"
    init_ca(certs, "site-a")
    init_ca(other, "elsewhere")
    for server in ("center", "relay"):
        issue(certs, server, ["127.0.0.1", "localhost"])
    for client in ("relay-a", "edge-1", "syslog-sender", "billing-app"):
        issue(certs, client, [], client=True)
    ca = certs / "ca.crt"
    (root / "collector.toml").write_text(
        f'[collector]\ntls_cert = "{certs}/center.crt"\ntls_key = "{certs}/center.key"\n'
        f'tls_client_ca = "{ca}"\n'
    )
    (root / "relay.toml").write_text(
        f'[relay]\nname = "relay-a"\nheartbeat_s = 1\ndevices = {{ "edge-9" = "a-token" }}\n'
        f'tls_cert = "{certs}/relay.crt"\ntls_key = "{certs}/relay.key"\ntls_client_ca = "{ca}"\n'
        f'collector_tls = true\ncollector_ca = "{ca}"\n'
        f'collector_cert = "{certs}/relay-a-client.crt"\ncollector_key = "{certs}/relay-a-client.key"\n'
        f'syslog_tls_client_ca = "{ca}"\n'
    )
    procs = Procs(root)
    try:
        collector = procs.start("collector", "--config", str(root / "collector.toml"),
                                "--data", str(root / "collector"), "--listen", "127.0.0.1:0")  # fmt: skip
        relay = procs.start("relay", "--config", str(root / "relay.toml"), "--data", str(root / "relay"),
                            "--listen", "127.0.0.1:0", "--collector", collector.address())  # fmt: skip
        yield Site(procs, root, certs, other / "ca.crt", collector, relay)
    finally:
        procs.stop_all()


def test_agent_relay_collector_all_over_tls(site: Site) -> None:
    """Server certificates verified on both hops, client certificates on both: records arrive, and the
    agent needs no token (its certificate names its source) although the relay lists other devices."""
    agent = site.agent("edge-1", f"tls_cert={site.cert('edge-1-client.crt')}",
                       f"tls_key={site.cert('edge-1-client.key')}", "tls_server_name=localhost",
                       lines=200)  # fmt: skip
    assert agent.popen.wait(30) == 0, agent.log_text()
    wait_until(lambda: site.stored("edge-1") == 200, 15, "200 records of edge-1 at the collector")
    assert "relay logferry/1 over TLS listening" in site.relay.log_text()
    assert "relay relay-a connected" in site.collector.log_text()


HANDLER_PROGRAM = """
import logging, sys
from logferry.logging import LogferryHandler
relay, data, ca, cert, key = sys.argv[1:6]
handler = LogferryHandler(relay, source="billing-app", data_dir=data, flush_timeout_s=20, tls=True, tls_ca=ca,
                          tls_cert=cert, tls_key=key, tls_server_name="localhost")
log = logging.getLogger("billing")
log.addHandler(handler)
log.setLevel(logging.INFO)
for i in range(50):
    log.info("charge %d over tls", i)
handler.close()
print(handler.dropped, handler.error)
"""


def test_python_logging_handler_over_mutual_tls(site: Site) -> None:
    run = subprocess.run(
        [sys.executable, "-c", HANDLER_PROGRAM, site.relay.address(), str(site.root / "handler-spool"),
         site.cert("ca.crt"), site.cert("billing-app-client.crt"), site.cert("billing-app-client.key")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0", "None"]
    wait_until(lambda: site.stored("billing-app") == 50, 15, "50 records of billing-app at the collector")


def test_agent_trusting_another_ca_is_refused(site: Site) -> None:
    agent = site.agent("edge-4", f"tls_ca={site.other_ca}", lines=5)
    wait_until(
        lambda: "is not trusted: certificate verify failed" in agent.log_text(), 15, "the agent's error"
    )
    agent.terminate()
    assert "ERROR" in agent.log_text()
    wait_until(lambda: "TLS handshake with 127.0.0.1" in site.relay.log_text(), 5, "the relay's log line")
    assert site.journaled("edge-4") == 0 and site.stored("edge-4") == 0


def test_agent_without_client_certificate_is_refused(site: Site) -> None:
    agent = site.agent("edge-2", lines=5)
    wait_until(
        lambda: "peer did not return a certificate" in site.relay.log_text(), 15, "the relay's log line"
    )
    wait_until(lambda: "require a client certificate" in agent.log_text(), 15, "the agent's error")
    agent.terminate()
    assert site.journaled("edge-2") == 0 and site.stored("edge-2") == 0


def test_agent_with_another_sources_certificate_is_refused(site: Site) -> None:
    """edge-3 presents edge-1's valid certificate: the handshake succeeds, the Hello does not."""
    agent = site.agent("edge-3", f"tls_cert={site.cert('edge-1-client.crt')}",
                       f"tls_key={site.cert('edge-1-client.key')}", lines=5)  # fmt: skip
    expected = "Hello says source 'edge-3' but the client certificate names edge-1"
    wait_until(lambda: expected in site.relay.log_text(), 15, "the relay's refusal")
    wait_until(lambda: "authentication failed (UNAUTHORIZED)" in agent.log_text(), 15, "the agent's error")
    agent.terminate()
    assert site.journaled("edge-3") == 0 and site.stored("edge-3") == 0


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_1_is_refused(site: Site) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    try:
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this OpenSSL offer TLS 1.1 at all
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot make a TLS 1.1 client (tests/unit/test_tls.py checks the minimum)")
    raw = socket.create_connection(("127.0.0.1", site.relay.port()), timeout=5)
    with raw, pytest.raises((ssl.SSLError, ConnectionError)):
        old.wrap_socket(raw, server_hostname="localhost")
    wait_until(lambda: "unsupported protocol" in site.relay.log_text(), 5, "the relay's log line")


def _syslog_client(site: Site, cert: str | None) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=site.cert("ca.crt"))
    if cert is not None:
        ctx.load_cert_chain(site.cert(f"{cert}.crt"), site.cert(f"{cert}.key"))
    raw = socket.create_connection(("127.0.0.1", site.relay.port("syslog_tls")), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def _octet_counted(*messages: str) -> bytes:
    return b"".join(b"%d %s" % (len(m.encode()), m.encode()) for m in messages)


def _row(site: Site, marker: str) -> tuple[str, int, str, dict[str, str]]:
    sql = "SELECT source, level, msg, fields FROM records WHERE msg LIKE ?"
    wait_until(lambda: bool(query(site.records_db, sql, f"%{marker}%")), 15, f"{marker} at the collector")
    ((source, level, msg, fields),) = query(site.records_db, sql, f"%{marker}%")
    return source, level, msg, json.loads(fields) if fields else {}


def test_syslog_over_tls_with_a_client_certificate(site: Site) -> None:
    m = f"m{uuid.uuid4().hex[:12]}"
    with _syslog_client(site, "syslog-sender-client") as tls:
        assert tls.version() in ("TLSv1.3", "TLSv1.2")
        tls.sendall(_octet_counted(f'<165>1 2026-11-25T10:00:00Z fw-9 pf 7 FW1 [x@1 k="v"] blocked {m}'))
    fields = {"syslog": "rfc5424", "facility": "local4", "appname": "pf", "procid": "7", "msgid": "FW1",
              "sd.x@1.k": "v"}  # fmt: skip
    assert _row(site, m) == ("fw-9", 5, f"blocked {m}", fields)


def test_syslog_over_tls_without_a_client_certificate_is_refused(site: Site) -> None:
    m = f"m{uuid.uuid4().hex[:12]}"
    before = site.relay.log_text().count("relay syslog_tls: TLS handshake with")
    try:
        with _syslog_client(site, None) as tls:
            tls.sendall(_octet_counted(f"<14>1 - fw-8 app - - - refused {m}"))
            # TLS 1.3: the client finishes its handshake first; the relay's refusal comes as the next read.
            assert tls.recv(1) == b""
    except (ssl.SSLError, ConnectionError):
        pass  # the refusal as a TLS alert: as good as a close
    wait_until(lambda: site.relay.log_text().count("relay syslog_tls: TLS handshake with") > before, 5,
               "the relay's log line")  # fmt: skip
    time.sleep(0.5)  # what was refused must not show up later either
    assert not query(site.records_db, "SELECT 1 FROM records WHERE msg LIKE ?", f"%{m}%")


def _rsyslog_tls_driver() -> None:
    """rsyslog's gtls stream driver, installed from Debian if missing (this path only)."""
    driver = [p for p in Path("/usr/lib").glob("*/rsyslog/lmnsd_gtls.so")]
    if driver:
        return
    if shutil.which("apt-get") is not None:
        subprocess.run(["apt-get", "install", "-y", "rsyslog-gnutls"], check=False, capture_output=True,
                       timeout=300)  # fmt: skip
    if not list(Path("/usr/lib").glob("*/rsyslog/lmnsd_gtls.so")):
        pytest.fail(
            "rsyslog's TLS driver is missing and could not be installed: apt-get install -y rsyslog-gnutls"
        )


RSYSLOG_TLS_CONF = """
global(workDirectory="{work}" DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{in_port}" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omfwd" target="127.0.0.1" port="{out_port}" protocol="tcp"
         StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
         StreamDriverPermittedPeers="localhost"
         template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}}
*.* action(type="omfile" file="{work}/internal.log")
"""


def test_rsyslog_forwards_over_tls(site: Site, tmp_path: Path) -> None:
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not Path(rsyslogd).exists():
        pytest.fail("rsyslogd is not installed: apt-get install -y rsyslog rsyslog-gnutls")
    _rsyslog_tls_driver()
    m = f"m{uuid.uuid4().hex[:12]}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        in_port = probe.getsockname()[1]
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(RSYSLOG_TLS_CONF.format(
        work=tmp_path, ca=site.cert("ca.crt"), cert=site.cert("syslog-sender-client.crt"),
        key=site.cert("syslog-sender-client.key"), in_port=in_port, out_port=site.relay.port("syslog_tls"),
    ))  # fmt: skip
    command = [rsyslogd, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")]
    stderr = (tmp_path / "stderr.log").open("wb")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_until(lambda: _accepts(in_port), 10, f"rsyslogd listening on {in_port}")
        with socket.create_connection(("127.0.0.1", in_port)) as s:
            s.sendall(f"<11>Nov 25 10:00:00 edge-fw-7 kernel: link down {m}\n".encode())
        source, level, msg, fields = _row(site, m)
    finally:
        proc.terminate()
        proc.wait(10)
        stderr.close()
    assert (source, level, msg) == ("edge-fw-7", 3, f"link down {m}")
    assert (fields["syslog"], fields["appname"]) == ("rfc5424", "kernel")


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True
