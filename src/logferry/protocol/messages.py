"""Every logferry/1 message, as msgspec Structs.

On the wire a message is a msgpack array whose first element is the message's integer tag and whose other
elements are the fields in declaration order (``array_like``). Field order and tags are part of the protocol:
never reorder, only append fields with defaults. docs/PROTOCOL.md is the specification.
"""

from __future__ import annotations

import enum

import msgspec

PROTOCOL_VERSION = 2
SUPPORTED_VERSIONS: tuple[int, ...] = (1, 2)  # 2 adds FileBundle/FileBundleAck (docs/PROTOCOL.md §13.7)
BUNDLES_VERSION = 2  # the first version that carries FileBundle
NONCE_BYTES = 16
MAC_BYTES = 32


class PeerRole(enum.IntEnum):
    AGENT = 1
    RELAY = 2
    COLLECTOR = 3


class Code(enum.IntEnum):
    """Codes carried by Nack and Goodbye."""

    NORMAL = 0  # a clean close
    MALFORMED = 1  # a frame or body could not be decoded
    TOO_LARGE = 2  # a frame exceeded max_frame_bytes
    UNAUTHORIZED = 3  # unknown source or wrong token
    VERSION = 4  # no common protocol version
    CREDIT_EXCEEDED = 5  # more batches in flight than the window allows
    STORE_FAILED = 6  # the receiver could not commit; retry later
    SHUTTING_DOWN = 7  # the receiver is stopping; reconnect later
    TIMEOUT = 8  # the peer was silent or too slow
    PROTOCOL = 9  # a message arrived out of order
    SOURCE_MISMATCH = 10  # an agent sent a batch for a source it did not authenticate as
    INTERNAL = 11  # an unexpected error on the receiver


# Every subclass repeats ``frozen=True``: msgspec inherits it at runtime anyway, but type checkers do not,
# and mypy rejects a (seemingly) mutable subclass of a frozen Struct.
class _Msg(msgspec.Struct, array_like=True, frozen=True, tag_field="t"):
    pass


class Hello(_Msg, tag=1, frozen=True):
    """Client → server, first frame. ``nonce`` is the client's challenge half. ``spool``: an agent's spool
    id, random and fixed for the life of its spool (docs/PROTOCOL.md §7): a relay binds a source to the first
    spool that speaks for it and refuses another, which would number the same seqs again. Servers that
    predate it ignore the trailing element."""

    versions: list[int]
    role: int
    source: str
    nonce: bytes
    software: str = ""
    spool: str = ""


class Challenge(_Msg, tag=2, frozen=True):
    """Server → client: the chosen version and the server's nonce."""

    version: int
    nonce: bytes


class Auth(_Msg, tag=3, frozen=True):
    """Client → server: HMAC-SHA256 under the token; exact bytes in ``auth.py`` and docs/PROTOCOL.md §4."""

    mac: bytes


class Welcome(_Msg, tag=4, frozen=True):
    """Server → client: the session is open.

    ``acked_through`` is the highest seq of ``source`` up to which the server holds every item (0: none), so a
    reconnecting client can skip what already arrived. ``mac`` proves the server knows the token too
    (empty when the server runs without tokens).
    """

    credit: int
    max_frame_bytes: int
    heartbeat_ms: int
    acked_through: int
    mac: bytes = b""


class Batch(_Msg, tag=5, frozen=True):
    """A batch of records of one source. ``body`` is ``model.encode_body(records, codec)``."""

    batch_id: int
    source: str
    count: int
    codec: int
    body: bytes


class Ack(_Msg, tag=6, frozen=True):
    """The batch is durably committed. ``ranges`` are the inclusive seq ranges it covered."""

    batch_id: int
    source: str
    ranges: list[tuple[int, int]]


class Nack(_Msg, tag=7, frozen=True):
    """The batch was refused. ``retry`` says whether sending it again later can succeed."""

    batch_id: int
    code: int
    reason: str
    retry: bool


class Ping(_Msg, tag=8, frozen=True):
    nonce: int


class Pong(_Msg, tag=9, frozen=True):
    nonce: int


class Goodbye(_Msg, tag=10, frozen=True):
    """A clean close, or an error frame before the connection is dropped."""

    code: int
    reason: str


class Credit(_Msg, tag=11, frozen=True):
    """Server → client: the window is now ``credit`` batches in flight."""

    credit: int


# ---- whole files (tags 12-18, 26-29; 19 stays reserved) ----------------------------------------------
# docs/PROTOCOL.md §13. Up to FILES_IN_FLIGHT transfers per connection; chunks are byte ranges of the file.

SHA256_BYTES = 32


class FileOffer(_Msg, tag=12, frozen=True):
    """Client → server: a complete file, item ``(source, seq)``, with its manifest."""

    source: str
    seq: int
    path: str
    size: int
    mtime_ns: int
    sha256: bytes


class FileResume(_Msg, tag=13, frozen=True):
    """Server → client: send the offered file's bytes from ``offset`` on (what it holds already)."""

    source: str
    seq: int
    offset: int


