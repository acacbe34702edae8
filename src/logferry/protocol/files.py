"""Whole-file transfer in the sans-IO core: the bookkeeping of the one file in transfer on a connection.

A client offers a complete file (``FileOffer``: id and manifest); the server answers how much of it it holds
already (``FileResume(offset)``), or at once with its verdict (``FileAck``: held complete; ``FileNack``:
refused). The client then sends ``FileChunk``s that continue exactly where the previous one ended, then
``FileDone(sha256)``; the server answers ``FileAck`` once the file is fsynced and verified, else
``FileNack``. One transfer at a time per connection keeps the state (and the receiver's memory) bounded;
the record batches and their credit window are untouched by it. docs/PROTOCOL.md §13 is the specification.

``OutgoingFile`` (client) and ``IncomingFile`` (server) check every move and raise ``LocalProtocolError``
(our misuse, nothing changes) or ``RemoteProtocolError`` (the peer's fault). This module must never touch a
socket, a file, a clock or a random source: it only counts offsets.
"""

from __future__ import annotations

import enum

from logferry.errors import LocalProtocolError, RemoteProtocolError
from logferry.protocol.messages import (
    SHA256_BYTES,
    Code,
    FileAck,
    FileChunk,
    FileDone,
    FileNack,
    FileOffer,
    FileProgress,
    FileResume,
)

FILES_SUFFIX = "/files"  # an agent's files are items of the source "<its source>/files": their own seqs
WINDOW_CHUNKS = 2  # chunks a client may send beyond the last FileProgress: what a cut can make it resend
CHUNK_OVERHEAD_BYTES = 64  # msgpack array, tag, seq, offset and bin header of a FileChunk, beyond the source


def files_source(source: str) -> str:
    """The source name of an agent's files: ``edge-1`` → ``edge-1/files``."""
    return source + FILES_SUFFIX


class Phase(enum.Enum):
    OFFERED = "offered"  # waiting for the server's Resume (or verdict)
    SENDING = "sending"  # chunks flow
    DONE = "done"  # FileDone sent/received, waiting for the verdict


def check_offer(offer: FileOffer) -> str | None:
    """What is wrong with an offer, or None."""
    if offer.seq < 1 or offer.size < 0 or offer.mtime_ns < 0:
        return f"FileOffer {offer.source}:{offer.seq} has an impossible seq, size or mtime"
    if len(offer.sha256) != SHA256_BYTES:
        return f"FileOffer {offer.source}:{offer.seq} has a sha256 of {len(offer.sha256)} bytes, not 32"
    return None


class _Transfer:
    __slots__ = ("next_offset", "offer", "phase", "unconfirmed")

    def __init__(self, offer: FileOffer) -> None:
        self.offer = offer
        self.phase = Phase.OFFERED
        self.next_offset = 0
        self.unconfirmed: list[
            int
        ] = []  # end offsets of chunks sent (client) or written (server), unconfirmed

    def names(self, source: str, seq: int) -> bool:
        return self.offer.source == source and self.offer.seq == seq


class OutgoingFile:
    """The client's side: at most one file in transfer."""

    def __init__(self) -> None:
        self.current: _Transfer | None = None

    def offer(self, offer: FileOffer) -> None:
        if self.current is not None:
            cur = self.current.offer
            raise LocalProtocolError(
                f"file {cur.source}:{cur.seq} is still in transfer; wait for its verdict"
            )
        problem = check_offer(offer)
        if problem is not None:
            raise LocalProtocolError(problem)
        self.current = _Transfer(offer)

    def chunk(self, chunk: FileChunk, frame_bytes: int, limit: int) -> None:
        t = self._active(chunk.source, chunk.seq, Phase.SENDING)
        if chunk.offset != t.next_offset or not chunk.data:
            raise LocalProtocolError(f"chunk at {chunk.offset} does not continue at {t.next_offset}")
        if chunk.offset + len(chunk.data) > t.offer.size:
            raise LocalProtocolError(f"chunk ends past the offered size {t.offer.size}")
        if len(t.unconfirmed) >= WINDOW_CHUNKS:
            raise LocalProtocolError(f"{WINDOW_CHUNKS} chunks await FileProgress; wait for it")
        if frame_bytes > limit:
            raise LocalProtocolError(
                f"chunk frame of {frame_bytes} bytes is over the limit of {limit}; use smaller chunks",
                code=Code.TOO_LARGE,
            )
        t.next_offset += len(chunk.data)
        t.unconfirmed.append(t.next_offset)

    @property
    def window_open(self) -> bool:
        """Whether another chunk may be sent now."""
        t = self.current
        return t is not None and t.phase is Phase.SENDING and len(t.unconfirmed) < WINDOW_CHUNKS

    def done(self, done: FileDone) -> None:
        t = self._active(done.source, done.seq, Phase.SENDING)
        if t.next_offset != t.offer.size or len(done.sha256) != SHA256_BYTES:
            raise LocalProtocolError(f"FileDone after {t.next_offset} of {t.offer.size} bytes")
        t.phase = Phase.DONE

    def received(self, msg: FileResume | FileProgress | FileAck | FileNack) -> None:
        """Check the server's answer; raises RemoteProtocolError if it does not fit the transfer."""
        t = self.current
        if t is None or not t.names(msg.source, msg.seq):
            raise RemoteProtocolError(
                f"{type(msg).__name__} for file {msg.source}:{msg.seq}, which is not in transfer",
                code=Code.PROTOCOL,
            )
        if isinstance(msg, FileResume):
            if t.phase is not Phase.OFFERED or not 0 <= msg.offset <= t.offer.size:
                raise RemoteProtocolError(
                    f"FileResume at {msg.offset} for a file of {t.offer.size} bytes in phase {t.phase.value}",
                    code=Code.PROTOCOL,
                )
            t.phase, t.next_offset = Phase.SENDING, msg.offset
            return
        if isinstance(msg, FileProgress):
            if not t.unconfirmed or msg.offset not in t.unconfirmed:
                raise RemoteProtocolError(
                    f"FileProgress at {msg.offset} matches no chunk in flight", code=Code.PROTOCOL
                )
            del t.unconfirmed[: t.unconfirmed.index(msg.offset) + 1]
            return
        if isinstance(msg, FileAck) and t.phase is Phase.SENDING:
            raise RemoteProtocolError("FileAck before FileDone", code=Code.PROTOCOL)
        self.current = None

    def _active(self, source: str, seq: int, phase: Phase) -> _Transfer:
        t = self.current
        if t is None or not t.names(source, seq) or t.phase is not phase:
            raise LocalProtocolError(f"file {source}:{seq} is not {phase.value} on this connection")
        return t


