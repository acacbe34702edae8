"""Syslog over TCP from real clients the project did not write, each record checked at the collector.

One chain (collector, relay with the test rules) serves the whole module; every test marks its messages
with a unique word and looks for them in the collector's ``records`` table: source, host, level, time,
message and fields. util-linux ``logger`` covers octet counting and LF framing, RFC 5424 and RFC 3164;
Python's ``SysLogHandler`` sends ``<PRI>message`` NUL-terminated; rsyslog forwards with omfwd.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pipeline import Chain, start_chain
from tests.integration.procs import Procs, query, wait_until

HOSTNAME = socket.gethostname()


@dataclass
class Row:
    source: str
    seq: int
    ts_ns: int
    level: int
    host: str
    msg: str
    fields: dict[str, str]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    root = tmp_path_factory.mktemp("syslog")
    procs = Procs(root)
    try:
        yield start_chain(procs, root)
    finally:
        procs.stop_all()


def rows_with(chain: Chain, marker: str, n: int = 1, timeout_s: float = 15.0) -> list[Row]:
    """The collector's rows whose message contains ``marker``, once there are ``n`` of them."""
    sql = "SELECT source, seq, ts_ns, level, host, msg, fields FROM records WHERE msg LIKE ? ORDER BY seq"

    def found() -> list[Row]:
        return [
            Row(s, q, t, lv, h, m, json.loads(f) if f else {})
            for s, q, t, lv, h, m, f in query(chain.records_db, sql, f"%{marker}%")
        ]

    wait_until(lambda: len(found()) >= n, timeout_s, f"{n} records with {marker!r} at the collector")
    return found()


def marker() -> str:
    return f"m{uuid.uuid4().hex[:12]}"


def logger(chain: Chain, *args: str) -> None:
    if shutil.which("logger") is None:
        pytest.fail("util-linux `logger` is not installed (apt-get install -y bsdutils)")
    port = str(chain.relay.port("syslog"))
    subprocess.run(["logger", "--tcp", "-n", "127.0.0.1", "-P", port, *args], check=True, timeout=10)


def assert_recent(ts_ns: int, before_ns: int, slack_s: float = 2.0) -> None:
    assert before_ns - slack_s * 1e9 <= ts_ns <= time.time_ns() + slack_s * 1e9


@pytest.mark.parametrize("framing", [["--octet-count"], []], ids=["octet-counting", "lf"])
def test_logger_rfc5424(chain: Chain, framing: list[str]) -> None:
    m, before = marker(), time.time_ns()
    logger(chain, *framing, "--rfc5424", "-t", "billing", "-p", "local3.warning", "--msgid", "PAY7",
           "--sd-id", "order@32473", "--sd-param", 'id="42"', "--sd-param", 'note="a \\"quoted\\" \\]"',
           f"charge declined {m}")  # fmt: skip
    (row,) = rows_with(chain, m)
    assert (row.source, row.host, row.level) == (HOSTNAME, HOSTNAME, 4)
    assert row.msg == f"charge declined {m}"
    assert_recent(row.ts_ns, before)
    f = row.fields
    assert (f["syslog"], f["facility"], f["appname"], f["msgid"]) == ("rfc5424", "local3", "billing", "PAY7")
    assert f["sd.order@32473.id"] == "42"
    assert f["sd.order@32473.note"] == 'a "quoted" ]'
    assert f["sd.timeQuality.tzKnown"] == "1"


@pytest.mark.parametrize("framing", [["--octet-count"], []], ids=["octet-counting", "lf"])
def test_logger_rfc3164(chain: Chain, framing: list[str]) -> None:
    m, before = marker(), time.time_ns()
    logger(chain, *framing, "--rfc3164", "-t", "cron", "-i", "-p", "cron.err", f"job failed {m}")
    (row,) = rows_with(chain, m)
    assert (row.source, row.host, row.level) == (HOSTNAME, HOSTNAME, 3)
    assert row.msg == f"job failed {m}"
    # RFC 3164 has whole seconds and no zone: local time, this year.
    assert_recent(row.ts_ns, before - 1_000_000_000)
    assert (row.fields["syslog"], row.fields["facility"], row.fields["appname"]) == (
        "rfc3164",
        "cron",
        "cron",
    )
    assert row.fields["procid"].isdigit()