class FileChunk(_Msg, tag=14, frozen=True):
    """Client → server: ``data`` is the file's bytes at ``offset``; chunks follow each other without gaps."""

    source: str
    seq: int
    offset: int
    data: bytes


class FileDone(_Msg, tag=15, frozen=True):
    """Client → server: every byte was sent; ``sha256`` is of the whole content as the client read it."""

    source: str
    seq: int
    sha256: bytes


class FileAck(_Msg, tag=16, frozen=True):
    """Server → client: the file is durably stored (fsynced, sha256 verified end to end)."""

    source: str
    seq: int


class FileProgress(_Msg, tag=18, frozen=True):
    """Server → client: the bytes of the file in transfer up to ``offset`` are on the receiver's disk."""

    source: str
    seq: int
    offset: int


class FileNack(_Msg, tag=17, frozen=True):
    """Server → client: the file was refused; ``retry`` says whether offering it again can succeed."""

    source: str
    seq: int
    code: int
    reason: str
    retry: bool


class FileWhole(_Msg, tag=26, frozen=True):
    """Client → server: a small file in one frame (offer, its whole content and done).

    Answered by FileAck or FileNack. ``sha256`` is the manifest's; the client sends the frame only if ``data``
    hashes to it.
    """

    source: str
    seq: int
    path: str
    size: int
    mtime_ns: int
    sha256: bytes
    data: bytes


class FileCancel(_Msg, tag=27, frozen=True):
    """Client → server: the client stops sending this file for now (no answer).

    ``discard``: the content was bad (it must never complete under this offer): the server deletes its
    partial; otherwise it keeps it, to resume.
    """

    source: str
    seq: int
    discard: bool


class BundledFile(msgspec.Struct, array_like=True, frozen=True):
    """One small file of a FileBundle: its id, manifest and whole content (as in FileWhole)."""

    source: str
    seq: int
    path: str
    size: int
    mtime_ns: int
    sha256: bytes
    data: bytes


class FileBundle(_Msg, tag=28, frozen=True):
    """Client → server (version 2): many small files in one frame, answered by one FileBundleAck.

    The client sends it only if every entry's ``data`` hashes to its ``sha256``.
    """

    bundle_id: int
    files: list[BundledFile]


class FileBundleAck(_Msg, tag=29, frozen=True):
    """Server → client: every file of the bundle is durably held, except those ``refused`` (one FileNack
    each, with its own ``retry``)."""

    bundle_id: int
    refused: list[FileNack]


# ---- reconciliation (tags 20-25; 12-18 are files, 19 reserved) -- -------------------------------
# docs/PROTOCOL.md §12. Summaries are (count, xor, sum) of 64-bit item mixes, as signed integers.


class RangeSummary(msgspec.Struct, array_like=True, frozen=True):
    """The relay's summary of the items of ``source`` with seqs ``first..last`` (inclusive)."""

    source: str
    first: int
    last: int
    count: int
    xor: int
    sum: int


class Differs(msgspec.Struct, array_like=True, frozen=True):
    """The collector's own summary of the query's range number ``index``, which differs from the relay's."""

    index: int
    count: int
    xor: int
    sum: int


class ReconcileQuery(_Msg, tag=20, frozen=True):
    """Relay → collector: are these ranges' summaries equal to yours? ``kind``: 1 records, 2 files."""

    query_id: int
    kind: int
    ranges: list[RangeSummary]


class ReconcileAnswer(_Msg, tag=21, frozen=True):
    """Collector → relay: only the ranges of the query that differ (empty: all equal)."""

    query_id: int
    differ: list[Differs]


class ItemsQuery(_Msg, tag=22, frozen=True):
    """Relay → collector: list your items of ``source`` in ``first..last`` (at most one bucket)."""

    query_id: int
    kind: int
    source: str
    first: int
    last: int


class ItemsAnswer(_Msg, tag=23, frozen=True):
    """Collector → relay: the seqs held, as ranges, and their 8-byte digests concatenated in seq order."""

    query_id: int
    ranges: list[tuple[int, int]]
    digests: bytes


class ResendRequest(_Msg, tag=24, frozen=True):
    """Relay → agent: your seqs in ``ranges`` never arrived; send them again as ordinary batches."""

    request_id: int
    source: str
    ranges: list[tuple[int, int]]


class Unavailable(_Msg, tag=25, frozen=True):
    """Agent → relay: of a ResendRequest, these seqs are no longer in my spool."""

    request_id: int
    source: str
    ranges: list[tuple[int, int]]


Message = (
    Hello
    | Challenge
    | Auth
    | Welcome
    | Batch
    | Ack
    | Nack
    | Ping
    | Pong
    | Goodbye
    | Credit
    | FileOffer
    | FileResume
    | FileChunk
    | FileDone
    | FileAck
    | FileNack
    | FileProgress
    | FileWhole
    | FileCancel
    | FileBundle
    | FileBundleAck
    | ReconcileQuery
    | ReconcileAnswer
    | ItemsQuery
    | ItemsAnswer
    | ResendRequest
    | Unavailable
)
