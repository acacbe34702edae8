"""The operator commands of ``logferry``: ``status``, ``held list|show|release|delete``,
``missing list|resend|ack|ask``, ``reconcile``, ``audit``.

They talk to a running role's REST API (docs/API.md) — the relay's by default (http://127.0.0.1:8170), the
collector's with ``status --collector`` or ``--api`` — and print human tables, or the API's JSON with
``--json`` for scripts. ``held release|delete`` and ``missing resend|ack`` show how many items they will
touch and ask first, unless ``--yes``; without a terminal to ask on they refuse rather than guess. Exit
status: 0 ok, 1 the API refused or could not be reached, 2 bad usage.

This module must never reach into a store: everything goes through the API, so the CLI and the console can
never disagree and every action is audited by the role.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # httpx is imported only when an admin command runs: roles start without it
    from logferry.api.client import ApiClient

ADMIN_COMMANDS = frozenset({"status", "held", "missing", "reconcile", "audit"})
RELAY_API = "http://127.0.0.1:8170"
COLLECTOR_API = "http://127.0.0.1:8171"
RECONCILE_TIMEOUT_S = 600.0  # a reconciliation that finds much damage asks many questions: wait for it
# store.missing.MissingState, not imported:
MISSING_STATES = ("open", "resent", "acknowledged", "resolved", "recovered")
MISSING_KINDS = (
    "missing_at_collector",
    "digest_mismatch",
    "lost",
    "missing_at_device",
)  # the CLI stays light
EXIT_API = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """The command line is wrong (exit status 2)."""


def parse_key(text: str) -> tuple[str, int]:
    """``SOURCE:SEQ`` (the source may itself contain colons: the last one splits) → (source, seq)."""
    source, sep, seq = text.rpartition(":")
    if not sep or not source or not seq.isdigit() or int(seq) < 1:
        raise UsageError(f"expected SOURCE:SEQ with SEQ ≥ 1, got {text!r}")
    return source, int(seq)


def entry_id(text: str) -> int:
    """A missing-list id as listed by ``logferry missing list``: a positive integer."""
    if not text.isdigit() or not 1 <= int(text) <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"expected an entry id (a positive integer), got {text!r}")
    return int(text)


def _common(p: argparse.ArgumentParser, default_api: str | None = RELAY_API) -> None:
    p.add_argument(
        "--api",
        default=default_api,
        metavar="URL",
        help=f"the role's API: http://HOST:PORT, or HOST:PORT as api_listen gives it (default {default_api})",
    )
    p.add_argument("--token", default=os.environ.get("LOGFERRY_TOKEN", ""),
                   help="bearer token (api_token of the role; default $LOGFERRY_TOKEN)")  # fmt: skip
    p.add_argument("--operator", default=os.environ.get("USER", ""),
                   help="your name for the audit log (default $USER)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the API's JSON (for scripts)")


def _filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters")
    g.add_argument("--rule", help="rule that held the items")
    g.add_argument("--source", help="source (device) name")
    g.add_argument("--level", help="this level or more severe (e.g. warning)")
    g.add_argument("--q", help="substring of the message (case-insensitive)")
    g.add_argument("--since", help="record time ≥ this (ISO 8601 or epoch seconds)")
    g.add_argument("--until", help="record time < this (ISO 8601 or epoch seconds)")


def _paging(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=100, help="items per page (at most 1000)")
    p.add_argument("--offset", type=int, default=0, help="items to skip")


def add_admin_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser("status", help="show a running relay's (or --collector's) status")
    _common(status, default_api=None)
    status.add_argument("--collector", action="store_true", help=f"the collector's API ({COLLECTOR_API})")
    held = sub.add_parser("held", help="review, release or delete what the relay holds")
    held_sub = held.add_subparsers(dest="held_command", required=True)
    listing = held_sub.add_parser("list", help="list held items (filters, paging)")
    _common(listing)
    _filters(listing)
    _paging(listing)
    listing.add_argument("--kind", choices=("record", "file"), help="only held records, or only held files")
    show = held_sub.add_parser("show", help="show one held item")
    _common(show)
    show.add_argument("key", metavar="SOURCE:SEQ")
    for name, verb in (("release", "send them on to the collector"), ("delete", "delete them for good")):
        act = held_sub.add_parser(name, help=f"{name} held items: {verb} (audited)")
        _common(act)
        act.add_argument("keys", nargs="*", metavar="SOURCE:SEQ", help="the items (or --all-matching)")
        act.add_argument("--all-matching", action="store_true", help="every held item matching the filters")
        act.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
        _filters(act)
    _add_missing_parsers(sub)
    audit = sub.add_parser("audit", help="show the audit log of operator actions")
    _common(audit)
    audit.add_argument("--q", help="substring of operator, action or target")
    audit.add_argument("--action", help="an action (held.release) or a prefix ending in '.' (held.)")
    audit.add_argument("--by", help="only this operator's actions")
    audit.add_argument("--since", help="at or after: ISO 8601 or epoch seconds")
    audit.add_argument("--until", help="before: ISO 8601 or epoch seconds")
    _paging(audit)


def _add_missing_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    missing = sub.add_parser(
        "missing", help="review, resend or acknowledge what reconciliation found missing"
    )
    missing_sub = missing.add_subparsers(dest="missing_command", required=True)
    listing = missing_sub.add_parser("list", help="list missing-list entries (filters, paging)")
    _common(listing)
    listing.add_argument("--state", choices=MISSING_STATES, help="only entries in this state")
    listing.add_argument("--kind", choices=MISSING_KINDS, help="only entries of this kind")
    listing.add_argument("--source", help="source (device) name")
    _paging(listing)
    for name, verb in (
        ("resend", "send the relay's copy to the collector again"),
        ("ack", "accept them as they are (e.g. lost for good); never reported again"),
    ):
        act = missing_sub.add_parser(name, help=f"{name} missing entries: {verb} (audited)")
        _common(act)
        act.add_argument("ids", nargs="+", type=entry_id, metavar="ID", help="entry ids from `missing list`")
        act.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    ask = missing_sub.add_parser(
        "ask", help="ask a connected agent to resend seqs it never delivered: a ResendRequest now (audited)"
    )
    _common(ask)
    ask.add_argument("ids", nargs="*", type=entry_id, metavar="ID", help="missing_at_device entry ids")
    ask.add_argument("--source", help="ask this agent for every hole in its seqs")
    reconcile = sub.add_parser("reconcile", help="reconcile the relay with the collector now (audited)")
    _common(reconcile)
    reconcile.add_argument("--last", action="store_true", help="show the last run instead of running one")


def _filter_of(args: argparse.Namespace) -> dict[str, str]:
    names = ("rule", "source", "level", "q", "since", "until")
    return {n: getattr(args, n) for n in names if getattr(args, n, None)}


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [headers, *rows]
    ]
    return "\n".join(lines)


def _print(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else human)


def _status(api: ApiClient, args: argparse.Namespace) -> int:
    s = api.get("/api/status")
    if s.get("role") == "collector":
        lines = [
            f"collector {s['name']} (logferry {s['version']}), up {s['uptime_s']:.0f}s",
            f"  stored {s['records']:,}  conflicts {s['conflicts']:,}  search pending {s['fts_pending']:,}"
            f"  inbox {s['inbox']['records']:,} records",
            f"  relays connected: {', '.join(r['source'] for r in s['relays_connected']) or 'none'}",
        ]
        lines += [
            f"  {src['source']}: {src['count']:,} records, max seq {src['max_seq']}" for src in s["sources"]
        ]
    else:
        link = s["collector"]
        state = "connected" if link["connected"] else f"DOWN ({link['last_error'] or 'connecting'})"
        totals = "  ".join(f"{k} {v:,}" for k, v in s["fate_totals"].items())
        lines = [f"relay {s['name']} (logferry {s['version']}), up {s['uptime_s']:.0f}s",
                 f"  collector {link['address']}: {state}",
                 f"  devices connected {s['devices_connected']}  held {s['held']:,}"
                 f" ({s.get('held_records', s['held']):,} records, {s.get('held_files', 0):,} files)"
                 f"  outbox {s['outbox']['records']:,} records in {s['outbox']['batches']:,} batches",
                 f"  {totals}"]  # fmt: skip
    _print(args, s, "\n".join(lines))
    return 0


def _held_rows(items: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            f"{h['source']}:{h['seq']}",
            h["ts"][:19],
            h["level"] or "file",
            h["rule"],
            (h["msg"] or h["path"])[:80],
        ]
        for h in items
    ]


def _held(api: ApiClient, args: argparse.Namespace) -> int:
    cmd = args.held_command
    if cmd == "list":
        kind = {"kind": args.kind} if args.kind else {}
        page = api.get("/api/held", {**_filter_of(args), **kind, "limit": args.limit, "offset": args.offset})
        shown = f"{args.offset + 1}-{args.offset + len(page['items'])}" if page["items"] else "none"
        human = _table(_held_rows(page["items"]), ["ID", "TIME", "LEVEL", "RULE", "MESSAGE"])
        _print(args, page, f"{human}\n{shown} of {page['total']} held")
        return 0
    if cmd == "show":
        source, seq = parse_key(args.key)
        item = api.get(f"/api/held/{source}/{seq}")
        human = "\n".join(f"{k:>8}: {v}" for k, v in item.items())
        _print(args, item, human)
        return 0
    return _settle(api, args)


def _settle(api: ApiClient, args: argparse.Namespace) -> int:
    action = args.held_command
    filters = _filter_of(args)
    if args.keys and (args.all_matching or filters):
        raise UsageError("give SOURCE:SEQ keys, or --all-matching with filters, not both")
    if not args.keys and not args.all_matching:
        raise UsageError(f"what to {action}? give SOURCE:SEQ keys, or --all-matching (with filters)")
    if args.keys:
        keys = [parse_key(k) for k in args.keys]
        body: dict[str, Any] = {"keys": [{"source": s, "seq": q} for s, q in keys]}
        what = f"{len(keys)} held item(s)"
    else:
        body = {"filter": filters}
        total = api.get("/api/held", {**filters, "limit": 1})["total"]
        if total == 0:
            _print(args, {"action": f"held.{action}", "count": 0}, "no held item matches; nothing to do")
            return 0
        what = (
            f"{total} held item(s) matching {json.dumps(filters) if filters else 'anything (ALL held items)'}"
        )
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"{action} {what}: no terminal to confirm on; add --yes")
        answer = input(f"{action} {what}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing done")
            return 0
    result = api.post(f"/api/held/{action}", body)
    past = "released" if action == "release" else "deleted"
    _print(args, result, f"{past} {result['count']} item(s) (audit #{result['audit_id']})")
    return 0


def _confirm(args: argparse.Namespace, question: str) -> bool:
    """True when the operator agreed (or gave --yes); raises UsageError without a terminal to ask on."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{question}: no terminal to confirm on; add --yes")
    return input(f"{question}? [y/N] ").strip().lower() in ("y", "yes")


