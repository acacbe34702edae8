"""logferry.logging.LogferryHandler in a real Python program, shipping to a real relay and collector."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.procs import Procs, query, wait_until

PROGRAM = """
import logging, sys, time
from logferry.logging import LogferryHandler
handler = LogferryHandler(sys.argv[1], source="billing-app", data_dir=sys.argv[2], flush_timeout_s=20)
log = logging.getLogger("billing")
log.setLevel(logging.DEBUG)
log.addHandler(handler)
for i in range(500):
    log.info("charge %d ok", i, extra={"order": f"o-{i}"})
log.warning("slow gateway")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("charge failed")
log.debug("details")
handler.close()
print(handler.dropped, handler.error)
"""

BLOCKING = """
import logging, sys, time
from logferry.logging import LogferryHandler
handler = LogferryHandler("127.0.0.1:1", source="offline-app", data_dir=sys.argv[1], queue_size=1,
                          max_block_s=0.05, flush_timeout_s=0.5)
log = logging.getLogger("offline")
log.addHandler(handler)
log.setLevel(logging.INFO)
worst = 0.0
for i in range(3000):
    t = time.monotonic()
    log.info("line %d", i)
    worst = max(worst, time.monotonic() - t)
handler.close()
print(worst, handler.dropped)
"""


def test_records_arrive_with_level_logger_exception_and_extra_fields(procs: Procs, tmp_path: Path) -> None:
    collector = procs.start("collector", "--data", str(tmp_path / "c"), "--listen", "127.0.0.1:0")
    relay = procs.start("relay", "--data", str(tmp_path / "r"), "--listen", "127.0.0.1:0",
                        "--collector", collector.address())  # fmt: skip
    run = subprocess.run([sys.executable, "-c", PROGRAM, relay.address(), str(tmp_path / "spool")],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0", "None"]
    db = tmp_path / "c" / "records.db"
    wait_until(lambda: (query(db, "SELECT count(*) FROM records") or [(0,)])[0][0] == 503, 30, "503 records")
    rows = query(db, "SELECT source, seq, level, msg, fields FROM records ORDER BY seq")
    assert [r[1] for r in rows] == list(range(1, 504))
    assert {r[0] for r in rows} == {"billing-app"}
    first = rows[0]
    assert (first[2], first[3]) == (6, "charge 0 ok")
    assert json.loads(first[4]) == {"logger": "billing", "input": "python-logging", "order": "o-0"}
    assert (rows[500][2], rows[500][3]) == (4, "slow gateway")
    failed = json.loads(rows[501][4])
    assert rows[501][2] == 3 and "ZeroDivisionError: division by zero" in failed["exception"]
    assert rows[502][2] == 7


def test_emit_never_blocks_past_its_bound_and_counts_what_it_drops(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", BLOCKING, str(tmp_path / "spool")],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    worst, dropped = run.stdout.split()
    assert float(worst) < 0.05 + 0.25, f"an emit blocked {worst}s"
    spooled = query(tmp_path / "spool" / "spool.db", "SELECT next_seq - 1 FROM meta")[0][0]
    assert int(dropped) + spooled == 3000  # nothing vanishes silently: spooled or counted as dropped