class IncomingFile:
    """The server's side: at most one file in transfer; remembers a refused one to ignore its stragglers."""

    def __init__(self) -> None:
        self.current: _Transfer | None = None
        self._refused: tuple[str, int] | None = None  # chunks already on the wire when we said Nack

    def offered(self, offer: FileOffer, allowed_source: str | None) -> None:
        if self.current is not None:
            raise RemoteProtocolError(
                f"FileOffer {offer.source}:{offer.seq} while {self.current.offer.seq} is in transfer",
                code=Code.PROTOCOL,
            )
        problem = check_offer(offer)
        if problem is not None:
            raise RemoteProtocolError(problem, code=Code.MALFORMED)
        if allowed_source is not None and offer.source != allowed_source:
            raise RemoteProtocolError(
                f"an agent may offer files of {allowed_source!r} only, not {offer.source!r}",
                code=Code.SOURCE_MISMATCH,
            )
        self._refused = None
        self.current = _Transfer(offer)

    def chunk(self, chunk: FileChunk) -> bool:
        """True: a chunk to store. False: a straggler of a refused file, to drop."""
        if self._refused == (chunk.source, chunk.seq):
            return False
        t = self._expect(chunk.source, chunk.seq, Phase.SENDING, "FileChunk")
        end = chunk.offset + len(chunk.data)
        if chunk.offset != t.next_offset or not chunk.data or end > t.offer.size:
            raise RemoteProtocolError(
                f"FileChunk {chunk.offset}..{end} does not continue at {t.next_offset} "
                f"within {t.offer.size} bytes",
                code=Code.PROTOCOL,
            )
        t.next_offset = end
        t.unconfirmed.append(end)
        return True

    def done(self, done: FileDone) -> bool:
        if self._refused == (done.source, done.seq):
            return False
        t = self._expect(done.source, done.seq, Phase.SENDING, "FileDone")
        if t.next_offset != t.offer.size or len(done.sha256) != SHA256_BYTES:
            raise RemoteProtocolError(
                f"FileDone after {t.next_offset} of {t.offer.size} bytes", code=Code.PROTOCOL
            )
        t.phase = Phase.DONE
        return True

    def resume(self, offset: int) -> FileResume:
        t = self._ours(Phase.OFFERED)
        if not 0 <= offset <= t.offer.size:
            raise LocalProtocolError(f"resume offset {offset} outside 0..{t.offer.size}")
        t.phase, t.next_offset = Phase.SENDING, offset
        return FileResume(t.offer.source, t.offer.seq, offset)

    def progress(self) -> FileProgress:
        """Confirm the oldest chunk written but not yet confirmed."""
        t = self._ours(None)
        if not t.unconfirmed:
            raise LocalProtocolError("no chunk awaits its FileProgress")
        return FileProgress(t.offer.source, t.offer.seq, t.unconfirmed.pop(0))

    def ack(self) -> FileAck:
        t = self._ours(None)
        if t.phase is Phase.SENDING:
            raise LocalProtocolError("cannot acknowledge a file before its FileDone")
        self.current = None
        return FileAck(t.offer.source, t.offer.seq)

    def nack(self, code: Code, reason: str, retry: bool) -> FileNack:
        t = self._ours(None)
        self.current = None
        if t.phase is Phase.SENDING:
            self._refused = (t.offer.source, t.offer.seq)
        return FileNack(t.offer.source, t.offer.seq, int(code), reason, retry)

    def _ours(self, phase: Phase | None) -> _Transfer:
        t = self.current
        if t is None or (phase is not None and t.phase is not phase):
            raise LocalProtocolError("no file is waiting for this answer on this connection")
        return t

    def _expect(self, source: str, seq: int, phase: Phase, what: str) -> _Transfer:
        t = self.current
        if t is None or not t.names(source, seq) or t.phase is not phase:
            raise RemoteProtocolError(
                f"{what} for file {source}:{seq}, which is not being sent", Code.PROTOCOL
            )
        return t