def _missing(api: ApiClient, args: argparse.Namespace) -> int:
    cmd = args.missing_command
    if cmd == "list":
        params = {"state": args.state, "kind": args.kind, "source": args.source, "limit": args.limit,
                  "offset": args.offset}  # fmt: skip
        page = api.get("/api/missing", params)
        rows = [[str(e["id"]), e["source"], f"{e['first_seq']}-{e['last_seq']}", str(e["count"]),
                 e["kind"], e["state"], e["found_at"][:19], e["acknowledged_by"] or ""]
                for e in page["items"]]  # fmt: skip
        human = _table(rows, ["ID", "SOURCE", "SEQS", "COUNT", "KIND", "STATE", "FOUND (UTC)", "ACK BY"])
        shown = f"{args.offset + 1}-{args.offset + len(page['items'])}" if page["items"] else "none"
        _print(args, page, f"{human}\n{shown} of {page['total']} entries")
        return 0
    if cmd == "ask":
        return _ask(api, args)
    ids = list(dict.fromkeys(args.ids))
    shown = ", ".join(map(str, ids[:20])) + (" …" if len(ids) > 20 else "")
    verb = "resend" if cmd == "resend" else "acknowledge"
    if not _confirm(args, f"{verb} {len(ids)} missing entr{'y' if len(ids) == 1 else 'ies'} ({shown})"):
        print("nothing done")
        return 0
    result = api.post(f"/api/missing/{cmd}", {"ids": ids})
    if cmd == "resend":
        human = (f"resent {result['records']:,} record(s) of {result['entries']} entr(ies) "
                 f"(audit #{result['audit_id']})")  # fmt: skip
        if result["skipped"]:
            human += (f"\nnot resent: {', '.join(map(str, result['skipped']))} (lost, missing at the "
                      "device, already settled, or no longer kept by the relay; see `logferry missing list`)"
                      )  # fmt: skip
    else:
        human = f"acknowledged {result['acknowledged']} of {len(ids)} entr(ies) (audit #{result['audit_id']})"
        if result["acknowledged"] < len(ids):
            human += "\nthe others were already acknowledged or resolved"
    _print(args, result, human)
    return 0


