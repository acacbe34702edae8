"""The content-addressed file store: partials resume, only verified content reaches its address."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from logferry.store.content import ContentMismatch, ContentStore

DATA = bytes(range(256)) * 1000
SHA = hashlib.sha256(DATA).digest()


def test_a_partial_resumes_across_a_restart_and_commits_by_rename(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    part = store.open_partial("dev/files", 1, SHA, len(DATA))
    part.write(0, DATA[:1000])
    part.close()  # the process dies here
    assert not store.has(SHA)  # a crash leaves no file at the content address
    again = ContentStore(tmp_path).open_partial("dev/files", 1, SHA, len(DATA))
    assert again.size == 1000  # the resume offset
    again.write(1000, DATA[1000:])
    path = store.commit(again, SHA)
    assert path == store.path_for(SHA) and path.read_bytes() == DATA
    assert not list(store.partials.iterdir()) and store.verify(SHA)


def test_a_mismatch_never_reaches_the_address_and_starts_over(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    part = store.open_partial("dev/files", 2, SHA, len(DATA))
    part.write(0, b"x" * len(DATA))
    with pytest.raises(ContentMismatch):
        store.commit(part, SHA)
    assert not store.has(SHA) and not list(store.partials.iterdir())


def test_identical_content_is_stored_once_and_damage_is_seen(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    for seq in (1, 2):
        part = store.open_partial("dev/files", seq, SHA, len(DATA))
        part.write(0, DATA)
        store.commit(part, SHA)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [store.path_for(SHA)]
    with store.path_for(SHA).open("r+b") as f:
        f.write(b"\xff")
    assert not store.verify(SHA)
    store.quarantine(SHA)
    assert not store.has(SHA)


def test_a_longer_partial_of_another_version_is_not_continued(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    part = store.open_partial("dev/files", 3, SHA, len(DATA))
    part.write(0, DATA)
    part.close()
    assert store.open_partial("dev/files", 3, SHA, 10).size == 0
