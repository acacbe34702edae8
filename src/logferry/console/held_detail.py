"""What the Held page shows of one held item: its table row, and its detail — message, fields, the rule
that held it, and what was redacted.

Redaction and holding exclude each other at the relay: rules are ordered and the first match wins, so a
record a hold rule kept never met a redact rule, and the held store keeps it exactly as the device sent it
(secrets included). The detail says so, naming the rule, because releasing such a record forwards it
unredacted. (A redact rule's masks are counted per pattern in ``pipeline.rules.Decision.redactions``; the
masked text itself is never stored anywhere.)

This module only formats; it must never read or change a store.
"""

from __future__ import annotations

from typing import Any

from logferry.console.i18n import register, t
from logferry.console.layout import level_name, size, when
from logferry.store.journal_files import FileItem
from logferry.store.journal_held import HeldItem


def row(item: HeldItem) -> dict[str, Any]:
    """One table row; ``key`` (``source:seq``) identifies the item in selections and actions."""
    if isinstance(item, FileItem):
        return {
            "key": f"{item.source}:{item.seq}", "source": item.source, "seq": item.seq,
            "ts": when(item.mtime_ns), "level": "", "rule": item.rule, "host": "",
            "msg": t("file {path} ({size})", path=item.path, size=size(item.size)),
        }  # fmt: skip
    r = item.record
    return {
        "key": f"{item.source}:{r.seq}", "source": item.source, "seq": r.seq, "ts": when(r.ts_ns),
        "level": level_name(r.level), "rule": item.rule, "host": r.host, "msg": r.msg,
    }  # fmt: skip


def redaction_text(rule: str) -> str:
    return t(
        "nothing: rule {rule} held this item before any redact rule could run (the first matching rule "
        "wins), so it is kept as the device sent it; releasing it forwards it unredacted",
        rule=rule,
    )


def detail_lines(item: HeldItem) -> list[tuple[str, str]]:
    """What the detail dialog shows, as (label, value) pairs."""
    if isinstance(item, FileItem):
        return [
            (t("Item"), t("{key} (a whole file)", key=f"{item.source}:{item.seq}")), (t("Path"), item.path),
            (t("Size"), t("{n} bytes", n=f"{item.size:,}")), ("SHA-256", item.sha256.hex()),
            (t("Modified (UTC)"), when(item.mtime_ns)), (t("Held by rule"), item.rule),
            (t("Held at (UTC)"), when(item.received_ns)), (t("Redacted"), redaction_text(item.rule)),
        ]  # fmt: skip
    r = item.record
    fields = "\n".join(f"{k} = {v}" for k, v in sorted(r.fields.items())) or t("none")
    return [
        (t("Item"), f"{item.source}:{r.seq}"), (t("Time (UTC)"), when(r.ts_ns)),
        (t("Level"), level_name(r.level)), (t("Host"), r.host), (t("Path"), r.path),
        (t("Held by rule"), item.rule), (t("Held at (UTC)"), when(item.held_ns)),
        (t("Redacted"), redaction_text(item.rule)), (t("Fields"), fields), (t("Digest"), r.digest.hex()),
        (t("Message"), r.msg),
    ]  # fmt: skip


register(
    "ko",
    {
        "file {path} ({size})": "파일 {path} ({size})",
        "nothing: rule {rule} held this item before any redact rule could run (the first matching rule "
        "wins), so it is kept as the device sent it; releasing it forwards it unredacted":
            "없음: 규칙 {rule}이(가) 마스킹 규칙보다 먼저 이 항목을 보류했습니다 "
            "(처음 일치한 규칙이 적용됨). 장치가 보낸 그대로 보관되며, 해제하면 마스킹 없이 전달됩니다",
        "Item": "항목",
        "{key} (a whole file)": "{key} (파일 전체)",
        "Path": "경로",
        "Size": "크기",
        "{n} bytes": "{n} 바이트",
        "Modified (UTC)": "수정 시각 (UTC)",
        "Held by rule": "보류 규칙",
        "Held at (UTC)": "보류 시각 (UTC)",
        "Redacted": "마스킹",
        "none": "없음",
        "Time (UTC)": "시각 (UTC)",
        "Level": "수준",
        "Host": "호스트",
        "Fields": "필드",
        "Digest": "다이제스트",
        "Message": "메시지",
    },
)  # fmt: skip
