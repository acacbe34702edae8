"""The receiving side of whole files with a real content store on disk and a fake ledger: files in one
frame, a cut-through tap following a transfer (durable offsets, stored, bad, detached), and the relay's
live file as its forwarder sees it, with the recent chunks it keeps in memory."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import (
    BundledFile,
    Code,
    FileBundle,
    FileCancel,
    FileChunk,
    FileDone,
    FileOffer,
    FileWhole,
    PeerRole,
)
from logferry.roles.relay_files import Budget, LiveFile, RecentPieces
from logferry.store.content import ContentStore, Partial
from logferry.store.file_intake import FileIntake, Outcome
from logferry.transport.file_sender import FileAbandoned
from logferry.transport.serve import BatchRefused

PEER = Authenticated("dev", PeerRole.AGENT, 1)
DATA = bytes(range(256)) * 64
SHA = hashlib.sha256(DATA).digest()
OFFER = FileOffer("dev/files", 1, "a.bin", len(DATA), 5, SHA)


class FakeLedger:
    def __init__(self) -> None:
        self.committed: list[FileOffer] = []
        self.commits = 0  # calls of file_commit_many

    async def files_known(self, files: list[tuple[str, int, bytes]]) -> set[tuple[str, int]]:
        held = {(o.source, o.seq) for o in self.committed}
        return {(source, seq) for source, seq, _sha in files if (source, seq) in held}

    async def file_commit_many(self, peer: Authenticated, offers: list[FileOffer]) -> None:
        self.commits += 1
        self.committed.extend(offers)


class Tap:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def opened(self, offer: FileOffer, partial: Partial) -> bool:
        self.events.append(("opened", partial.size))
        return True

    def wrote(self, key: tuple[str, int], offset: int, data: bytes) -> None:
        self.events.append(("wrote", (offset, len(data))))

    def durable(self, key: tuple[str, int], offset: int) -> None:
        self.events.append(("durable", offset))

    def ended(self, key: tuple[str, int], outcome: Outcome) -> None:
        self.events.append(("ended", outcome))


async def test_small_files_in_one_frame_are_stored_together_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    ledger = FakeLedger()
    intake = FileIntake(ContentStore(tmp_path), ledger)
    wholes = [
        FileWhole(
            "dev/files", seq, f"s{seq}", 64, 5, hashlib.sha256(bytes([seq]) * 64).digest(), bytes([seq]) * 64
        )
        for seq in range(1, 21)
    ]
    await asyncio.gather(*(intake.file_whole(PEER, w) for w in wholes))
    assert sorted(o.seq for o in ledger.committed) == list(range(1, 21))
    assert all(intake.content.path_for(w.sha256).read_bytes() == w.data for w in wholes)
    with pytest.raises(BatchRefused) as info:
        await intake.file_whole(PEER, FileWhole("dev/files", 30, "x", 3, 5, SHA, b"abc"))
    assert info.value.code == Code.MALFORMED and not info.value.retry
    await intake.file_whole(PEER, wholes[0])  # held already: acknowledged without storing again
    assert intake.stats.already_held == 1 and len(ledger.committed) == 20


async def test_a_bundle_is_stored_and_journaled_together_and_only_its_bad_file_is_refused(
    tmp_path: Path,
) -> None:
    ledger = FakeLedger()
    intake = FileIntake(ContentStore(tmp_path), ledger)
    files = [BundledFile("dev/files", seq, f"s{seq}", 64, 5, hashlib.sha256(bytes([seq]) * 64).digest(),
                         bytes([seq]) * 64) for seq in range(1, 11)]  # fmt: skip
    bad = BundledFile("dev/files", 11, "bad", 3, 5, SHA, b"abc")  # does not hash to its sha256
    refused = await intake.file_bundle(PEER, FileBundle(1, [*files[:5], bad, *files[5:]]))
    assert [(n.seq, n.code, n.retry) for n in refused] == [(11, Code.MALFORMED, False)]
    assert sorted(o.seq for o in ledger.committed) == list(range(1, 11)) and ledger.commits == 1
    assert all(intake.content.path_for(f.sha256).read_bytes() == f.data for f in files)
    # sent again (the answer was lost): held already, nothing stored or journaled twice
    assert await intake.file_bundle(PEER, FileBundle(2, files[:3])) == []
    assert intake.stats.already_held == 3 and len(ledger.committed) == 10 and ledger.commits == 1


async def test_a_tap_follows_a_transfer_to_its_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("logferry.store.file_intake.SYNC_BYTES", 4096)
    tap = Tap()
    intake = FileIntake(ContentStore(tmp_path), FakeLedger(), tap)
    assert await intake.file_offered(PEER, OFFER) == 0
    for offset in range(0, len(DATA), 8192):
        await intake.file_chunk(PEER, FileChunk("dev/files", 1, offset, DATA[offset : offset + 8192]))
        await asyncio.sleep(0.01)  # the background sync
    assert ("durable", 8192) in tap.events
    assert [e for e in tap.events if e[0] == "wrote"] == [
        ("wrote", (o, 8192)) for o in range(0, len(DATA), 8192)
    ]  # every chunk, in order, once written
    await intake.file_finished(PEER, FileDone("dev/files", 1, SHA))
    assert tap.events[0] == ("opened", 0) and tap.events[-1] == ("ended", Outcome.STORED)
    # another version whose Done does not match: bad, never stored
    tap.events.clear()
    other = FileOffer("dev/files", 2, "b.bin", 10, 5, SHA)
    await intake.file_offered(PEER, other)
    await intake.file_chunk(PEER, FileChunk("dev/files", 2, 0, b"0123456789"))
    with pytest.raises(BatchRefused):
        await intake.file_finished(PEER, FileDone("dev/files", 2, bytes(32)))
    assert tap.events[-1] == ("ended", Outcome.BAD)
    # a transfer whose sender goes away is detached; its partial stays for the resume
    await intake.file_offered(PEER, FileOffer("dev/files", 3, "c.bin", 10, 5, SHA))
    await intake.file_chunk(PEER, FileChunk("dev/files", 3, 0, b"01234"))
    intake.peer_closed(PEER)
    assert tap.events[-1] == ("ended", Outcome.DETACHED)
    assert await intake.file_offered(PEER, FileOffer("dev/files", 3, "c.bin", 10, 5, SHA)) == 5
    await intake.file_cancelled(PEER, FileCancel("dev/files", 3, True))  # discard: the partial goes
    assert tap.events[-1] == ("ended", Outcome.BAD)
    assert not list(intake.content.partials.glob("*3.*.part"))


async def test_a_live_file_gives_what_is_durable_and_says_how_it_ended(tmp_path: Path) -> None:
    live = LiveFile(OFFER, tmp_path / "p", 0, Budget(1 << 20))
    waiting = asyncio.ensure_future(live.readable(0))
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing durable yet: the forwarder waits
    live.grew(4096)
    assert await waiting == 4096
    verified = asyncio.ensure_future(live.verified())
    live.end(Outcome.STORED)
    await verified
    assert await live.readable(5000) == len(DATA)
    bad = LiveFile(OFFER, tmp_path / "p", 100, Budget(1 << 20))
    bad.end(Outcome.BAD)
    with pytest.raises(FileAbandoned) as info:
        await bad.readable(100)
    assert info.value.discard
    gone = LiveFile(OFFER, tmp_path / "p", 100, Budget(1 << 20))
    assert await gone.readable(0) == 100  # what is durable can still be sent
    gone.end(Outcome.DETACHED)
    with pytest.raises(FileAbandoned) as info:
        await gone.verified()
    assert not info.value.discard


def test_recent_pieces_give_what_was_written_in_order_within_the_budget() -> None:
    budget = Budget(100)
    recent = RecentPieces(budget)
    recent.add(0, b"a" * 40)
    recent.add(40, b"b" * 40)
    recent.add(80, b"c" * 40)  # over the budget: not kept, the forwarder reads it from the partial
    assert recent.bytes == 80
    assert recent.take(0, 40) == b"a" * 40  # a whole piece: handed over and let go
    assert recent.bytes == 40
    assert recent.take(50, 20) == b"b" * 20  # part of one: a slice, the piece stays
    assert recent.take(80, 40) is None  # never kept; everything before 80 is let go
    assert recent.bytes == 0
    recent.add(80, b"c" * 40)
    recent.add(200, b"d" * 10)  # not where the last ended (a resume): only the new piece stays
    assert recent.take(80, 40) is None and recent.take(200, 10) == b"d" * 10


def test_the_budget_is_shared_and_a_dropped_or_abandoned_file_lets_go(tmp_path: Path) -> None:
    budget = Budget(100)
    first = LiveFile(OFFER, tmp_path / "p", 0, budget)
    second = LiveFile(OFFER, tmp_path / "q", 0, budget)
    first.recent.add(0, b"x" * 60)
    second.recent.add(0, b"y" * 60)  # the other file's share leaves no room
    assert first.piece(0, 60) == b"x" * 60 and second.piece(0, 60) is None
    second.recent.add(60, b"y" * 60)
    assert second.recent.bytes == 60
    second.end(Outcome.DETACHED)  # not stored: what it kept is let go
    assert second.recent.bytes == 0
    first.recent.add(60, b"x" * 90)
    assert first.recent.bytes == 90
    first.end(Outcome.STORED)  # stored: kept for the forwarder still sending it
    assert first.recent.bytes == 90
    del first  # the forwarder is done with it: the share is free again
    third = LiveFile(OFFER, tmp_path / "r", 0, budget)
    third.recent.add(0, b"z" * 100)
    assert third.recent.bytes == 100