def _ask(api: ApiClient, args: argparse.Namespace) -> int:
    """``missing ask [ID…] [--source S]``: no confirmation — asking moves nothing, the agent just resends."""
    if not args.ids and not args.source:
        raise UsageError("name missing_at_device entry ids, or --source for every hole of that agent")
    body: dict[str, Any] = {"ids": list(dict.fromkeys(args.ids))}
    if args.source:
        body["source"] = args.source
    result = api.post("/api/missing/ask", body)
    asked = "; ".join(f"{s}: " + ", ".join(f"{lo}-{hi}" for lo, hi in r) for s, r in result["ranges"].items())
    _print(args, result, f"asked for {result['seqs']:,} seq(s) — {asked} (audit #{result['audit_id']})")
    return 0


def _report_lines(r: dict[str, Any]) -> list[str]:
    cost = (f"{r['sources']} source(s), {r['questions']} question(s), {r['bytes_sent']:,}+"
            f"{r['bytes_received']:,} bytes in {r['duration_s']:.3f} s")  # fmt: skip
    if r["clean"]:
        return [f"in sync: {cost} (started {r['started_at'][:19]} UTC)"]
    return [
        f"DIFFERENCES: {r['new_entries']} new missing entr(ies), {r['resent_entries']} resent at once; "
        f"{cost}",
        "  review them with `logferry missing list --state open`, then `logferry missing resend ID…` or "
        "`logferry missing ack ID…`",
    ]


