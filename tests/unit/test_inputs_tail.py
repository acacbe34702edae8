"""The tail input against real files in tmp_path, a real event loop and a fake spool."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import pytest

from logferry.inputs import TailCheckpoint, TailConfig, TailInput
from logferry.inputs.records import encoding_problem
from logferry.inputs.tail_config import ReadFrom, describe_options
from logferry.model import Entry, Level

FAST: dict[str, Any] = {
    "poll_interval_s": 0.01,
    "glob_rescan_interval_s": 0.02,
    "rotate_wait_s": 0.1,
    "max_batch_wait_s": 0.0,
}


class FakeSpool:
    """Commits entries and checkpoints together, like the agent's spool; ``gate`` can hold emit back."""

    def __init__(self, checkpoints: Mapping[str, bytes] | None = None) -> None:
        self.entries: list[Entry] = []
        self.checkpoints: dict[str, bytes] = dict(checkpoints or {})
        self.batch_sizes: list[int] = []
        self.waiting = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def emit(self, entries: list[Entry], updates: dict[str, bytes]) -> None:
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        # Nothing above is committed if the input is cancelled while waiting: like a rolled-back transaction.
        self.entries.extend(entries)
        self.batch_sizes.append(len(entries))
        for key, value in updates.items():
            if value:
                self.checkpoints[key] = value
            else:
                self.checkpoints.pop(key, None)

    def msgs(self) -> list[str]:
        return [e.msg for e in self.entries]


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(ti: TailInput, spool: FakeSpool) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(ti.run(spool.emit))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def tail(paths: list[str], checkpoints: Mapping[str, bytes] | None = None, **options: Any) -> TailInput:
    config = msgspec.convert({"paths": paths, **FAST, **options}, TailConfig)
    return TailInput(config, checkpoints or {}, "host-1", time.time_ns)


def append(path: Path, text: str | bytes) -> None:
    with path.open("ab") as f:
        f.write(text.encode() if isinstance(text, str) else text)


def lines(prefix: str, n: int, start: int = 0) -> list[str]:
    # Long enough that files pass fingerprint_bytes quickly, as real logs do.
    return [f"{prefix} line {i:05d} " + "." * 40 for i in range(start, start + n)]


def text_of(msgs: list[str]) -> str:
    return "".join(m + "\n" for m in msgs)


async def test_follows_appended_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, "2024 ERROR first\r\nsecond\n")
    spool = FakeSpool()
    ti = tail([str(tmp_path / "*.log")])
    async with running(ti, spool):
        await until(lambda: len(spool.entries) == 2, "the first two lines")
        append(log, "third\n\nfourth\n")
        await until(lambda: len(spool.entries) == 4, "the appended lines")
    assert spool.msgs() == ["2024 ERROR first", "second", "third", "fourth"]
    first = spool.entries[0]
    assert (first.host, first.path, first.level, first.fields) == (
        "host-1",
        str(log),
        Level.ERROR,
        {"input": "tail"},
    )
    assert spool.entries[1].level == Level.INFO
    assert abs(first.ts_ns - time.time_ns()) < 10 * 10**9
    cp = msgspec.msgpack.decode(spool.checkpoints[next(iter(spool.checkpoints))], type=TailCheckpoint)
    assert cp.offset == log.stat().st_size


async def test_partial_trailing_line_is_kept_until_complete(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, "first\npart")
    spool = FakeSpool()
    ti = tail([str(log)])
    async with running(ti, spool):
        await until(lambda: len(spool.entries) == 1, "the complete line")
        await asyncio.sleep(0.05)  # several polls: the partial line must not be emitted
        assert spool.msgs() == ["first"]
        append(log, "ial\n")
        await until(lambda: len(spool.entries) == 2, "the completed line")
    assert spool.msgs() == ["first", "partial"]


async def test_many_files_via_glob_with_exclude(tmp_path: Path) -> None:
    expected = []
    for i in range(5):
        sub = tmp_path / f"svc{i}"
        sub.mkdir()
        msgs = lines(f"svc{i}", 20)
        (sub / "app.log").write_text(text_of(msgs))
        (sub / "old.log.gz").write_bytes(b"\x1f\x8b binary\n")
        expected += msgs
    spool = FakeSpool()
    ti = tail([str(tmp_path / "**" / "*.log*")], exclude=["*.gz"], max_batch_records=16)
    async with running(ti, spool):
        await until(lambda: len(spool.entries) == len(expected), "every file's lines")
    assert sorted(spool.msgs()) == sorted(expected)
    assert max(spool.batch_sizes) <= 16
    assert len(spool.checkpoints) == 5