def test_logger_many_lines_keep_order_and_seqs(chain: Chain, tmp_path: Path) -> None:
    """A file of lines through one connection: each host's seqs come from the journal, gap-free."""
    m = marker()
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"line {i} {m}\n" for i in range(1, 301)), encoding="utf-8")
    logger(chain, "--octet-count", "--rfc5424", "-t", "bulk", "-f", str(lines))
    rows = rows_with(chain, m, 300)
    assert [r.msg for r in rows] == [f"line {i} {m}" for i in range(1, 301)]
    seqs = [r.seq for r in rows]
    assert seqs == list(range(seqs[0], seqs[0] + 300))


def test_rules_apply_to_syslog_records(chain: Chain) -> None:
    """The relay's rules meet syslog records exactly like agents' records: redact, hold, drop."""
    m = marker()
    logger(chain, "--rfc5424", "-p", "user.debug", f"cache miss {m}")  # dropped: drop-debug
    logger(chain, "--rfc5424", f"login password=hunter2 {m}")  # redacted
    logger(chain, "--rfc5424", f"charge card=4111111111111111 {m}")  # held
    (row,) = rows_with(chain, m)
    assert "hunter2" not in row.msg and "[REDACTED]" in row.msg
    held = "SELECT count(*) FROM held WHERE msg LIKE ?"
    wait_until(
        lambda: query(chain.journal_db, held, f"%{m}%")[0][0] == 1, 10, "the card number held at the relay"
    )
    dropped = query(
        chain.journal_db, "SELECT n FROM counters WHERE source = ? AND rule = 'drop-debug'", HOSTNAME
    )
    assert dropped and dropped[0][0] >= 1


def test_python_syslog_handler_over_tcp(chain: Chain) -> None:
    m, before = marker(), time.time_ns()
    handler = logging.handlers.SysLogHandler(
        address=("127.0.0.1", chain.relay.port("syslog")),
        facility=logging.handlers.SysLogHandler.LOG_LOCAL5,
        socktype=socket.SOCK_STREAM,
    )
    handler.ident = "pyapp: "
    log = logging.getLogger(f"test.syslog.{m}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    try:
        log.error("disk almost full %s", m)
        log.info("checkpoint done %s", m)
    finally:
        handler.close()
    rows = rows_with(chain, m, 2)
    # SysLogHandler sends "<PRI>ident message\0": no timestamp, no host name, so the peer address is both.
    assert [(r.source, r.host, r.level, r.msg) for r in rows] == [
        ("127.0.0.1", "127.0.0.1", 3, f"disk almost full {m}"),
        ("127.0.0.1", "127.0.0.1", 6, f"checkpoint done {m}"),
    ]
    for r in rows:
        assert_recent(r.ts_ns, before)
        assert (r.fields["facility"], r.fields["appname"]) == ("local5", "pyapp")


def test_rfc5424_logging_handler_package(chain: Chain) -> None:
    """The rfc5424-logging-handler package (PyPI) over TCP: RFC 5424 with structured data and msgid."""
    from rfc5424logging import Rfc5424SysLogHandler

    m, before = marker(), time.time_ns()
    handler = Rfc5424SysLogHandler(
        address=("127.0.0.1", chain.relay.port("syslog")),
        socktype=socket.SOCK_STREAM,
        hostname="edge-7",
        appname="inventory",
        procid=4242,
        structured_data={"shipment@32473": {"crate": "17"}},
        enterprise_id=32473,
    )
    log = logging.getLogger(f"test.rfc5424.{m}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    try:
        log.warning("crate damaged %s", m, extra={"msgid": "DMG1"})
    finally:
        handler.close()
    (row,) = rows_with(chain, m)
    assert (row.source, row.host, row.level) == ("edge-7", "edge-7", 4)
    assert row.msg == f"crate damaged {m}"
    assert_recent(row.ts_ns, before)
    f = row.fields
    assert (f["syslog"], f["appname"], f["procid"], f["msgid"]) == ("rfc5424", "inventory", "4242", "DMG1")
    assert f["sd.shipment@32473.crate"] == "17"


def test_garbage_and_huge_frames_are_kept_flagged_and_others_go_on(chain: Chain) -> None:
    m = marker()
    port = chain.relay.port("syslog")
    big = f"<14>1 - bighost app - - - {m} big ".encode() + b"x" * 200_000
    after = f"<14>1 - bighost app - - - {m} after".encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"%d %s%d %s" % (len(big), big, len(after), after))
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"\xff not syslog {m} garbage\n<13>Nov 25 10:00:00 gw1 sshd[7]: {m} fine\n".encode())
    rows = {r.msg.split(m)[1].split()[0]: r for r in rows_with(chain, m, 4)}
    cut, ok, raw, fine = rows["big"], rows["after"], rows["garbage"], rows["fine"]
    assert (cut.source, len(cut.msg.encode()), cut.fields["truncated"]) == (
        "bighost",
        64 * 1024 - 26,
        str(len(big)),
    )
    assert (ok.source, "truncated" in ok.fields) == ("bighost", False)
    assert (raw.source, raw.host, raw.level, raw.msg) == (
        "127.0.0.1",
        "127.0.0.1",
        6,
        f"\xff not syslog {m} garbage",
    )
    assert raw.fields == {"parse_error": "no <PRI> at the start (not a syslog message)"}
    assert (fine.source, fine.level, fine.fields["appname"]) == ("gw1", 5, "sshd")


