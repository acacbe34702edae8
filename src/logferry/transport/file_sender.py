"""The client side of whole-file transfer over asyncio: ship files from a durable queue, several at a time.

Used by the agent (its file queue → the relay) and by the relay (its file outbox → the collector), each on
a logferry/1 session of its own beside the record batches, so a large file never holds logs back. The
session, handshake, reconnect and backoff are the ``Sender``'s; only the pump differs: up to
``FILES_IN_FLIGHT`` files are in transfer at once, each in a task of its own. Small files travel many to
a frame (``FileBundle``, ``BUNDLES_AHEAD`` bundles at once, within the protocol's ``BUNDLES_IN_FLIGHT``,
each settled by its one answer in one queue commit) when the session speaks protocol version 2, else one
frame each (``FileWhole``); a larger one is offered, its chunks are sent from the offset the server names
(at most two chunks beyond the last ``FileProgress``, so a cut costs at most two chunks again per file), then
``FileDone``. Only a ``FileAck`` lets the queue forget a file.

The file is read from disk a chunk at a time (bounded memory) and hashed, in a worker thread, from its
first byte (the prefix the server already holds included), so a file that changed since its manifest was
made is never passed off as the offered version: ``FileDone`` carries the hash of what was read, the server
refuses a mismatch, and a small file is not sent at all. A relay forwarding a file that is still arriving
(cut-through, ``Growing``) sends only bytes its own disk holds durably, and ``FileDone`` only once its own
copy is verified and journaled; if the file stops arriving it cancels the transfer (``FileCancel``), and if
it turned out bad it cancels with ``discard`` so the next hop deletes it. This module never decides what
to ship, and never marks a file shipped before its FileAck.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from logferry.errors import ProtocolError, TransportError
from logferry.protocol.connection import BundleAnswered, ClientConnection, FileAnswered, PeerClosed
from logferry.protocol.files import (
    BUNDLE_FILES,
    BUNDLE_OVERHEAD_BYTES,
    BUNDLES_IN_FLIGHT,
    FILES_IN_FLIGHT,
    entry_bytes,
)
from logferry.protocol.messages import (
    Ack,
    BundledFile,
    Code,
    FileAck,
    FileBundle,
    FileBundleAck,
    FileCancel,
    FileChunk,
    FileDone,
    FileNack,
    FileOffer,
    FileProgress,
    FileResume,
    FileWhole,
)
from logferry.transport.sender import Outgoing, Sender, SenderConfig
from logferry.transport.wire import Wire

log = logging.getLogger("logferry.files")

READ_BYTES = 1 << 20
SENT_ENDS_KEPT = 8  # chunk ends remembered per file: enough to count what a cut sends again (<= 2)
CHUNK_BYTES = 4 << 20  # per FileChunk (capped below the receiver's frame limit): fewer round trips per byte
POLL_S = 1.0
WHOLE_MAX_BYTES = 256 << 10  # files up to this size travel in one FileWhole frame
# Bundles this sender keeps awaiting their answer (the protocol allows BUNDLES_IN_FLIGHT): one being
# stored while the next arrives keeps the receiver busy. Four held twice the memory at every hop and made
# the three roles spend ~0.1 CPU-s more per 10k small files (docs/BENCHMARKS.md).
BUNDLES_AHEAD = 2
assert BUNDLES_AHEAD <= BUNDLES_IN_FLIGHT
CHUNKED_IN_FLIGHT = 4  # larger files in transfer at once (each has its own two-chunk window)
BUNDLE_MAX_BYTES = 4 << 20  # a FileBundle frame carries at most this much (and at most BUNDLE_FILES files)
REFILL_STEP = FILES_IN_FLIGHT // 4
_WHOLE, _CHUNKED = "file-whole", "file-chunked"  # task names: which kind of transfer a task runs

Answer = FileResume | FileProgress | FileAck | FileNack
Key = tuple[str, int]


class FileAbandoned(Exception):
    """A growing file stopped arriving (``discard`` false: resume it later) or turned out bad (true)."""

    def __init__(self, reason: str, discard: bool) -> None:
        super().__init__(reason)
        self.discard = discard


class Growing(Protocol):
    """Content still arriving on this host: a relay forwards it while the agent sends it (cut-through)."""

    async def readable(self, offset: int) -> int:
        """Wait until bytes beyond ``offset`` are durable here; the end of the durable bytes. Raises
        FileAbandoned when the file stops arriving or turns out bad."""
        ...

    async def verified(self) -> None:
        """Wait until the whole file is verified and journaled here; raises FileAbandoned otherwise."""
        ...

    def piece(self, offset: int, size: int) -> bytes | None:
        """Up to ``size`` bytes from ``offset`` if this host still holds them in memory (it lets go of
        what comes before ``offset``); None: read them from the file."""
        ...


@dataclass(frozen=True, slots=True)
class OutgoingFile:
    """One file item to ship: its id and manifest, and where its content is on this host."""

    source: str
    seq: int
    path: str  # the manifest's path (as the agent saw it)
    size: int
    mtime_ns: int
    sha256: bytes
    local: str  # where to read the content from here (a string: one is built per file queued)
    growing: Growing | None = None  # still arriving here (cut-through): read only what is durable
    load: Callable[[], bytes | None] | None = None  # reads the content when it is not a file at ``local``
    # The content kept in memory since it was hashed for this manifest (None once let go): sent as it is,
    # without hashing it again. What ``load`` or ``local`` gives is checked before it is sent.
    checked: Callable[[], bytes | None] | None = None

    def offer(self) -> FileOffer:
        return FileOffer(self.source, self.seq, self.path, self.size, self.mtime_ns, self.sha256)


class FileQueue(Protocol):
    async def next_files(self, limit: int, busy: Collection[Key] = frozenset()) -> list[OutgoingFile]:
        """Up to ``limit`` files not yet acknowledged by the next hop, oldest first, leaving out those
        whose ``(source, seq)`` is in ``busy`` (in flight: the sender has them already)."""
        ...

    async def acked(self, item: OutgoingFile) -> None:
        """The next hop durably holds the file."""
        ...

    async def acked_many(self, items: list[OutgoingFile]) -> None:
        """The next hop durably holds these files (a bundle): ``acked`` for each, in one commit."""
        ...

    async def refused(self, item: OutgoingFile, nack: FileNack) -> None:
        """The next hop refused the file for good (``nack.retry`` is false), e.g. it changed while sent."""
        ...


@dataclass
class FileSenderStats:
    files: int = 0
    bytes_sent: int = 0
    bytes_resent: int = 0  # bytes sent again after a cut (the server had not confirmed them)
    resumes: int = 0  # offers answered with a non-zero offset
    whole: int = 0  # files sent in one frame (alone or in a bundle)
    bundles: int = 0  # FileBundle frames sent
    cut_through: int = 0  # files forwarded while still arriving
    bytes_hashed: int = 0  # bytes hashed while sending (a file not trusted to be its manifest's version)


class _NoBatches:
    """The batch queue of a session that carries files only."""

    async def pending(self, after_key: int, max_batches: int) -> list[Outgoing]:
        return []

    async def acked(self, key: int, ack: Ack) -> None:
        raise ProtocolError("a file session received an Ack for a batch it never sent", Code.PROTOCOL)


class FileChanged(Exception):
    """The local file no longer matches its manifest: it changed before it was all sent."""


class FileSender(Sender):
    """Keeps one session to the next hop open and ships the queue's files over it, several at a time."""

    carries = "files"

    def __init__(
        self,
        config: SenderConfig,
        files: FileQueue,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        whole_max_bytes: int = WHOLE_MAX_BYTES,
    ) -> None:
        super().__init__(config, _NoBatches())
        self.files = files
        self.chunk_bytes = chunk_bytes
        self.whole_max_bytes = whole_max_bytes
        self.file_stats = FileSenderStats()
        self._sent_upto: dict[Key, int] = {}  # how far each file got before a cut
        self._sent_ends: dict[Key, list[int]] = {}  # end offsets of each file's last chunks sent
        self._file_answers: dict[Key, asyncio.Queue[Answer]] = {}
        self._bundle_answers: dict[int, asyncio.Future[FileBundleAck]] = {}
        self._bundle_ids = 0
        self._rehash: set[Key] = set()  # refused for now once: hash them while sending from then on

    async def _pump(self, wire: Wire[ClientConnection], stopping: asyncio.Event) -> None:
        reader = asyncio.ensure_future(self._read_answers(wire))
        stop_wait = asyncio.ensure_future(stopping.wait())
        transfers: dict[Key, asyncio.Task[None]] = {}
        bundles: dict[asyncio.Task[None], list[OutgoingFile]] = {}  # in flight, with their files
        exhausted = True
        try:
            while not stopping.is_set():
                room = FILES_IN_FLIGHT - len(transfers)
                bundle_room = wire.conn.bundles and len(bundles) < BUNDLES_AHEAD
                # Refill in steps of a quarter window (one queue read each), or at once after a wake-up.
                if room >= REFILL_STEP or bundle_room or (room > 0 and (exhausted or self._wake.is_set())):
                    self._wake.clear()
                    busy = {(f.source, f.seq) for items in bundles.values() for f in items}
                    busy.update(transfers)
                    want = room
                    if bundle_room:
                        want += BUNDLE_FILES * (BUNDLES_AHEAD - len(bundles))
                    # The queue leaves out what is in flight before it builds anything (no re-reads).
                    fresh = await self.files.next_files(want, busy)
                    exhausted = len(fresh) < want
                    if wire.conn.bundles:
                        fresh = self._bundle_up(wire, fresh, bundles, reader)
                    chunked = sum(1 for t in transfers.values() if t.get_name() == _CHUNKED)
                    for item in fresh:
                        if len(transfers) >= FILES_IN_FLIGHT:
                            break
                        whole = self._goes_whole(wire.conn, item)
                        if not whole and chunked >= CHUNKED_IN_FLIGHT:
                            continue  # large files share the window: a few at a time
                        chunked += not whole
                        key = (item.source, item.seq)
                        self._file_answers[key] = asyncio.Queue()
                        transfers[key] = asyncio.create_task(
                            self._ship(wire, item, reader), name=_WHOLE if whole else _CHUNKED
                        )
                waiting: set[asyncio.Future[Any]] = {reader, stop_wait, *transfers.values(), *bundles}
                wake = None
                if exhausted:
                    # The poll catches files queued by someone who cannot notify us (an operator's release).
                    wake = asyncio.ensure_future(self._wake.wait())
                    waiting.add(wake)
                done, _ = await asyncio.wait(
                    waiting, timeout=POLL_S if exhausted else None, return_when=asyncio.FIRST_COMPLETED
                )
                if wake is not None:
                    wake.cancel()
                if reader in done:
                    reader.result()
                    return
                for key, task in list(transfers.items()):
                    if task.done():
                        del transfers[key]
                        task.result()  # a transfer's error ends the session (the Sender reconnects)
                for task in [t for t in bundles if t.done()]:
                    del bundles[task]
                    task.result()
        finally:
            reader.cancel()
            stop_wait.cancel()
            running = [*transfers.values(), *bundles]
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)
            self._file_answers.clear()
            self._bundle_answers.clear()

    def _bundle_up(
        self,
        wire: Wire[ClientConnection],
        fresh: list[OutgoingFile],
        bundles: dict[asyncio.Task[None], list[OutgoingFile]],
        reader: asyncio.Future[None],
    ) -> list[OutgoingFile]:
        """Start bundles of the small files among ``fresh`` while bundles may be sent; the others are
        returned (small files for which no bundle has room wait for the next refill)."""
        budget = min(BUNDLE_MAX_BYTES, wire.conn.peer_max_frame_bytes) - BUNDLE_OVERHEAD_BYTES
        rest: list[OutgoingFile] = []
        group: list[OutgoingFile] = []
        size = 0

        def start() -> None:
            nonlocal group, size
            if group and len(bundles) < BUNDLES_AHEAD:
                bundles[asyncio.create_task(self._ship_bundle(wire, group, reader))] = group
            group, size = [], 0

        for item in fresh:
            need = entry_bytes(item)
            if item.growing is not None or need > budget or not self._goes_whole(wire.conn, item):
                rest.append(item)
                continue
            if len(group) >= BUNDLE_FILES or size + need > budget:
                start()
            if len(bundles) < BUNDLES_AHEAD:
                group.append(item)
                size += need
        start()
        return rest

    async def _read_answers(self, wire: Wire[ClientConnection]) -> None:
        while True:
            event = await wire.next_event()
            if event is None:
                raise TransportError(f"{self.target} closed the connection")
            if isinstance(event, BundleAnswered):
                waiting = self._bundle_answers.pop(event.ack.bundle_id, None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(event.ack)
            elif isinstance(event, FileAnswered):
                answer = event.answer
                queue = self._file_answers.get((answer.source, answer.seq))
                if queue is not None:  # the core checked it is in transfer, so a task awaits it
                    queue.put_nowait(answer)
            elif isinstance(event, PeerClosed):
                raise ProtocolError(f"{self.target} closed the session: {event.reason}", event.code)

    async def _answer(self, key: Key, reader: asyncio.Future[None]) -> Answer:
        get = asyncio.ensure_future(self._file_answers[key].get())
        waiting: set[asyncio.Future[Any]] = {get, reader}
        try:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not get.done():
                get.cancel()  # also when this transfer is cancelled: no task is left pending
        if get in done:
            return get.result()
        reader.result()  # raises what ended the session
        raise TransportError(f"the session with {self.target} ended")

    async def _ship_bundle(
        self, wire: Wire[ClientConnection], items: list[OutgoingFile], reader: asyncio.Future[None]
    ) -> None:
        """Send small files in one FileBundle; settle each by the one FileBundleAck."""
        contents = await asyncio.to_thread(_read_all, items)
        sendable: list[tuple[OutgoingFile, bytes]] = []
        for item, content in zip(items, contents, strict=True):
            if isinstance(content, FileChanged):
                await self.files.refused(
                    item, FileNack(item.source, item.seq, int(Code.MALFORMED), str(content), False)
                )
            else:
                sendable.append((item, content))
        if not sendable:
            return
        self._bundle_ids += 1
        bundle_id = self._bundle_ids
        entries = [BundledFile(i.source, i.seq, i.path, i.size, i.mtime_ns, i.sha256, d) for i, d in sendable]
        answer: asyncio.Future[FileBundleAck] = asyncio.get_running_loop().create_future()
        self._bundle_answers[bundle_id] = answer
        try:
            await wire.write(wire.conn.send_bundle(FileBundle(bundle_id, entries), wire.now()))
            self.file_stats.bundles += 1
            self.file_stats.whole += len(entries)
            self.file_stats.bytes_sent += sum(len(e.data) for e in entries)
            waiting: set[asyncio.Future[Any]] = {answer, reader}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._bundle_answers.pop(bundle_id, None)
        if answer not in done:
            reader.result()  # raises what ended the session
            raise TransportError(f"the session with {self.target} ended")
        ack = answer.result()
        refused = {(n.source, n.seq): n for n in ack.refused}
        held = [item for item, _ in sendable if (item.source, item.seq) not in refused]
        if held:
            self.file_stats.files += len(held)
            await self.files.acked_many(held)
        again: FileNack | None = None
        for item, _ in sendable:
            nack = refused.get((item.source, item.seq))
            if nack is None:
                continue
            if nack.retry:
                again = again or nack
                continue
            log.warning("%s refused file %s:%d (%s): %s", self.target, item.source, item.seq, item.path,
                        nack.reason)  # fmt: skip
            await self.files.refused(item, nack)
        if again is not None:
            why = f"{self.target} refused file {again.source}:{again.seq} of a bundle for now: {again.reason}"
            raise ProtocolError(why, again.code)

    async def _ship(
        self, wire: Wire[ClientConnection], item: OutgoingFile, reader: asyncio.Future[None]
    ) -> None:
        conn, key = wire.conn, (item.source, item.seq)
        try:
            answer: Answer | None
            if self._goes_whole(conn, item):
                answer = await self._send_whole(wire, item, reader)
            else:
                await wire.write(conn.offer_file(item.offer(), wire.now()))
                answer = await self._answer(key, reader)
                if isinstance(answer, FileResume):
                    answer = await self._send_content(wire, item, answer.offset, reader)
        except FileChanged as exc:
            # The transfer cannot be finished as offered: the queue re-reads the file as a new version.
            self._settled(key)
            await self.files.refused(
                item, FileNack(item.source, item.seq, int(Code.MALFORMED), str(exc), False)
            )
            return
        finally:
            self._file_answers.pop(key, None)
        if answer is None:
            return  # cancelled: a growing file stopped arriving or turned out bad
        if isinstance(answer, FileAck):
            self._settled(key)
            self.file_stats.files += 1
            await self.files.acked(item)
            return
        if isinstance(answer, FileNack):
            self._settled(key)
            if not answer.retry:
                log.warning("%s refused file %s:%d (%s): %s", self.target, item.source, item.seq, item.path,
                            answer.reason)  # fmt: skip
                await self.files.refused(item, answer)
                return
            # e.g. what arrived did not hash to the offer: the next attempt checks the file here as it goes.
            self._rehash.add(key)
            why = f"{self.target} refused file {item.source}:{item.seq} for now: {answer.reason}"
            raise ProtocolError(why, answer.code)
        raise ProtocolError(f"unexpected {type(answer).__name__} for file {item.seq}", Code.PROTOCOL)

    def _goes_whole(self, conn: ClientConnection, item: OutgoingFile) -> bool:
        """Whether the file travels in one FileWhole frame."""
        return item.growing is None and item.size <= min(self.whole_max_bytes, conn.max_whole_bytes(item))

    async def _send_whole(
        self, wire: Wire[ClientConnection], item: OutgoingFile, reader: asyncio.Future[None]
    ) -> Answer:
        data = await asyncio.to_thread(_read_whole, item)
        whole = FileWhole(item.source, item.seq, item.path, item.size, item.mtime_ns, item.sha256, data)
        log.debug("sending file %s:%d (%s, %d bytes) to %s in one frame", item.source, item.seq, item.path,
                  item.size, self.target)  # fmt: skip
        await wire.write(wire.conn.send_whole(whole, wire.now()))
        self.file_stats.whole += 1
        self.file_stats.bytes_sent += item.size
        return await self._answer((item.source, item.seq), reader)

    async def _send_content(
        self, wire: Wire[ClientConnection], item: OutgoingFile, offset: int, reader: asyncio.Future[None]
    ) -> Answer | None:
        key = (item.source, item.seq)
        before = self._sent_upto.get(key, 0)
        if offset:
            self.file_stats.resumes += 1
        resent = max(0, before - offset)
        chunks_again = sum(1 for end in self._sent_ends.pop(key, ()) if end > offset)
        self.file_stats.bytes_resent += resent
        log.info("sending file %s:%d (%s) to %s from offset %d of %d (%d bytes sent again after a cut) "
                 "[%d chunks again]%s", item.source, item.seq, item.path, self.target, offset, item.size,
                 resent, chunks_again, ", while it is still arriving" if item.growing else "")  # fmt: skip
        growing = item.growing
        if growing is not None:
            self.file_stats.cut_through += 1
        try:
            f = await asyncio.to_thread(_open_content, item)
        except OSError as exc:
            why = f"cannot open {item.local}: {exc}"
            await self._cancel(wire, item, FileAbandoned(why, discard=growing is None))
            if growing is not None:
                return None
            raise FileChanged(why) from exc
        try:
            return await self._send_open(wire, item, f, offset, reader)
        except FileChanged as exc:
            # What was sent is not the offered version: the next hop must not keep it to resume from.
            await self._cancel(wire, item, FileAbandoned(str(exc), discard=True))
            raise
        finally:
            f.close()

    async def _send_open(
        self,
        wire: Wire[ClientConnection],
        item: OutgoingFile,
        f: BinaryIO,
        offset: int,
        reader: asyncio.Future[None],
    ) -> Answer | None:
        conn, key = wire.conn, (item.source, item.seq)
        chunk_bytes = max(1, min(self.chunk_bytes, conn.max_chunk_bytes))
        growing = item.growing
        # A growing file was verified by this host as it arrived, and a file still the version the queue
        # hashed need not be hashed again (``_trusted``): the next hop checks the offered sha256 either way.
        trusted = growing is not None or self._trusted(item, f)
        digest = None if trusted else hashlib.sha256()
        if digest is not None:
            await asyncio.to_thread(_hash_prefix, f, digest, offset)
            self.file_stats.bytes_hashed += offset
        else:
            f.seek(offset)
        pos, ready = offset, offset
        ahead: asyncio.Future[bytes] | None = None  # the next chunk, read while this one travels
        try:
            while pos < item.size:
                if growing is None and ahead is None:
                    ahead = asyncio.ensure_future(
                        asyncio.to_thread(_read_piece, f, min(chunk_bytes, item.size - pos), digest)
                    )
                while not conn.file_window_open(item.source, item.seq):
                    answer = await self._answer(key, reader)
                    if not isinstance(answer, FileProgress):
                        return answer  # a refusal mid-transfer
                if growing is not None:
                    if ready <= pos:
                        try:
                            ready = await growing.readable(pos)
                        except FileAbandoned as exc:
                            await self._cancel(wire, item, exc)
                            return None
                    want = min(chunk_bytes, item.size - pos, ready - pos)
                    data = growing.piece(pos, want) or await asyncio.to_thread(_read_at, f, pos, want)
                else:
                    assert ahead is not None
                    data, ahead = await ahead, None
                if not data:
                    raise FileChanged(f"{item.local} is shorter than its manifest's {item.size} bytes")
                if digest is not None:
                    self.file_stats.bytes_hashed += len(data)
                await wire.write(conn.send_chunk(FileChunk(item.source, item.seq, pos, data), wire.now()))
                pos += len(data)
                self._sent_upto[key] = max(self._sent_upto.get(key, 0), pos)
                ends = self._sent_ends.setdefault(key, [])
                ends.append(pos)
                del ends[:-SENT_ENDS_KEPT]
                self.file_stats.bytes_sent += len(data)
        finally:
            if ahead is not None:
                await asyncio.wait({ahead})  # the file is closed after us: let the read finish first
        if growing is not None:
            try:
                await growing.verified()
            except FileAbandoned as exc:
                await self._cancel(wire, item, exc)
                return None
        elif digest is None and not self._trusted(item, f):
            # It changed while it was sent. If it only grew (a log written to again), its first item.size
            # bytes are still the queued version, which is what was sent: hash them now to know.
            self.file_stats.bytes_hashed += item.size
            if not await asyncio.to_thread(_starts_with, f, item.size, item.sha256):
                raise FileChanged(f"{item.local} changed while it was sent (its content differs now)")
        sha = item.sha256 if digest is None else digest.digest()
        await wire.write(conn.file_done(FileDone(item.source, item.seq, sha), wire.now()))
        while True:
            answer = await self._answer(key, reader)
            if not isinstance(answer, FileProgress):
                return answer

    def _settled(self, key: Key) -> None:
        """The next hop answered this attempt (held, refused, or refused for now): forget what this sender
        kept about it; a refusal for now marks it to be hashed on the next attempt afterwards."""
        self._sent_upto.pop(key, None)
        self._sent_ends.pop(key, None)
        self._rehash.discard(key)

    def _trusted(self, item: OutgoingFile, f: BinaryIO) -> bool:
        """Whether the open file is still the version its manifest names, without reading it: same size and
        mtime as when the queue hashed it (rsync's quick check), and not refused since. Hashing 1 GiB again
        as it is sent cost the agent ~0.6 CPU-seconds (docs/BENCHMARKS.md). The next hop verifies every
        byte against the offered sha256 anyway; if a rewrite kept size and mtime, it refuses the file for
        now, and from then on this sender hashes it while sending: what it read no longer matches the offer,
        so the file is refused for good and queued again as a new version."""
        if (item.source, item.seq) in self._rehash:
            return False
        try:
            st = os.fstat(f.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):  # content from memory has no descriptor
            return False
        return st.st_size == item.size and st.st_mtime_ns == item.mtime_ns

    async def _cancel(self, wire: Wire[ClientConnection], item: OutgoingFile, why: FileAbandoned) -> None:
        log.info("stopped forwarding file %s:%d to %s: %s%s", item.source, item.seq, self.target, why,
                 " (the next hop discards it)" if why.discard else "")  # fmt: skip
        await wire.write(wire.conn.cancel_file(FileCancel(item.source, item.seq, why.discard), wire.now()))


def _read_piece(f: BinaryIO, size: int, digest: hashlib._Hash | None) -> bytes:
    """Read up to ``size`` bytes and hash them (in a worker thread: hashlib releases the GIL)."""
    data = f.read(size)
    if digest is not None:
        digest.update(data)
    return data


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


def _read_whole(item: OutgoingFile) -> bytes:
    """A small file's content as its manifest names it: what was kept since it was hashed for the manifest
    (``item.checked()``), else what ``item.load()`` or the file at ``item.local`` holds, checked against
    the manifest (size and sha256); raises FileChanged."""
    data = item.checked() if item.checked is not None else None
    if data is not None and len(data) == item.size:
        return data
    try:
        data = item.load() if item.load is not None else None
        if data is None:
            with open(item.local, "rb") as f:
                data = f.read(item.size + 1)
    except OSError as exc:
        raise FileChanged(f"cannot read {item.local}: {exc}") from exc
    if len(data) != item.size or hashlib.sha256(data).digest() != item.sha256:
        raise FileChanged(f"{item.local} no longer has the content its manifest names")
    return data


def _open_content(item: OutgoingFile) -> BinaryIO:
    """The content to send in chunks: from memory or the store when it is not a file, else the file."""
    data = item.checked() if item.checked is not None else None
    if data is None and item.load is not None:
        data = item.load()
    return io.BytesIO(data) if data is not None else open(item.local, "rb")


def _read_all(items: list[OutgoingFile]) -> list[bytes | FileChanged]:
    """Each small file's content (``_read_whole``), or why it cannot be sent as its manifest says."""
    out: list[bytes | FileChanged] = []
    for item in items:
        try:
            out.append(_read_whole(item))
        except FileChanged as exc:
            out.append(exc)
    return out


def _starts_with(f: BinaryIO, size: int, sha256: bytes) -> bool:
    """Whether the first ``size`` bytes of the open file ``f`` hash to ``sha256`` (blocks)."""
    digest = hashlib.sha256()
    f.seek(0)
    try:
        _hash_prefix(f, digest, size)
    except FileChanged:
        return False  # shorter now
    return digest.digest() == sha256


def _hash_prefix(f: BinaryIO, digest: hashlib._Hash, size: int) -> None:
    """Hash the first ``size`` bytes of the open file ``f`` (leaving it positioned at ``size``)."""
    read = f.read
    left = size
    while left > 0:
        piece = read(min(READ_BYTES, left))
        if not piece:
            raise FileChanged(f"the file is shorter than the {size} bytes the receiver already holds")
        digest.update(piece)
        left -= len(piece)
