"""The files input's hashing step on real files: a small file is read whole and what was hashed goes with
it (the sender ships that version from memory), a larger one is hashed in pieces, and a file that changed
or vanished while it was hashed is left for the next scan."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from logferry.inputs.files import _hash_unchanged
from logferry.transport.file_sender import WHOLE_MAX_BYTES


def _version(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def test_small_files_come_with_what_was_hashed_and_large_ones_without(tmp_path: Path) -> None:
    small, large, empty = tmp_path / "small", tmp_path / "large", tmp_path / "empty"
    small.write_bytes(b"s" * 4096)
    large.write_bytes(os.urandom(WHOLE_MAX_BYTES + 1))
    empty.write_bytes(b"")
    hashed, contents = _hash_unchanged([_version(small), _version(large), _version(empty)])
    assert [h[0] for h in hashed] == [str(small), str(large), str(empty)]
    for (path, size, _mtime, digest), data in zip(hashed, contents, strict=True):
        content = Path(path).read_bytes()
        assert size == len(content) and digest == hashlib.sha256(content).digest()
        assert data == (None if path == str(large) else content)


def test_a_file_that_changed_or_vanished_is_left_for_the_next_scan(tmp_path: Path) -> None:
    grew, gone, kept = tmp_path / "grew", tmp_path / "gone", tmp_path / "kept"
    for p in (grew, gone, kept):
        p.write_bytes(b"1234")
    listed = [_version(grew), _version(gone), _version(kept)]
    with grew.open("ab") as f:
        f.write(b"5678")  # longer than listed: read whole, it is not the listed version
    gone.unlink()
    hashed, contents = _hash_unchanged(listed)
    assert [h[0] for h in hashed] == [str(kept)] and contents == [b"1234"]
