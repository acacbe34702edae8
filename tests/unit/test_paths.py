"""File names that are not valid Unicode (POSIX names are bytes): shown escaped, kept exactly, and the agent's
file queue hands back the very path it was given, whatever its bytes."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logferry.paths import loaded, shown, stored
from logferry.store.file_queue import FileQueueStore
from logferry.store.sqlite import Durability

pytestmark = pytest.mark.skipif(os.name == "nt", reason="names as bytes are POSIX's")

NAMES = st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b and b"/" not in b)


def test_a_name_that_is_text_is_itself_everywhere() -> None:
    for name in ("/var/log/app.log", "/데이터/로그.log", "/d/sp ace\\x.log"):
        assert shown(name) == name and stored(name) == name and loaded(name) == name


def test_the_bytes_that_are_not_utf8_are_escaped_and_the_rest_kept() -> None:
    name = os.fsdecode(b"/d/caf\xe9-\xed\x95\x9c.log")  # Latin-1 e-acute, then a valid Korean syllable
    assert shown(name) == "/d/caf\\xe9-한.log"
    assert stored(name) == b"/d/caf\xe9-\xed\x95\x9c.log"


@given(NAMES)
def test_any_name_is_kept_exactly_and_shown_as_utf8(raw: bytes) -> None:
    name = os.fsdecode(b"/d/" + raw)
    assert loaded(stored(name)) == name
    assert os.fsencode(loaded(stored(name))) == b"/d/" + raw
    shown(name).encode("utf-8")  # never raises
    value = stored(name)
    with sqlite3.connect(":memory:") as db:  # the value SQLite keeps compares equal to itself
        db.execute("CREATE TABLE t(path TEXT)")
        db.execute("INSERT INTO t VALUES (?)", (value,))
        assert db.execute("SELECT count(*) FROM t WHERE path = ?", (value,)).fetchone() == (1,)


async def test_the_agent_queue_keeps_a_name_that_is_not_utf8_and_knows_it_again(tmp_path: Path) -> None:
    queue = await FileQueueStore.open(tmp_path / "files.db", "dev/files", Durability.NORMAL)
    try:
        odd, plain = os.fsdecode(b"/d/caf\xe9.log"), "/d/plain.log"
        digest = hashlib.sha256(b"x").digest()
        assert await queue.add_many([(odd, 5, 1, digest), (plain, 5, 1, digest)]) == [1, 2]
        assert await queue.add_many([(odd, 5, 1, digest)]) == [None]  # the same version: not queued twice
        assert await queue.known_versions([(odd, 5, 1), (plain, 5, 1), (odd, 6, 1)]) == {
            (odd, 5, 1), (plain, 5, 1)}  # fmt: skip
        first, second = await queue.next_files(10)
        assert (first.path, first.local) == ("/d/caf\\xe9.log", odd)  # shown in the manifest, opened as is
        assert (second.path, second.local) == (plain, plain)
    finally:
        await queue.close()
