"""Receiving whole files on a server (relay or collector): partial → verified content → journaled item.

``FileIntake`` is the ``transport.serve.FileSink`` both servers use. An offer is answered from the disk:
``None`` (the item is journaled already: acknowledge at once) or the size of this version's partial file
(the resume offset: no byte that reached our disk is asked for again, after a cut or a restart). Chunks are
appended in order; at ``FileDone`` the partial is fsynced, its sha256 checked against the offer and the
sender's, moved to its content address, and only then is the item handed to the role's ``FileLedger``
(rules, journal, manifest table), whose commit makes the acknowledgement true. A small file arriving in one
frame (``FileWhole``) is verified, written under a temporary name, made durable and renamed the same way, but
together with the others arriving meanwhile (one flush for a group, ``ContentStore.put_many``); these
commits run beside the serving loop, so their journal commits group too. A cancelled transfer keeps its
partial for a resume, unless the sender said to discard it.

An optional ``IntakeTap`` (the relay's cut-through forwarding) hears when a transfer opens, how far its
partial is durable (while it is tapped, the partial is fdatasync'd in the background every ``SYNC_BYTES``),
what was written (the relay keeps recent chunks in memory to forward), and how it ended: stored, bad, or
detached (its sender went away or paused it).

Counters (``IntakeStats``) say how many bytes arrived and how many were resumed rather than resent; the
integration tests read them from the log lines. This module must never acknowledge a file before the ledger
committed it, never keep a whole large file in memory, and never let a mismatched file reach a content
address.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass, field
from typing import Protocol

from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import (
    Code,
    FileBundle,
    FileCancel,
    FileChunk,
    FileDone,
    FileNack,
    FileOffer,
    FileWhole,
)
from logferry.store.content import ContentMismatch, ContentStore, Partial
from logferry.transport.serve import BatchRefused

log = logging.getLogger("logferry.files")

SYNC_BYTES = 32 << 20  # a tapped partial is made durable every this many bytes (what a relay may forward)
GROUP_FILES = 1024  # small files made durable together at most (a bundle larger than this goes alone)

Key = tuple[str, int]


class FileLedger(Protocol):
    """Where a role journals the files it received."""

    async def files_known(self, files: list[tuple[str, int, bytes]]) -> set[Key]:
        """Of ``(source, seq, sha256)``, the ids journaled already (their sender lost our ack): they are
        acknowledged without a transfer."""
        ...

    async def file_commit_many(self, peer: Authenticated, offers: list[FileOffer]) -> None:
        """Journal the items in one commit (their content is durable in the content store by sha256)."""
        ...


class Outcome(enum.Enum):
    DETACHED = "detached"  # the sender went away or cancelled: the partial stays, it may resume
    STORED = "stored"  # verified, at its content address, journaled
    BAD = "bad"  # it does not hash to the offer: discarded, never acknowledged


class IntakeTap(Protocol):
    """Someone who wants to follow transfers as they arrive (the relay's cut-through forwarding)."""

    def opened(self, offer: FileOffer, partial: Partial) -> bool:
        """A transfer opened (or resumed) into ``partial``; True to follow it (its partial is then made
        durable as it grows and ``durable`` is told)."""
        ...

    def wrote(self, key: Key, offset: int, data: bytes) -> None:
        """``data`` was written at ``offset`` of a followed file (not durable yet)."""
        ...

    def durable(self, key: Key, offset: int) -> None:
        """The first ``offset`` bytes of a followed file are durable on this host's disk."""
        ...

    def ended(self, key: Key, outcome: Outcome) -> None:
        """A transfer ended (a file sent in one frame never opens)."""
        ...


@dataclass
class IntakeStats:
    offers: int = 0
    files: int = 0  # transfers completed and committed
    whole: int = 0  # of which arrived in one frame
    bytes_received: int = 0  # chunk bytes that reached the disk
    whole_bytes: int = 0  # bytes of files stored that arrived in one frame or a bundle
    bytes_resumed: int = 0  # bytes not asked for again because a partial already held them
    already_held: int = 0  # offers acknowledged at once


@dataclass(eq=False)
class _Open:
    offer: FileOffer
    partial: Partial
    owner: Authenticated  # the connection's peer object: identity tells connections apart
    tapped: bool
    got: int = 0  # bytes received on this connection
    syncing: asyncio.Task[None] | None = field(default=None, repr=False)


class _SmallFiles:
    """Groups the content of small files arriving at once into one durable write (``put_many``): while
    one group is being written, the next one gathers, so the flushes are shared without any timer."""

    def __init__(self, content: ContentStore) -> None:
        self.content = content
        self._pending: list[
            tuple[list[tuple[bytes, bytes]], asyncio.Future[list[ContentMismatch | None]]]
        ] = []
        self._writer: asyncio.Task[None] | None = None

    async def put(self, data: bytes, sha256: bytes) -> None:
        """Return once the content is durable at its address; raises ContentMismatch."""
        (verdict,) = await self.put_all([(data, sha256)])
        if verdict is not None:
            raise verdict

    async def put_all(self, items: list[tuple[bytes, bytes]]) -> list[ContentMismatch | None]:
        """Return once the content of every ``(data, sha256)`` that hashes right is durable at its address:
        per item, None or the ContentMismatch that refused it. Raises OSError."""
        if not items:
            return []
        done: asyncio.Future[list[ContentMismatch | None]] = asyncio.get_running_loop().create_future()
        self._pending.append((items, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        return await done

    async def _write(self) -> None:
        try:
            while self._pending:
                # Whole requests only (a bundle is never split), up to about GROUP_FILES files.
                take, count = 0, 0
                while take < len(self._pending) and (
                    take == 0 or count + len(self._pending[take][0]) <= GROUP_FILES
                ):
                    count += len(self._pending[take][0])
                    take += 1
                group, self._pending = self._pending[:take], self._pending[take:]
                try:
                    verdicts = await asyncio.to_thread(
                        self.content.put_many, [i for items, _ in group for i in items]
                    )
                except OSError as exc:
                    for _, done in group:
                        done.set_exception(exc)
                    continue
                at = 0
                for items, done in group:
                    done.set_result(verdicts[at : at + len(items)])
                    at += len(items)
        finally:
            self._writer = None


class FileIntake:
    def __init__(self, content: ContentStore, ledger: FileLedger, tap: IntakeTap | None = None) -> None:
        self.content = content
        self.ledger = ledger
        self.tap = tap
        self.stats = IntakeStats()
        self._open: dict[Key, _Open] = {}
        self._small = _SmallFiles(content)

    async def file_offered(self, peer: Authenticated, offer: FileOffer) -> int | None:
        self.stats.offers += 1
        key = (offer.source, offer.seq)
        self._drop(key)  # an earlier connection's transfer of the same item: its handle is stale
        if await self._known(offer.source, offer.seq, offer.sha256):
            self.stats.already_held += 1
            return None
        partial = await asyncio.to_thread(
            self.content.open_partial, offer.source, offer.seq, offer.sha256, offer.size
        )
        tapped = self.tap is not None and self.tap.opened(offer, partial)
        self._open[key] = _Open(offer, partial, peer, tapped)
        self.stats.bytes_resumed += partial.size
        log.info("receiving file %s:%d (%s, %d bytes) from %s at offset %d",
                 offer.source, offer.seq, offer.path, offer.size, peer.source, partial.size)  # fmt: skip
        return partial.size

    async def file_chunk(self, peer: Authenticated, chunk: FileChunk) -> None:
        key = (chunk.source, chunk.seq)
        found = self._open.get(key)
        if found is None:
            raise BatchRefused(Code.INTERNAL, f"file {chunk.source}:{chunk.seq} is not open here", retry=True)
        try:
            await asyncio.to_thread(found.partial.write, chunk.offset, chunk.data)
        except (OSError, ValueError) as exc:
            self._drop(key)
            raise BatchRefused(Code.STORE_FAILED, f"cannot write file {chunk.source}:{chunk.seq}: {exc}",
                               retry=True) from exc  # fmt: skip
        found.got += len(chunk.data)
        self.stats.bytes_received += len(chunk.data)
        partial = found.partial
        if found.tapped and self.tap is not None:
            self.tap.wrote(key, chunk.offset, chunk.data)
        if found.tapped and found.syncing is None and partial.size - partial.synced >= SYNC_BYTES:
            found.syncing = asyncio.create_task(self._sync(key, found))

    async def _sync(self, key: Key, found: _Open) -> None:
        """Make a followed partial durable so far (beside the next writes), then tell the tap."""
        try:
            synced = await asyncio.to_thread(found.partial.sync_data)
        except OSError as exc:
            log.warning("cannot sync the partial of file %s:%d: %s", key[0], key[1], exc)
            return
        finally:
            found.syncing = None
        if self.tap is not None and self._open.get(key) is found:
            self.tap.durable(key, synced)

    async def file_finished(self, peer: Authenticated, done: FileDone) -> None:
        key = (done.source, done.seq)
        found = self._open.pop(key, None)
        if found is None:
            raise BatchRefused(Code.INTERNAL, f"file {done.source}:{done.seq} is not open here", retry=True)
        offer, partial = found.offer, found.partial
        outcome = Outcome.DETACHED
        try:
            if done.sha256 != offer.sha256:
                outcome = Outcome.BAD
                partial.close()
                partial.path.unlink(missing_ok=True)
                raise BatchRefused(
                    Code.MALFORMED,
                    f"file {done.source}:{done.seq} changed while it was sent (sha256 differs from the "
                    "offer); offer the new content as a new item",
                    retry=False,
                )
            try:
                await asyncio.to_thread(self.content.commit, partial, offer.sha256)
            except ContentMismatch as exc:
                outcome = Outcome.BAD
                raise BatchRefused(Code.STORE_FAILED, f"file {done.source}:{done.seq}: {exc}; send it again",
                                   retry=True) from exc  # fmt: skip
            await self.ledger.file_commit_many(peer, [offer])
            outcome = Outcome.STORED
        finally:
            if found.tapped and self.tap is not None:
                self.tap.ended(key, outcome)
        self.stats.files += 1
        log.info("stored file %s:%d (%s, %d bytes, sha256 %s…): %d bytes received on this connection",
                 offer.source, offer.seq, offer.path, offer.size, offer.sha256.hex()[:16],
                 found.got)  # fmt: skip

    async def file_whole(self, peer: Authenticated, whole: FileWhole) -> None:
        offer = FileOffer(whole.source, whole.seq, whole.path, whole.size, whole.mtime_ns, whole.sha256)
        self._drop((whole.source, whole.seq))
        if await self._known(whole.source, whole.seq, whole.sha256):
            self.stats.already_held += 1
            return
        try:
            await self._small.put(whole.data, whole.sha256)
        except ContentMismatch as exc:
            raise BatchRefused(
                Code.MALFORMED,
                f"file {whole.source}:{whole.seq}: {exc}; offer the content it has as a new item",
                retry=False,
            ) from exc
        await self.ledger.file_commit_many(peer, [offer])
        self.stats.files += 1
        self.stats.whole += 1
        self.stats.whole_bytes += whole.size
        log.debug("stored file %s:%d (%s, %d bytes) received in one frame", whole.source, whole.seq,
                  whole.path, whole.size)  # fmt: skip

    async def _known(self, source: str, seq: int, sha256: bytes) -> bool:
        return bool(await self.ledger.files_known([(source, seq, sha256)]))

    async def file_bundle(self, peer: Authenticated, bundle: FileBundle) -> list[FileNack]:
        """Many small files in one frame: those not journaled yet are verified, made durable together and
        journaled in one commit; returns the refusals (content that does not hash to its manifest)."""
        offers = [FileOffer(f.source, f.seq, f.path, f.size, f.mtime_ns, f.sha256) for f in bundle.files]
        for offer in offers:
            self._drop((offer.source, offer.seq))
        known = await self.ledger.files_known([(o.source, o.seq, o.sha256) for o in offers])
        self.stats.already_held += len(known)
        fresh = [(f, o) for f, o in zip(bundle.files, offers, strict=True) if (o.source, o.seq) not in known]
        verdicts = await self._small.put_all([(f.data, f.sha256) for f, _ in fresh])
        good: list[FileOffer] = []
        refused: list[FileNack] = []
        for (f, offer), verdict in zip(fresh, verdicts, strict=True):
            if verdict is None:
                good.append(offer)
            else:
                why = f"file {f.source}:{f.seq}: {verdict}; offer the content it has as a new item"
                refused.append(FileNack(f.source, f.seq, int(Code.MALFORMED), why[:200], False))
        if good:
            await self.ledger.file_commit_many(peer, good)
        self.stats.files += len(good)
        self.stats.whole += len(good)
        self.stats.whole_bytes += sum(o.size for o in good)
        log.debug("stored %d files of bundle %d from %s (%d held already, %d refused)", len(good),
                  bundle.bundle_id, peer.source, len(known), len(refused))  # fmt: skip
        return refused

    async def file_cancelled(self, peer: Authenticated, cancel: FileCancel) -> None:
        key = (cancel.source, cancel.seq)
        found = self._open.get(key)
        if found is None or found.owner is not peer:
            return
        del self._open[key]
        found.partial.close()
        if cancel.discard:
            await asyncio.to_thread(found.partial.path.unlink, missing_ok=True)
        log.info("the sender stopped file %s:%d at %d bytes%s", cancel.source, cancel.seq, found.partial.size,
                 "; its partial is discarded" if cancel.discard else "; its partial is kept")  # fmt: skip
        if found.tapped and self.tap is not None:
            self.tap.ended(key, Outcome.BAD if cancel.discard else Outcome.DETACHED)

    def peer_closed(self, peer: Authenticated | None) -> None:
        """A connection ended: its transfers are detached (their partials stay, to resume)."""
        for key, found in list(self._open.items()):
            if found.owner is peer:
                self._drop(key)

    def _drop(self, key: Key) -> None:
        found = self._open.pop(key, None)
        if found is not None:
            found.partial.close()
            if found.tapped and self.tap is not None:
                self.tap.ended(key, Outcome.DETACHED)

    def close(self) -> None:
        for key in list(self._open):
            self._drop(key)