async def test_new_file_is_discovered_and_read_from_its_beginning(tmp_path: Path) -> None:
    a = tmp_path / "a.log"
    a.write_text("old line, skipped by read_from=end\n")
    spool = FakeSpool()
    ti = tail([str(tmp_path / "*.log")], read_from="end")
    async with running(ti, spool):
        await until(lambda: len(ti.open_files) == 1, "a.log to be opened")
        append(a, "new in a\n")
        await until(lambda: len(spool.entries) == 1, "the line appended to a.log")
        (tmp_path / "b.log").write_text("b1\nb2\n")
        await until(lambda: len(spool.entries) == 3, "b.log's lines")
    assert spool.msgs() == ["new in a", "b1", "b2"]


async def test_rename_rotation_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    spool = FakeSpool()
    ti = tail([str(log)])
    expected: list[str] = []
    writer = log.open("a", buffering=1)
    async with running(ti, spool):
        for rotation in range(3):
            for step in range(5):
                batch = lines(f"r{rotation}s{step}", 30)
                writer.write(text_of(batch))
                expected += batch
                await asyncio.sleep(0.003)
            rotated = tmp_path / f"app.log.{rotation}"
            log.rename(rotated)
            # The writer has not reopened yet: these lines land in the renamed file.
            late = lines(f"r{rotation}-late", 10)
            writer.write(text_of(late) + f"late partial {rotation}")
            expected += [*late, f"late partial {rotation}"]
            writer.close()
            writer = log.open("a", buffering=1)
            fresh = lines(f"r{rotation}-fresh", 10)
            writer.write(text_of(fresh))
            expected += fresh
        writer.close()
        await until(lambda: len(spool.entries) >= len(expected), "every line of every generation", 10)
        await until(lambda: len(spool.checkpoints) == 1, "rotated files to be forgotten")
    assert len(spool.msgs()) == len(set(spool.msgs()))
    assert sorted(spool.msgs()) == sorted(expected)
    assert ti.stats.rotations == 3
    assert ti.open_files == []  # closed on cancellation