def _reconcile(api: ApiClient, args: argparse.Namespace) -> int:
    if args.last:
        state = api.get("/api/reconcile")
        last = state["last_report"]
        lines = _report_lines(last) if last else ["no reconciliation has run since the relay started"]
        if state["last_error"]:
            lines.append(f"last scheduled run failed: {state['last_error']}")
        every = f"every {state['interval_s']:g} s" if state["interval_s"] > 0 else "on demand only"
        link = "connected" if state["collector_connected"] else "NOT connected"
        lines.append(f"schedule: {every}; resend_policy {state['resend_policy']}; collector {link}")
        _print(args, state, "\n".join(lines))
        return 0
    report = api.post("/api/reconcile", {})
    _print(args, report, "\n".join([*_report_lines(report), f"(audit #{report['audit_id']})"]))
    return 0


def _audit(api: ApiClient, args: argparse.Namespace) -> int:
    params = {"q": args.q, "action": args.action, "operator": args.by, "since": args.since,
              "until": args.until, "limit": args.limit, "offset": args.offset}  # fmt: skip
    page = api.get("/api/audit", params)
    rows = [[str(e["id"]), e["at"][:19], e["operator"], e["action"], e["state"], str(e["count"] or 0),
             json.dumps(e["target"], ensure_ascii=False)[:60]] for e in page["items"]]  # fmt: skip
    human = _table(rows, ["ID", "AT (UTC)", "OPERATOR", "ACTION", "STATE", "COUNT", "TARGET"])
    _print(args, page, f"{human}\n{len(page['items'])} of {page['total']} entries")
    return 0


def run_admin(args: argparse.Namespace) -> int:
    from logferry.api.client import ApiCallError, ApiClient

    url = args.api or (COLLECTOR_API if getattr(args, "collector", False) else RELAY_API)
    handlers = {
        "status": _status,
        "held": _held,
        "missing": _missing,
        "reconcile": _reconcile,
        "audit": _audit,
    }
    timeout_s = RECONCILE_TIMEOUT_S if args.command == "reconcile" else 30.0
    try:
        with ApiClient(url, token=args.token, operator=args.operator, timeout_s=timeout_s) as api:
            return handlers[args.command](api, args)
    except UsageError as exc:
        print(f"logferry {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiCallError as exc:
        print(f"logferry {args.command}: {exc}", file=sys.stderr)
        return EXIT_API
