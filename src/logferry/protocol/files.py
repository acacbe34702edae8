"""Whole-file transfer in the sans-IO core: the bookkeeping of the files in transfer on a connection.

A client offers a complete file (``FileOffer``: id and manifest); the server answers how much of it it holds
already (``FileResume(offset)``), or at once with its verdict (``FileAck``: held complete; ``FileNack``:
refused). The client then sends ``FileChunk``s that continue exactly where the previous one ended, then
``FileDone(sha256)``; the server answers ``FileAck`` once the file is fsynced and verified, else
``FileNack``. A small file may instead travel in one frame (``FileWhole``: offer, content and done), answered
by ``FileAck`` or ``FileNack``. A client may stop a transfer (``FileCancel``), e.g. a relay forwarding a file
that is still arriving whose sender went away. Up to ``FILES_IN_FLIGHT`` transfers may be open per
connection, each keyed by its id ``(source, seq)``, so round trips and the receiver's commits overlap; each
transfer has at most ``WINDOW_CHUNKS`` chunks unconfirmed, so state and the receiver's memory stay bounded.
The record batches and their credit window are untouched by it. From protocol version 2 many small files
may travel in one ``FileBundle`` answered by one ``FileBundleAck`` (every file durably held but those it
refuses); up to ``BUNDLES_IN_FLIGHT`` bundles await their answer per connection, and a file is never in a
bundle and another transfer at once. docs/PROTOCOL.md §13 is the specification.

``OutgoingFiles`` (client) and ``IncomingFiles`` (server) check every move and raise ``LocalProtocolError``
(our misuse, nothing changes) or ``RemoteProtocolError`` (the peer's fault). This module must never touch a
socket, a file, a clock or a random source: it only counts offsets.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Collection
from typing import Protocol

from logferry.errors import LocalProtocolError, RemoteProtocolError
from logferry.protocol.messages import (
    SHA256_BYTES,
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

FILES_SUFFIX = "/files"  # an agent's files are items of the source "<its source>/files": their own seqs
WINDOW_CHUNKS = 2  # chunks a client may send beyond the last FileProgress, per file: what a cut resends
FILES_IN_FLIGHT = 64  # transfers (offered or whole, not yet answered by FileAck/FileNack) per connection
CHUNK_OVERHEAD_BYTES = 64  # msgpack array, tag, seq, offset and bin header of a FileChunk, beyond the source
WHOLE_OVERHEAD_BYTES = 128  # the same for a FileWhole, beyond its source and path
BUNDLE_FILES = 1024  # files in one FileBundle at most
BUNDLES_IN_FLIGHT = 4  # FileBundles awaiting their FileBundleAck per connection
BUNDLE_OVERHEAD_BYTES = 32  # msgpack array, tag and bundle id of a FileBundle, beyond its entries
ENTRY_OVERHEAD_BYTES = 96  # the same for one BundledFile, beyond its source, path and data
_FORGOTTEN = 4 * FILES_IN_FLIGHT  # refused/cancelled ids remembered to drop their stragglers

Key = tuple[str, int]


def files_source(source: str) -> str:
    """The source name of an agent's files: ``edge-1`` → ``edge-1/files``."""
    return source + FILES_SUFFIX


class Phase(enum.Enum):
    OFFERED = "offered"  # waiting for the server's Resume (or verdict)
    SENDING = "sending"  # chunks flow
    DONE = "done"  # FileDone (or FileWhole) sent/received, waiting for the verdict


