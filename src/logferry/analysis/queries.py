"""Reads over ``analysis.db`` for the Analysis page and ``/api/analysis/…``: templates with counts, share
and trend, templates new since a time, error rates per source over time, alerts, and the miner's progress.

Template counts in a time range come from the hourly buckets (a range is widened to whole hours); without
a range they are the all-time counts. Every read is bounded: pages of templates and alerts, at most
``MAX_POINTS`` points per error-rate series (windows are summed into wider steps beyond that). This module
reads only; it must never write.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from logferry.analysis.alerts import AlertKind
from logferry.analysis.settings import TEMPLATE_BUCKET_S

NS = 1_000_000_000
TREND_HOURS = 24
MAX_POINTS = 120


@dataclass(frozen=True, slots=True)
class TemplateRow:
    id: int
    template: str
    count: int  # in the range asked (all time without one)
    share: float  # of every record mined in that range
    first_ns: int  # first and last record time, all time
    last_ns: int
    trend: list[int] = field(default_factory=list)  # records per hour, the TREND_HOURS up to the range's end


@dataclass(frozen=True, slots=True)
class TemplatePage:
    items: list[TemplateRow]
    total: int  # templates with records in the range
    records: int  # records in the range (the denominator of share)
    trend_start_s: int  # the first trend hour


@dataclass(frozen=True, slots=True)
class RatePoint:
    start_s: int
    total: int
    errors: int


@dataclass(frozen=True, slots=True)
class RateSeries:
    source: str
    step_s: int
    points: list[RatePoint]


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    at_ns: int
    kind: AlertKind
    source: str
    template: int
    window_s: int
    value: float
    baseline: float
    detail: str


@dataclass(frozen=True, slots=True)
class AnalysisStatus:
    cursor: int
    mined: int
    templates: int
    alerts: dict[str, int]  # by kind


def _hours(since_ns: int | None, until_ns: int | None) -> tuple[int, int]:
    lo = -(2**62) if since_ns is None else since_ns // NS // TEMPLATE_BUCKET_S * TEMPLATE_BUCKET_S
    hi = 2**62 if until_ns is None else until_ns // NS
    return lo, hi


def templates(conn: sqlite3.Connection, since_ns: int | None, until_ns: int | None, text: str,
              limit: int, offset: int) -> TemplatePage:  # fmt: skip
    """Templates by records in the range, most first."""
    like, params_text = ("", []) if not text else (" AND t.template LIKE ? ESCAPE '\\'", [_like(text)])
    if since_ns is None and until_ns is None:
        base = f"SELECT t.id, t.count AS n FROM templates t WHERE 1{like}"
        params: list[object] = list(params_text)
        (records,) = conn.execute("SELECT mined FROM state").fetchone()
    else:
        lo, hi = _hours(since_ns, until_ns)
        base = (
            "SELECT t.id, SUM(h.n) AS n FROM template_hours h JOIN templates t ON t.id = h.template "
            f"WHERE h.hour >= ? AND h.hour < ?{like} GROUP BY t.id"
        )
        params = [lo, hi, *params_text]
        (records,) = conn.execute(
            "SELECT COALESCE(SUM(n), 0) FROM template_hours WHERE hour >= ? AND hour < ?", (lo, hi)
        ).fetchone()
    (total,) = conn.execute(f"SELECT COUNT(*) FROM ({base})", params).fetchone()
    rows = conn.execute(
        f"SELECT b.id, b.n, t.template, t.first_ns, t.last_ns FROM ({base}) b "
        "JOIN templates t ON t.id = b.id "
        "ORDER BY b.n DESC, b.id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    end = _trend_end(conn, until_ns)
    start = end - TREND_HOURS * TEMPLATE_BUCKET_S
    trends = _trends(conn, [int(r[0]) for r in rows], start, end)
    items = [
        TemplateRow(int(tid), str(text_), int(n), int(n) / records if records else 0.0, int(first), int(last),
                    trends.get(int(tid), [0] * TREND_HOURS))
        for tid, n, text_, first, last in rows
    ]  # fmt: skip
    return TemplatePage(items, int(total), int(records), start)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _trend_end(conn: sqlite3.Connection, until_ns: int | None) -> int:
    """The end (exclusive, epoch s) of the trend: the range's end, or the hour after the newest count."""
    if until_ns is not None:
        return -(-until_ns // NS // TEMPLATE_BUCKET_S) * TEMPLATE_BUCKET_S
    (newest,) = conn.execute("SELECT MAX(hour) FROM template_hours").fetchone()
    return (0 if newest is None else int(newest)) + TEMPLATE_BUCKET_S


def _trends(conn: sqlite3.Connection, ids: list[int], start: int, end: int) -> dict[int, list[int]]:
    if not ids:
        return {}
    out = {tid: [0] * TREND_HOURS for tid in ids}
    marks = ",".join("?" * len(ids))
    for tid, hour, n in conn.execute(
        f"SELECT template, hour, n FROM template_hours WHERE template IN ({marks}) "
        "AND hour >= ? AND hour < ?",
        [*ids, start, end],
    ):
        out[int(tid)][(int(hour) - start) // TEMPLATE_BUCKET_S] = int(n)
    return out


def new_templates(conn: sqlite3.Connection, since_ns: int, limit: int) -> list[TemplateRow]:
    """Templates whose first record is at or after ``since_ns``, newest first; count, share and trend as
    :func:`templates` gives them for the range from ``since_ns`` on (all of such a template's records are
    in it)."""
    rows = conn.execute(
        "SELECT id, template, count, first_ns, last_ns FROM templates WHERE first_ns >= ? "
        "ORDER BY first_ns DESC, id DESC LIMIT ?",
        (since_ns, limit),
    ).fetchall()
    lo, hi = _hours(since_ns, None)
    (records,) = conn.execute(
        "SELECT COALESCE(SUM(n), 0) FROM template_hours WHERE hour >= ? AND hour < ?", (lo, hi)
    ).fetchone()
    end = _trend_end(conn, None)
    trends = _trends(conn, [int(r[0]) for r in rows], end - TREND_HOURS * TEMPLATE_BUCKET_S, end)
    return [
        TemplateRow(int(i), str(t), int(n), int(n) / records if records else 0.0, int(f), int(la),
                    trends.get(int(i), [0] * TREND_HOURS))
        for i, t, n, f, la in rows
    ]  # fmt: skip


def newest_record_ns(conn: sqlite3.Connection) -> int | None:
    """The newest record time mined (the page's "now" for data that is not live)."""
    (newest,) = conn.execute("SELECT MAX(last_ns) FROM templates").fetchone()
    return None if newest is None else int(newest)


def error_rates(conn: sqlite3.Connection, since_ns: int, until_ns: int, window_s: int,
                source: str | None = None, max_sources: int = 20) -> list[RateSeries]:  # fmt: skip
    """Per source (the busiest ``max_sources``): records and errors per step over [since, until)."""
    lo, hi = since_ns // NS, -(-until_ns // NS)
    step = window_s
    while (hi - lo) / step > MAX_POINTS:
        step *= 2
    where = "start >= ? AND start < ?" + (" AND source = ?" if source else "")
    params: list[object] = [lo, hi] + ([source] if source else [])
    busiest = [
        str(s)
        for (s,) in conn.execute(
            f"SELECT source FROM source_windows WHERE {where} "
            "GROUP BY source ORDER BY SUM(total) DESC LIMIT ?",
            [*params, max_sources],
        )
    ]
    out: list[RateSeries] = []
    for name in sorted(busiest):
        points = [
            RatePoint(int(b) * step + lo, int(n), int(e))
            for b, n, e in conn.execute(
                "SELECT (start - ?) / ?, SUM(total), SUM(errors) FROM source_windows "
                "WHERE source = ? AND start >= ? AND start < ? GROUP BY 1 ORDER BY 1",
                (lo, step, name, lo, hi),
            )
        ]
        out.append(RateSeries(name, step, points))
    return out


def alerts(conn: sqlite3.Connection, kind: AlertKind | None, source: str | None, limit: int,
           offset: int) -> tuple[list[AlertRow], int]:  # fmt: skip
    """Alerts newest first, and how many match."""
    clauses, params = [], []
    if kind is not None:
        clauses.append("kind = ?")
        params.append(kind.value)
    if source:
        clauses.append("source = ?")
        params.append(source)
    where = " AND ".join(clauses) or "1"
    (total,) = conn.execute(f"SELECT COUNT(*) FROM alerts WHERE {where}", params).fetchone()
    rows = conn.execute(
        "SELECT id, at_ns, kind, source, template, win_s, value, baseline, detail FROM alerts "
        f"WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [
        AlertRow(int(i), int(at), AlertKind(k), str(s), int(t), int(w), float(v), float(b), str(d))
        for i, at, k, s, t, w, v, b, d in rows
    ], int(total)


def status(conn: sqlite3.Connection) -> AnalysisStatus:
    cursor, mined = conn.execute("SELECT cursor, mined FROM state").fetchone()
    (n,) = conn.execute("SELECT COUNT(*) FROM templates").fetchone()
    by_kind = {k.value: 0 for k in AlertKind}
    for kind, count in conn.execute("SELECT kind, COUNT(*) FROM alerts GROUP BY kind"):
        by_kind[str(kind)] = int(count)
    return AnalysisStatus(int(cursor), int(mined), int(n), by_kind)
