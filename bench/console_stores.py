"""Big stores for the console benchmark, written straight into SQLite, cached between runs.

A relay data directory with ``HELD`` held records and a collector data directory with ``RECORDS`` stored,
full-text indexed records. Each store is first created by its real module (``Journal.open`` /
``RecordStore.open``: the same migrations, application id and pragmas a daemon uses), then filled with
``executemany`` in large transactions on a private connection (``journal_mode=OFF``, ``synchronous=OFF``
while building: a crash only loses the cache, which is rebuilt), then put back into WAL mode. Going through
the network would measure ingestion (docs/BENCHMARKS.md has that) and take hours for 10M records.

The data is consistent with what the stores promise: every held row has its journal fate run (HELD by its
rule) and its counter; every record row is counted in ``sources``, indexed in FTS5 up to
``meta.fts_indexed_rowid``, and its reconciliation bucket is marked dirty (rebuilt from the rows if a relay
ever asks). Deterministic for a given size.

The cache lives under ``/tmp/logferry-bench-console/``, one directory per store kind, size and schema (a
digest of the module's migrations): a schema change makes a new cache, never a stale one. A directory is
used only once its ``complete`` marker exists. This module must never write outside that cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import log

from logferry.model import Fate, Level
from logferry.store import journal, records
from logferry.store.journal import Journal
from logferry.store.records import RecordStore
from logferry.store.runs import encode_rules, encode_runs

CACHE_DIR = Path("/tmp/logferry-bench-console")
CHUNK = 200_000  # rows per executemany; one transaction holds several
TXN_ROWS = 1_000_000
T0_NS = 1_780_000_000 * 10**9  # 2026-05-28: the records span the 30 days after
SPAN_NS = 30 * 86_400 * 10**9
JOURNAL_ROW_SEQS = 1000  # seqs per journal row, as batches of 1000 records would make

USERS = [f"user{i:03d}" for i in range(200)]
HOSTS = [f"host-{i:02d}" for i in range(40)]
PATHS = ("/api/orders", "/api/users", "/login", "/api/payments", "/static/app.js", "/health", "/api/search")
CODES = ("ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOSPC", "EACCES")
TABLES = ("orders", "users", "payments", "sessions", "audit")
HOLD_RULES = ("hold-cardholder", "hold-pii", "hold-review")
# (level, share, template): the shares make terms of very different frequency for the search queries
TEMPLATES: tuple[tuple[Level, float, str], ...] = (
    (Level.INFO, 0.50, "http: {m} {p} 200 {ms}ms user={u} req={r}"),
    (Level.DEBUG, 0.15, "cache: lookup key=session:{u} hit={hit} req={r}"),
    (Level.WARNING, 0.12, "db: slow query took {ms}ms table={t} req={r}"),
    (Level.ERROR, 0.08, "upstream: payment gateway failed: {c} req={r}"),
    (Level.INFO, 0.10, "auth: login user={u} from {h} ok req={r}"),
    (Level.CRITICAL, 0.05, "disk: volume {t} almost full on {h} code={c} req={r}"),
)


def schema_key(migrations: tuple[str, ...]) -> str:
    return hashlib.sha256("\x00".join(migrations).encode()).hexdigest()[:12]


def relay_dir(held: int) -> Path:
    return CACHE_DIR / f"relay-{held}-{schema_key(journal.MIGRATIONS)}"


def collector_dir(n: int) -> Path:
    return CACHE_DIR / f"collector-{n}-{schema_key(records.MIGRATIONS)}"


def _messages(rng: random.Random, n: int) -> Iterator[tuple[int, str]]:
    """(level, message) pairs, realistic enough for FTS: common words, per-user and rare per-request terms."""
    weights = [share for _, share, _ in TEMPLATES]
    picks = rng.choices(range(len(TEMPLATES)), weights=weights, k=n)
    for i, k in enumerate(picks):
        level, _, template = TEMPLATES[k]
        msg = template.format(
            m="GET" if i % 3 else "POST", p=PATHS[i % len(PATHS)], ms=rng.randint(2, 3000),
            u=USERS[rng.randrange(len(USERS))], r=f"r{rng.getrandbits(40):x}",
            hit=("true", "false")[i % 5 == 0], t=TABLES[i % len(TABLES)],
            c=CODES[rng.randrange(len(CODES))], h=HOSTS[i % len(HOSTS)],
        )  # fmt: skip
        yield int(level), msg


def _digest(msg: str) -> bytes:
    return hashlib.blake2b(msg.encode(), digest_size=16).digest()


def _bulk_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    # The fastest safe-enough mode for a throwaway build; WAL again at the end, as the daemons expect.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


def _finish(conn: sqlite3.Connection, done: Path) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("ANALYZE")  # what a long-running store gathers with PRAGMA optimize
    conn.close()
    (done / "complete").write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))


def _fresh(where: Path) -> None:
    """An empty directory for a new store; the same store of an older schema goes (gigabytes each)."""
    kind_and_size = where.name.rsplit("-", 1)[0]
    for stale in where.parent.glob(f"{kind_and_size}-*"):
        if stale.is_dir() and stale.name.rsplit("-", 1)[0] == kind_and_size:
            shutil.rmtree(stale, ignore_errors=True)
    where.mkdir(parents=True)


def build_relay(held: int, sources: int = 10) -> Path:
    """A relay data directory with ``held`` held records over ``sources`` sources; cached."""
    where = relay_dir(held)
    if (where / "complete").exists():
        log(f"relay store: cached {where}")
        return where
    t0 = time.monotonic()
    _fresh(where)
    path = where / "journal.db"

    async def create() -> None:
        await (await Journal.open(path)).close()

    asyncio.run(create())
    conn = _bulk_connection(path)
    rng = random.Random(1)
    per_source = held // sources
    held_ns = T0_NS + SPAN_NS
    counters: dict[tuple[str, str], int] = {}
    conn.execute("BEGIN")
    for s in range(sources):
        source = f"device-{s:02d}"
        rows: list[tuple[object, ...]] = []
        jrows: list[tuple[object, ...]] = []
        for seq, (level, msg) in enumerate(_messages(rng, per_source), start=1):
            if seq % JOURNAL_ROW_SEQS == 1:
                # Rows take the rules in turn, each source from another one: every rule has rows even in
                # a small store (one row per source).
                rule = HOLD_RULES[(seq // JOURNAL_ROW_SEQS + s) % len(HOLD_RULES)]
                last = min(seq + JOURNAL_ROW_SEQS - 1, per_source)
                jrows.append((source, seq, last, held_ns, encode_runs([[seq, last, int(Fate.HELD), 0]]),
                              encode_rules([rule])))  # fmt: skip
                counters[(source, rule)] = counters.get((source, rule), 0) + last - seq + 1
            ts = T0_NS + (seq * sources + s) * (SPAN_NS // held)
            text = f"billing: charge card=4111111111111111 amount={seq % 500}.00 {msg}"
            rows.append((source, seq, rule, ts, level, HOSTS[s % len(HOSTS)], "/var/log/app.log", text, None,
                         _digest(text), held_ns))  # fmt: skip
            if len(rows) >= CHUNK:
                conn.executemany("INSERT INTO held VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
                rows.clear()
        conn.executemany("INSERT INTO held VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        jsql = (
            "INSERT INTO journal(source, first_seq, last_seq, received_ns, fates, rules) VALUES (?,?,?,?,?,?)"
        )
        conn.executemany(jsql, jrows)
        conn.execute("INSERT INTO sources VALUES (?, ?, ?)", (source, per_source + 1, per_source))
    conn.executemany(
        "INSERT INTO counters VALUES (?, ?, ?, ?)",
        [(src, int(Fate.HELD), rule, n) for (src, rule), n in counters.items()],
    )
    conn.execute("COMMIT")
    _finish(conn, where)
    log(f"relay store: {held:,} held records built in {time.monotonic() - t0:.0f}s at {where}")
    return where


def build_collector(n: int, sources: int = 20) -> Path:
    """A collector data directory with ``n`` stored and indexed records over ``sources`` sources; cached."""
    where = collector_dir(n)
    if (where / "complete").exists():
        log(f"collector store: cached {where}")
        return where
    t0 = time.monotonic()
    _fresh(where)
    path = where / "records.db"

    async def create() -> None:
        await (await RecordStore.open(path)).close()

    asyncio.run(create())
    conn = _bulk_connection(path)
    rng = random.Random(2)
    seqs = [0] * sources
    step = SPAN_NS // n
    rows: list[tuple[object, ...]] = []
    sql = f"INSERT INTO records({records._COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
    conn.execute("BEGIN")
    for i, (level, msg) in enumerate(_messages(rng, n)):
        s = i % sources  # arrival order interleaves the sources, as one relay forwarding many devices does
        seqs[s] += 1
        ts = T0_NS + i * step
        rows.append((f"device-{s:02d}", seqs[s], ts, level, HOSTS[s % len(HOSTS)], "/var/log/app.log", msg,
                     None, _digest(msg), "relay-1", ts + 50_000_000))  # fmt: skip
        if len(rows) >= CHUNK:
            conn.executemany(sql, rows)
            rows.clear()
            if (i + 1) % TXN_ROWS == 0:
                conn.execute("COMMIT")
                log(f"collector store: {i + 1:,} rows ({time.monotonic() - t0:.0f}s)")
                conn.execute("BEGIN")
    conn.executemany(sql, rows)
    conn.executemany("INSERT INTO sources VALUES (?, ?, ?)",
                     [(f"device-{s:02d}", seqs[s], seqs[s]) for s in range(sources)])  # fmt: skip
    conn.execute("COMMIT")
    t1 = time.monotonic()
    (top,) = conn.execute("SELECT MAX(id) FROM records").fetchone()
    for lo in range(0, top, TXN_ROWS):
        # What the collector's background indexer does, in bigger steps.
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO records_fts(rowid, msg) SELECT id, msg FROM records WHERE id > ? AND id <= ?",
            (lo, lo + TXN_ROWS),
        )
        conn.execute("UPDATE meta SET fts_indexed_rowid = ?", (min(top, lo + TXN_ROWS),))
        conn.execute("COMMIT")
        log(f"collector store: {min(top, lo + TXN_ROWS):,} rows indexed ({time.monotonic() - t1:.0f}s)")
    conn.execute("INSERT OR IGNORE INTO recon_dirty SELECT DISTINCT source, 1, seq >> 10 FROM records")
    _finish(conn, where)
    log(f"collector store: {n:,} records built in {time.monotonic() - t0:.0f}s at {where}")
    return where