async def test_copy_truncate_rotation(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    before = lines("before", 50)
    log.write_text(text_of(before))
    spool = FakeSpool()
    ti = tail([str(log)])
    async with running(ti, spool):
        await until(lambda: len(spool.entries) == 50, "the lines before rotation")
        (tmp_path / "app.log.1").write_bytes(log.read_bytes())  # what logrotate's copytruncate does
        with log.open("r+") as f:
            f.truncate(0)
        after = lines("after", 5)
        append(log, text_of(after))
        await until(lambda: len(spool.entries) == 55, "the lines after truncation")
    assert spool.msgs() == before + after
    assert ti.stats.truncations == 1


async def test_truncation_refilled_past_offset_is_seen_by_fingerprint(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    first = lines("first", 10)
    log.write_text(text_of(first))
    spool = FakeSpool()
    ti = tail([str(log)])
    async with running(ti, spool):
        await until(lambda: len(spool.entries) == 10, "the first lines")
        spool.gate.clear()
        append(log, "held back\n")
        await until(lambda: spool.waiting == 1, "emit to block")
        # While the input waits, the file is truncated and refilled beyond the old offset: the size alone
        # cannot reveal it, the fingerprint of the head can.
        refill = lines("refill", 40)
        log.write_text(text_of(refill))
        spool.gate.set()
        await until(lambda: len(spool.entries) == 51, "the refilled lines")
    assert spool.msgs() == [*first, "held back", *refill]
    assert ti.stats.truncations == 1


async def test_restart_from_checkpoints_is_exactly_once(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    expected: list[str] = []
    spool = FakeSpool()
    for generation in range(4):
        ti = tail([str(log)], checkpoints=spool.checkpoints, max_batch_records=25)
        async with running(ti, spool):
            batch = lines(f"g{generation}", 60)
            expected += batch
            append(log, text_of(batch[:30]) + batch[30][:7])  # ends in a partial line
            want = len(expected) - 30
            await until(lambda: len(spool.entries) >= want, "the complete lines")  # noqa: B023
            append(log, batch[30][7:] + "\n" + text_of(batch[31:]))
            if generation % 2:
                # Kill while a batch is in flight: it was never committed, so it must be read again.
                spool.gate.clear()
                await until(lambda: spool.waiting == 1, "a batch in flight")
        spool.gate.set()
    ti = tail([str(log)], checkpoints=spool.checkpoints)
    async with running(ti, spool):
        await until(lambda: len(spool.entries) >= len(expected), "everything")
        await asyncio.sleep(0.05)  # a few more polls: nothing may come twice
    assert spool.msgs() == expected


async def test_inode_reused_by_another_file_is_read_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(text_of(lines("old", 20)))
    spool = FakeSpool()
    ti = tail([str(log)])
    async with running(ti, spool):
        await until(lambda: len(spool.entries) == 20, "the old file")
    inode = log.stat().st_ino
    # Same inode, new content longer than the checkpoint offset: only the fingerprint can tell.
    new = lines("new", 30)
    with log.open("r+") as f:
        f.write(text_of(new))
    assert log.stat().st_ino == inode
    spool2 = FakeSpool(spool.checkpoints)
    ti2 = tail([str(log)], checkpoints=spool.checkpoints)
    async with running(ti2, spool2):
        await until(lambda: len(spool2.entries) == 30, "the new file's lines")
    assert spool2.msgs() == new
    assert ti2.stats.replaced == 1


async def test_deleted_and_recreated_file_is_new(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(text_of(lines("old", 20)))
    spool = FakeSpool()
    async with running(tail([str(log)]), spool):
        await until(lambda: len(spool.entries) == 20, "the old file")
    log.unlink()
    new = lines("new", 30)
    log.write_text(text_of(new))  # may or may not get the old inode back
    async with running(tail([str(log)], checkpoints=spool.checkpoints), spool):
        await until(lambda: len(spool.entries) == 50, "the new file")
    assert spool.msgs()[20:] == new


async def test_deleted_file_is_drained_then_forgotten(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("one\n")
    spool = FakeSpool()
    ti = tail([str(log)])
    async with running(ti, spool):
        await until(lambda: len(spool.checkpoints) == 1, "the first checkpoint")
        with log.open("a") as f:
            log.unlink()
            f.write("two\nthree")  # written after the unlink, through a still-open handle
        await until(lambda: not spool.checkpoints, "the deleted file to be forgotten")
    assert spool.msgs() == ["one", "two", "three"]


async def test_multiline_join_and_timeout_flush(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, "2024-01-01 ERROR boom\n  at a()\n  at b()\n2024-01-01 INFO next\n  more\n")
    spool = FakeSpool()
    ti = tail([str(log)], multiline_start=r"^\d{4}-", multiline_timeout_s=0.05)
    async with running(ti, spool):
        await until(lambda: len(spool.entries) == 2, "both records (the second by timeout)")
    assert spool.msgs() == ["2024-01-01 ERROR boom\n  at a()\n  at b()", "2024-01-01 INFO next\n  more"]
    assert [e.level for e in spool.entries] == [Level.ERROR, Level.INFO]


async def test_checkpoint_never_passes_a_pending_multiline_record(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    first = "2024-01-01 first\n  cont 1\n"
    append(log, first + "2024-01-02 second\n  cont 2\n")
    spool = FakeSpool()
    ti = tail([str(log)], multiline_start=r"^\d{4}-", multiline_timeout_s=60)
    async with running(ti, spool):
        await until(lambda: len(spool.entries) == 1, "the first record")
        await asyncio.sleep(0.05)
    (value,) = spool.checkpoints.values()
    assert msgspec.msgpack.decode(value, type=TailCheckpoint).offset == len(first)
    append(log, "  cont 2b\n2024-01-03 third\n")
    ti2 = tail(
        [str(log)], checkpoints=spool.checkpoints, multiline_start=r"^\d{4}-", multiline_timeout_s=0.05
    )
    async with running(ti2, spool):
        await until(lambda: len(spool.entries) == 3, "the second and third records")
    assert spool.msgs() == [
        "2024-01-01 first\n  cont 1",
        "2024-01-02 second\n  cont 2\n  cont 2b",
        "2024-01-03 third",
    ]


async def test_long_line_is_split_into_flagged_parts(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, "x" * 150 + "\nshort\n")
    spool = FakeSpool()
    ti = tail([str(log)], max_line_bytes=64)
    async with running(ti, spool):
        await until(lambda: len(spool.entries) == 4, "three parts and a line")
    assert [len(m) for m in spool.msgs()] == [64, 64, 22, 5]
    assert [e.fields for e in spool.entries] == [
        {"input": "tail", "part": "1"},
        {"input": "tail", "part": "2"},
        {"input": "tail", "part": "3", "part_last": "1"},
        {"input": "tail"},
    ]


async def test_invalid_utf8_is_replaced(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, b"ok \xff\xfe bad \xc3\n\xe2\x82\xac euro\n")
    spool = FakeSpool()
    async with running(tail([str(log)]), spool):
        await until(lambda: len(spool.entries) == 2, "both lines")
    assert spool.msgs() == ["ok \ufffd\ufffd bad \ufffd", "€ euro"]


async def test_files_in_a_code_page_are_decoded_with_their_encoding(tmp_path: Path) -> None:
    """A Korean Windows program's log in cp949, a Japanese one's in shift_jis, a Notepad file with a
    byte-order mark: each read as its encoding says (lines are framed on the byte \\n first: no multibyte
    character of these holds it)."""
    texts = {"cp949": "오류 발생 n=1\r\n경고 n=2\r\n", "shift_jis": "エラー n=1\nー表 n=2\n",
             "utf-8-sig": "bom n=1\nplain n=2\n", "latin-1": "café n=1\nnaïve n=2\n"}  # fmt: skip

    async def read(log: Path, encoding: str) -> list[str]:
        spool = FakeSpool()
        async with running(tail([str(log)], encoding=encoding), spool):
            await until(lambda: len(spool.entries) == 2, f"both {encoding} lines")
        return spool.msgs()

    for encoding, text in texts.items():
        log = tmp_path / f"{encoding}.log"
        append(log, text.encode(encoding))
        assert await read(log, encoding) == text.replace("\r", "").splitlines(), encoding


def test_an_encoding_must_read_its_line_end_as_one_byte_or_be_utf16() -> None:
    for good in ("utf-8", "UTF8", "utf-8-sig", "cp949", "euc-kr", "shift_jis", "gb18030", "big5", "cp1252",
                 "latin-1", "ascii"):  # fmt: skip
        assert encoding_problem(good) is None, good
    for utf16 in ("utf-16", "UTF-16LE", "utf-16-be"):
        assert encoding_problem(utf16) is None  # framed on two-byte boundaries
    assert "line end is 4 bytes" in str(encoding_problem("utf-32-be"))
    assert "does not read ASCII" in str(encoding_problem("cp037"))  # EBCDIC
    assert "not a character encoding" in str(encoding_problem("base64"))
    assert "unknown encoding 'klingon'" in str(encoding_problem("klingon"))
    assert msgspec.convert({"paths": ["x"], "encoding": "utf-16"}, TailConfig).encoding == "utf-16"
    with pytest.raises(msgspec.ValidationError, match="line end is 4 bytes"):
        msgspec.convert({"paths": ["x"], "encoding": "utf-32"}, TailConfig)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
async def test_a_utf16_log_is_followed_exactly_once_across_restarts(tmp_path: Path, encoding: str) -> None:
    """A Windows program's UTF-16 log (byte-order mark, CRLF, Korean, an emoji) appended in pieces that end
    inside a line and inside a character, the reader restarted from its checkpoint each time: every line
    once, the mark on none."""
    log = tmp_path / "ERRORLOG"
    codec = "utf-16-le" if encoding == "utf-16" else encoding
    append(log, "\ufeff".encode(codec))
    expected: list[str] = []
    spool = FakeSpool()
    for generation in range(3):
        batch = [f"g{generation} 오류 \U0001f600 n={i} " + "." * 30 for i in range(40)]
        expected += batch
        data = "".join(line + "\r\n" for line in batch).encode(codec)
        half = len(data) // 2 + 1  # an odd cut: inside a character
        async with running(tail([str(log)], checkpoints=spool.checkpoints, encoding=encoding), spool):
            total = len(expected)
            append(log, data[:half])
            await until(lambda: len(spool.entries) >= total - 20, "the complete lines")  # noqa: B023
            append(log, data[half:])
            await until(lambda: len(spool.entries) >= total, "the rest")  # noqa: B023
    async with running(tail([str(log)], checkpoints=spool.checkpoints, encoding=encoding), spool):
        await asyncio.sleep(0.1)  # a few more polls: nothing may come twice
    assert spool.msgs() == expected


async def test_backpressure_stops_reading(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    total = lines("bp", 3000)
    log.write_text(text_of(total))
    spool = FakeSpool()
    spool.gate.clear()
    ti = tail([str(log)], max_batch_records=100)
    async with running(ti, spool):
        await until(lambda: spool.waiting == 1, "emit to block")
        await asyncio.sleep(0.1)  # ten polls: a reader that ignores backpressure would read on
        assert ti.stats.records == 100
        spool.gate.set()
        await until(lambda: len(spool.entries) == 3000, "everything once released")
    assert spool.msgs() == total
    assert max(spool.batch_sizes) <= 100


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
async def test_unreadable_file_is_logged_and_others_continue(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "bad.log"
    bad.write_text("secret\n")
    bad.chmod(0)
    (tmp_path / "good.log").write_text("fine\n")
    spool = FakeSpool()
    async with running(tail([str(tmp_path / "*.log")]), spool):
        await until(lambda: len(spool.entries) == 1, "the readable file")
        await asyncio.sleep(0.05)  # several rescans: logged once, not every time
    assert spool.msgs() == ["fine"]
    warnings = [r for r in caplog.records if r.name == "logferry.inputs.tail" and str(bad) in r.getMessage()]
    assert len(warnings) == 1
    assert "read access" in warnings[0].getMessage()


def test_config_defaults_validation_and_docs() -> None:
    config = msgspec.convert({"paths": ["/var/log/*.log"]}, TailConfig)
    assert config.read_from is ReadFrom.BEGINNING
    assert (config.poll_interval_s, config.max_line_bytes, config.max_batch_records) == (0.25, 65536, 1000)
    with pytest.raises(msgspec.ValidationError, match="multiline_start"):
        msgspec.convert({"paths": ["x"], "multiline_start": "("}, TailConfig)
    with pytest.raises(msgspec.ValidationError, match="poll_interval_s"):
        msgspec.convert({"paths": ["x"], "poll_interval_s": 0}, TailConfig)
    with pytest.raises(msgspec.ValidationError, match="read_form"):
        msgspec.convert({"paths": ["x"], "read_form": "end"}, TailConfig)
    rows = {name: (kind, default, text) for name, kind, default, text in describe_options()}
    assert rows["paths"][1] == "required"
    assert rows["read_from"][1] == "'beginning'"
    assert all(text for _, _, text in rows.values())


async def test_restart_in_the_middle_of_a_long_line_keeps_numbering_parts(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, "x" * 150)  # no newline yet: two full parts can be emitted, 22 bytes wait
    spool = FakeSpool()
    async with running(tail([str(log)], max_line_bytes=64), spool):
        await until(lambda: len(spool.entries) == 2, "the first two parts")
    append(log, "yy\n")
    async with running(tail([str(log)], checkpoints=spool.checkpoints, max_line_bytes=64), spool):
        await until(lambda: len(spool.entries) == 3, "the last part")
    assert "".join(spool.msgs()) == "x" * 150 + "yy"
    assert spool.entries[2].fields == {"input": "tail", "part": "3", "part_last": "1"}


async def test_path_and_level_detection_can_be_turned_off(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, "ERROR not detected\n")
    spool = FakeSpool()
    async with running(tail([str(log)], include_path=False, detect_level=False, name="web"), spool):
        await until(lambda: len(spool.entries) == 1, "the line")
    (entry,) = spool.entries
    assert (entry.path, entry.level, entry.fields) == ("", Level.INFO, {"input": "web"})
    assert all(key.startswith("web:") for key in spool.checkpoints)


async def test_a_pattern_that_follows_no_file_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder given where files are meant is a warning with the pattern to give instead; a pattern with
    nothing there yet is said once, and again when files appear: never once per rescan."""
    folder = tmp_path / "logs"
    folder.mkdir()
    later = tmp_path / "later"
    spool = FakeSpool()
    caplog.set_level(logging.INFO, logger="logferry.inputs.tail")
    async with running(tail([str(folder), str(later / "*.log")]), spool):
        await asyncio.sleep(0.3)  # many rescans
        later.mkdir()
        append(later / "a.log", "one\n")
        await until(lambda: spool.msgs() == ["one"], "the file that appeared")
        await asyncio.sleep(0.2)
    said = [r.getMessage() for r in caplog.records]
    assert said.count(f"tail input 'tail': {folder} matches folders, not files ({folder}); follow the files "
                      f"in it with a pattern such as {folder / '*.log'}") == 1  # fmt: skip
    assert [r.levelno for r in caplog.records if "matches folders" in r.getMessage()] == [logging.WARNING]
    assert sum("no file matches" in m for m in said) == 1
    assert sum(m == f"tail input 'tail': {later / '*.log'} now matches 1 file(s)" for m in said) == 1
