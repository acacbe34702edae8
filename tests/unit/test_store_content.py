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


def test_small_files_are_stored_in_groups_and_a_mismatch_is_refused_alone(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    small = [bytes([i]) * (100 + i) for i in range(5)]
    items = [(d, hashlib.sha256(d).digest()) for d in small]
    items.append((b"tampered", SHA))  # content that does not hash to its offer
    items.append(items[0])  # the same content twice in one group is stored once
    verdicts = store.put_many(items)
    assert [v is None for v in verdicts] == [True] * 5 + [False, True]
    assert isinstance(verdicts[5], ContentMismatch)
    assert all(store.path_for(h).read_bytes() == d for d, h in items[:5])
    assert not store.has(SHA)
    assert not list(tmp_path.glob("??/??/.*.tmp"))  # no temporary name is left behind
    assert store.put_many(items[:1]) == [None]  # held already: nothing is written again


def test_a_partial_reports_what_is_durable(tmp_path: Path) -> None:
    part = ContentStore(tmp_path).open_partial("dev/files", 1, SHA, len(DATA))
    part.write(0, DATA[:5000])
    assert part.synced == 0
    assert part.sync_data() == 5000 == part.synced
    part.close()
    assert part.sync_data() == 5000  # closed: nothing to do, and no error
    with pytest.raises(ValueError, match="closed"):
        part.write(5000, DATA[5000:6000])