def test_rsyslog_forwards_with_omfwd(chain: Chain, tmp_path: Path) -> None:
    rsyslogd = shutil.which("rsyslogd") or (
        "/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None
    )
    if rsyslogd is None:
        pytest.fail("rsyslogd is not installed: apt-get install -y rsyslog")
    m = marker()
    work = tmp_path / "rsyslog"
    work.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        in_port = probe.getsockname()[1]
    conf = work / "rsyslog.conf"
    conf.write_text(RSYSLOG_CONF.format(work=work, in_port=in_port, out_port=chain.relay.port("syslog")))
    pidfile = work / "rsyslogd.pid"
    proc = subprocess.Popen([rsyslogd, "-n", "-f", str(conf), "-i", str(pidfile)],
                            stdout=subprocess.DEVNULL, stderr=(work / "stderr.log").open("wb"))  # fmt: skip
    try:
        wait_until(lambda: _accepts(in_port), 10, f"rsyslogd listening on {in_port}")
        with socket.create_connection(("127.0.0.1", in_port)) as s:
            s.sendall(f"<11>Nov 25 10:00:00 edge-fw-1 kernel: link down {m}\n".encode())
            s.sendall(f"<30>Nov 25 10:00:01 edge-fw-2 ntpd[9]: clock synced {m}\n".encode())
        rows = rows_with(chain, m, 2)
    finally:
        proc.terminate()
        proc.wait(10)
    by_source: dict[str, Any] = {r.source: r for r in rows}
    one, two = by_source["edge-fw-1"], by_source["edge-fw-2"]
    assert (one.host, one.level, one.msg, one.fields["appname"]) == (
        "edge-fw-1",
        3,
        f"link down {m}",
        "kernel",
    )
    assert (two.host, two.level, two.fields["appname"], two.fields["procid"]) == ("edge-fw-2", 6, "ntpd", "9")
    assert one.fields["syslog"] == "rfc5424"  # omfwd re-sent them as RFC 5424, octet counted
    assert time.localtime(one.ts_ns / 1e9)[1:6] == (11, 25, 10, 0, 0)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


RSYSLOG_CONF = """
global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{in_port}" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omfwd" target="127.0.0.1" port="{out_port}" protocol="tcp"
         template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}}
*.* action(type="omfile" file="{work}/internal.log")
"""


def test_inputs_turn_off_and_a_busy_port_is_named(procs: Procs, tmp_path: Path) -> None:
    off = procs.start("relay", "--data", str(tmp_path / "off"), "--listen", "127.0.0.1:0",
                      "--set", "syslog_listen=", "--set", "line_listen=")  # fmt: skip
    assert "syslog" not in off.ready["listen"] and "line" not in off.ready["listen"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "logferry", "relay", "--data", str(tmp_path / "busy"),
             "--listen", "127.0.0.1:0", "--set", f"syslog_listen=127.0.0.1:{port}", "--set", "line_listen=",
             "--set", "api_listen="],
            check=False, capture_output=True, text=True, timeout=20,
        )  # fmt: skip
    assert run.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} (syslog_listen)" in run.stderr