class Named(Protocol):
    """What the size of a file's entry in a frame depends on (an offer, a bundled file, a queued file)."""

    @property
    def source(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...


def entry_bytes(entry: Named) -> int:
    """The most bytes a BundledFile of this file takes in a FileBundle frame."""
    return ENTRY_OVERHEAD_BYTES + len(entry.source.encode()) + len(entry.path.encode()) + entry.size


def check_offer(offer: FileOffer | FileWhole | BundledFile) -> str | None:
    """What is wrong with an offer, or None."""
    what = "FileBundle entry" if isinstance(offer, BundledFile) else type(offer).__name__
    if offer.seq < 1 or offer.size < 0 or offer.mtime_ns < 0:
        return f"{what} {offer.source}:{offer.seq} has an impossible seq, size or mtime"
    if len(offer.sha256) != SHA256_BYTES:
        return f"{what} {offer.source}:{offer.seq} has a sha256 of {len(offer.sha256)} bytes, not 32"
    if not isinstance(offer, FileOffer) and len(offer.data) != offer.size:
        return f"{what} {offer.source}:{offer.seq} carries {len(offer.data)} bytes, not its size {offer.size}"
    return None


def check_bundle(
    bundle: FileBundle, open_bundles: dict[int, set[Key]], transfers: dict[Key, _Transfer]
) -> str | None:
    """What is wrong with a bundle given what is in transfer on the connection, or None."""
    if bundle.bundle_id in open_bundles:
        return f"FileBundle {bundle.bundle_id} reused while it awaits its FileBundleAck"
    if len(open_bundles) >= BUNDLES_IN_FLIGHT:
        return f"FileBundle {bundle.bundle_id}: over {BUNDLES_IN_FLIGHT} bundles await their FileBundleAck"
    if not 1 <= len(bundle.files) <= BUNDLE_FILES:
        return f"FileBundle {bundle.bundle_id} carries {len(bundle.files)} files, not 1 to {BUNDLE_FILES}"
    # Every bundle is checked on both sides: one pass for the usual case (nothing wrong); the entries one by
    # one only when something is, to name the first problem.
    if entries_fit(bundle, open_bundles, transfers):
        return None
    return first_entry_problem(bundle, open_bundles, transfers)


def entries_fit(bundle: FileBundle, open_bundles: dict[int, set[Key]], transfers: Collection[Key]) -> bool:
    """Whether no entry of the bundle has a problem ``first_entry_problem`` would name (one quick pass)."""
    files = bundle.files
    keys = {(e.source, e.seq) for e in files}
    return (
        len(keys) == len(files)
        and keys.isdisjoint(transfers)
        and all(keys.isdisjoint(open_) for open_ in open_bundles.values())
        and all(
            e.seq >= 1 and e.size >= 0 and e.mtime_ns >= 0 and len(e.sha256) == SHA256_BYTES
            and len(e.data) == e.size
            for e in files
        )
    )  # fmt: skip


def first_entry_problem(
    bundle: FileBundle, open_bundles: dict[int, set[Key]], transfers: Collection[Key]
) -> str | None:
    """The first entry of the bundle that is malformed or in transfer already, said, or None."""
    keys: set[Key] = set()
    for entry in bundle.files:
        problem = check_offer(entry)
        if problem is not None:
            return problem
        key = (entry.source, entry.seq)
        if key in keys or key in transfers or any(key in open_ for open_ in open_bundles.values()):
            return f"FileBundle {bundle.bundle_id}: file {entry.source}:{entry.seq} is in transfer already"
        keys.add(key)
    return None


class _Transfer:
    __slots__ = ("next_offset", "phase", "size", "unconfirmed")

    def __init__(self, size: int, phase: Phase = Phase.OFFERED) -> None:
        self.size = size
        self.phase = phase
        self.next_offset = 0
        self.unconfirmed: list[int] = []  # end offsets of chunks sent (client) or written (server)


class _Forgotten:
    """A bounded memory of ids whose transfer ended abruptly (refused, cancelled): their stragglers drop."""

    def __init__(self) -> None:
        self._order: deque[Key] = deque()
        self._keys: set[Key] = set()

    def add(self, key: Key) -> None:
        if key in self._keys:
            return
        self._order.append(key)
        self._keys.add(key)
        if len(self._order) > _FORGOTTEN:
            self._keys.discard(self._order.popleft())

    def discard(self, key: Key) -> None:
        if key in self._keys:
            self._keys.discard(key)
            self._order.remove(key)

    def __contains__(self, key: Key) -> bool:
        return key in self._keys


class OutgoingFiles:
    """The client's side: up to ``FILES_IN_FLIGHT`` files in transfer, each with its chunk window."""

    def __init__(self) -> None:
        self.transfers: dict[Key, _Transfer] = {}
        self.bundles: dict[int, set[Key]] = {}  # bundles sent and not yet answered: their files
        self._cancelled = _Forgotten()  # answers may still come for these: dropped

    @property
    def room(self) -> bool:
        """Whether another file may be offered now."""
        return len(self.transfers) < FILES_IN_FLIGHT

    @property
    def bundle_room(self) -> bool:
        """Whether another bundle may be sent now."""
        return len(self.bundles) < BUNDLES_IN_FLIGHT

    def bundle(self, bundle: FileBundle, frame_bytes: int, limit: int) -> None:
        problem = check_bundle(bundle, self.bundles, self.transfers)
        if problem is not None:
            raise LocalProtocolError(problem)
        if frame_bytes > limit:
            raise LocalProtocolError(
                f"FileBundle frame of {frame_bytes} bytes is over the limit of {limit}; bundle fewer files",
                code=Code.TOO_LARGE,
            )
        self.bundles[bundle.bundle_id] = {(f.source, f.seq) for f in bundle.files}

    def bundle_answered(self, ack: FileBundleAck) -> None:
        """Check the server's answer to a bundle; raises RemoteProtocolError if it fits none."""
        keys = self.bundles.get(ack.bundle_id)
        if keys is None:
            raise RemoteProtocolError(
                f"FileBundleAck for bundle {ack.bundle_id}, which awaits no answer", code=Code.PROTOCOL
            )
        strays = [f"{n.source}:{n.seq}" for n in ack.refused if (n.source, n.seq) not in keys]
        if strays or len({(n.source, n.seq) for n in ack.refused}) != len(ack.refused):
            raise RemoteProtocolError(
                f"FileBundleAck {ack.bundle_id} refuses files it did not carry, or one twice: {strays[:4]}",
                code=Code.PROTOCOL,
            )
        del self.bundles[ack.bundle_id]

    def _start(self, offer: FileOffer | FileWhole, phase: Phase) -> None:
        key = (offer.source, offer.seq)
        if key in self.transfers or any(key in keys for keys in self.bundles.values()):
            raise LocalProtocolError(f"file {offer.source}:{offer.seq} is already in transfer")
        if not self.room:
            raise LocalProtocolError(f"{FILES_IN_FLIGHT} files are in transfer; wait for a verdict")
        problem = check_offer(offer)
        if problem is not None:
            raise LocalProtocolError(problem)
        self.transfers[key] = _Transfer(offer.size, phase)

    def offer(self, offer: FileOffer) -> None:
        self._start(offer, Phase.OFFERED)

    def whole(self, whole: FileWhole, frame_bytes: int, limit: int) -> None:
        if frame_bytes > limit:
            raise LocalProtocolError(
                f"FileWhole frame of {frame_bytes} bytes is over the limit of {limit}; offer it in chunks",
                code=Code.TOO_LARGE,
            )
        self._start(whole, Phase.DONE)

    def chunk(self, chunk: FileChunk, frame_bytes: int, limit: int) -> None:
        t = self._active(chunk.source, chunk.seq, Phase.SENDING)
        if chunk.offset != t.next_offset or not chunk.data:
            raise LocalProtocolError(f"chunk at {chunk.offset} does not continue at {t.next_offset}")
        if chunk.offset + len(chunk.data) > t.size:
            raise LocalProtocolError(f"chunk ends past the offered size {t.size}")
        if len(t.unconfirmed) >= WINDOW_CHUNKS:
            raise LocalProtocolError(f"{WINDOW_CHUNKS} chunks await FileProgress; wait for it")
        if frame_bytes > limit:
            raise LocalProtocolError(
                f"chunk frame of {frame_bytes} bytes is over the limit of {limit}; use smaller chunks",
                code=Code.TOO_LARGE,
            )
        t.next_offset += len(chunk.data)
        t.unconfirmed.append(t.next_offset)

    def window_open(self, source: str, seq: int) -> bool:
        """Whether this file may take another chunk now."""
        t = self.transfers.get((source, seq))
        return t is not None and t.phase is Phase.SENDING and len(t.unconfirmed) < WINDOW_CHUNKS

    def done(self, done: FileDone) -> None:
        t = self._active(done.source, done.seq, Phase.SENDING)
        if t.next_offset != t.size or len(done.sha256) != SHA256_BYTES:
            raise LocalProtocolError(f"FileDone after {t.next_offset} of {t.size} bytes")
        t.phase = Phase.DONE

    def cancel(self, cancel: FileCancel) -> None:
        key = (cancel.source, cancel.seq)
        t = self.transfers.get(key)
        if t is None or t.phase is not Phase.SENDING:
            # Before the Resume the server's answer is still coming: cancelling then would leave it astray.
            raise LocalProtocolError(f"file {cancel.source}:{cancel.seq} is not sending: nothing to cancel")
        del self.transfers[key]
        self._cancelled.add(key)

    def received(self, msg: FileResume | FileProgress | FileAck | FileNack) -> bool:
        """Check the server's answer: True to pass it on, False for a straggler of a cancelled transfer;
        raises RemoteProtocolError if it fits no transfer."""
        key = (msg.source, msg.seq)
        t = self.transfers.get(key)
        if t is None:
            if key in self._cancelled:
                return False
            raise RemoteProtocolError(
                f"{type(msg).__name__} for file {msg.source}:{msg.seq}, which is not in transfer",
                code=Code.PROTOCOL,
            )
        if isinstance(msg, FileResume):
            if t.phase is not Phase.OFFERED or not 0 <= msg.offset <= t.size:
                raise RemoteProtocolError(
                    f"FileResume at {msg.offset} for a file of {t.size} bytes in phase {t.phase.value}",
                    code=Code.PROTOCOL,
                )
            t.phase, t.next_offset = Phase.SENDING, msg.offset
            self._cancelled.discard(key)  # answers from here on are this transfer's
            return True
        if isinstance(msg, FileProgress):
            if msg.offset not in t.unconfirmed:
                if t.phase is Phase.OFFERED and key in self._cancelled:
                    return False  # the previous (cancelled) transfer's chunk, written before our cancel
                raise RemoteProtocolError(
                    f"FileProgress at {msg.offset} matches no chunk in flight", code=Code.PROTOCOL
                )
            del t.unconfirmed[: t.unconfirmed.index(msg.offset) + 1]
            return True
        if isinstance(msg, FileAck) and t.phase is Phase.SENDING:
            raise RemoteProtocolError("FileAck before FileDone", code=Code.PROTOCOL)
        del self.transfers[key]
        self._cancelled.discard(key)
        return True

    def _active(self, source: str, seq: int, phase: Phase) -> _Transfer:
        t = self.transfers.get((source, seq))
        if t is None or t.phase is not phase:
            raise LocalProtocolError(f"file {source}:{seq} is not {phase.value} on this connection")
        return t


class IncomingFiles:
    """The server's side: up to ``FILES_IN_FLIGHT`` files in transfer; remembers refused and cancelled ones
    to ignore their stragglers."""

    def __init__(self) -> None:
        self.transfers: dict[Key, _Transfer] = {}
        self.bundles: dict[int, set[Key]] = {}  # bundles received and not yet answered: their files
        self._refused = _Forgotten()  # chunks already on the wire when we said Nack

    def bundled(self, bundle: FileBundle, allowed_source: str | None) -> None:
        problem = check_bundle(bundle, self.bundles, self.transfers)
        if problem is not None:
            code = Code.CREDIT_EXCEEDED if len(self.bundles) >= BUNDLES_IN_FLIGHT else Code.PROTOCOL
            raise RemoteProtocolError(problem, code=code)
        if allowed_source is not None:
            other = next((f.source for f in bundle.files if f.source != allowed_source), None)
            if other is not None:
                raise RemoteProtocolError(
                    f"an agent may bundle files of {allowed_source!r} only, not {other!r}",
                    code=Code.SOURCE_MISMATCH,
                )
        self.bundles[bundle.bundle_id] = {(f.source, f.seq) for f in bundle.files}

    def bundle_ack(self, bundle_id: int, refused: list[FileNack]) -> FileBundleAck:
        keys = self.bundles.get(bundle_id)
        if keys is None or any((n.source, n.seq) not in keys for n in refused):
            raise LocalProtocolError(f"bundle {bundle_id} is not waiting for this answer on this connection")
        del self.bundles[bundle_id]
        return FileBundleAck(bundle_id, refused)

    def offered(self, offer: FileOffer | FileWhole, allowed_source: str | None) -> None:
        key = (offer.source, offer.seq)
        if key in self.transfers or any(key in keys for keys in self.bundles.values()):
            raise RemoteProtocolError(
                f"{type(offer).__name__} {offer.source}:{offer.seq} while it is in transfer already",
                code=Code.PROTOCOL,
            )
        if len(self.transfers) >= FILES_IN_FLIGHT:
            raise RemoteProtocolError(
                f"{type(offer).__name__} {offer.source}:{offer.seq}: over {FILES_IN_FLIGHT} in transfer",
                code=Code.CREDIT_EXCEEDED,
            )
        problem = check_offer(offer)
        if problem is not None:
            raise RemoteProtocolError(problem, code=Code.MALFORMED)
        if allowed_source is not None and offer.source != allowed_source:
            raise RemoteProtocolError(
                f"an agent may offer files of {allowed_source!r} only, not {offer.source!r}",
                code=Code.SOURCE_MISMATCH,
            )
        self._refused.discard(key)
        self.transfers[key] = _Transfer(
            offer.size, Phase.DONE if isinstance(offer, FileWhole) else Phase.OFFERED
        )

    def chunk(self, chunk: FileChunk) -> bool:
        """True: a chunk to store. False: a straggler of a refused file, to drop."""
        if (chunk.source, chunk.seq) in self._refused:
            return False
        t = self._expect(chunk.source, chunk.seq, Phase.SENDING, "FileChunk")
        if len(t.unconfirmed) >= WINDOW_CHUNKS:
            raise RemoteProtocolError(
                f"FileChunk of {chunk.source}:{chunk.seq} beyond {WINDOW_CHUNKS} unconfirmed chunks",
                code=Code.CREDIT_EXCEEDED,
            )
        end = chunk.offset + len(chunk.data)
        if chunk.offset != t.next_offset or not chunk.data or end > t.size:
            raise RemoteProtocolError(
                f"FileChunk {chunk.offset}..{end} does not continue at {t.next_offset} within {t.size} bytes",
                code=Code.PROTOCOL,
            )
        t.next_offset = end
        t.unconfirmed.append(end)
        return True

    def done(self, done: FileDone) -> bool:
        if (done.source, done.seq) in self._refused:
            return False
        t = self._expect(done.source, done.seq, Phase.SENDING, "FileDone")
        if t.next_offset != t.size or len(done.sha256) != SHA256_BYTES:
            raise RemoteProtocolError(f"FileDone after {t.next_offset} of {t.size} bytes", Code.PROTOCOL)
        t.phase = Phase.DONE
        return True

    def cancel(self, cancel: FileCancel) -> bool:
        """True: the transfer ends here (its partial is kept, or deleted with ``discard``). False: it had
        ended already (refused while the cancel was on the wire)."""
        key = (cancel.source, cancel.seq)
        if key in self._refused:
            return False
        t = self.transfers.get(key)
        if t is None or t.phase is not Phase.SENDING:
            raise RemoteProtocolError(
                f"FileCancel for file {cancel.source}:{cancel.seq}, which is not being sent", Code.PROTOCOL
            )
        del self.transfers[key]
        self._refused.add(key)  # its chunks are all before the cancel; nothing more may follow
        return True

    def resume(self, source: str, seq: int, offset: int) -> FileResume:
        t = self._ours(source, seq, Phase.OFFERED)
        if not 0 <= offset <= t.size:
            raise LocalProtocolError(f"resume offset {offset} outside 0..{t.size}")
        t.phase, t.next_offset = Phase.SENDING, offset
        return FileResume(source, seq, offset)

    def progress(self, source: str, seq: int) -> FileProgress:
        """Confirm the oldest chunk of this file written but not yet confirmed."""
        t = self._ours(source, seq, None)
        if not t.unconfirmed:
            raise LocalProtocolError(f"no chunk of file {source}:{seq} awaits its FileProgress")
        return FileProgress(source, seq, t.unconfirmed.pop(0))

    def ack(self, source: str, seq: int) -> FileAck:
        t = self._ours(source, seq, None)
        if t.phase is Phase.SENDING:
            raise LocalProtocolError("cannot acknowledge a file before its FileDone")
        del self.transfers[(source, seq)]
        return FileAck(source, seq)

    def nack(self, source: str, seq: int, code: Code, reason: str, retry: bool) -> FileNack:
        t = self._ours(source, seq, None)
        del self.transfers[(source, seq)]
        if t.phase is Phase.SENDING:
            self._refused.add((source, seq))
        return FileNack(source, seq, int(code), reason, retry)

    def open(self, source: str, seq: int) -> bool:
        """Whether this file is in transfer (an answer may still be given)."""
        return (source, seq) in self.transfers

    def _ours(self, source: str, seq: int, phase: Phase | None) -> _Transfer:
        t = self.transfers.get((source, seq))
        if t is None or (phase is not None and t.phase is not phase):
            raise LocalProtocolError(f"file {source}:{seq} is not waiting for this answer on this connection")
        return t

    def _expect(self, source: str, seq: int, phase: Phase, what: str) -> _Transfer:
        t = self.transfers.get((source, seq))
        if t is None or t.phase is not phase:
            raise RemoteProtocolError(
                f"{what} for file {source}:{seq}, which is not being sent", Code.PROTOCOL
            )
        return t
