"""logferry/1 framing: a 4-byte big-endian body length, then that many bytes of msgpack (one message).

``encode_frame`` turns a message into bytes; ``FrameDecoder`` turns a stream of bytes, cut anywhere, back
into messages. The decoder bounds its memory: a header announcing more than ``max_frame_bytes`` is refused as
soon as its four bytes arrive, before any of the body is buffered.

This module must never do I/O, read a clock, or decode a batch body (that is ``model.decode_body``'s job,
done by the application once it decided to accept the batch). Every failure it reports is a
``RemoteProtocolError`` whose ``code`` is what goes back to the peer in a Goodbye.
"""

from __future__ import annotations

import struct
from typing import TypeAlias

import msgspec

from logferry.errors import RemoteProtocolError
from logferry.protocol.messages import Code, FileChunk, Message

HEADER_BYTES = 4
MAX_FRAME_LIMIT = 2**32 - 1  # the largest length the 4-byte header can express
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024

_HEADER = struct.Struct(">I")
# Compacting moves the unread tail to the front of the buffer. Doing it only once the read offset passed
# both this floor and half the buffer keeps the cost amortised O(1) per byte (never quadratic).
_COMPACT_FLOOR = 64 * 1024
# A frame of at least this many body bytes that is not complete yet is gathered in a buffer of its own
# size, kept for the next large frame (``FrameDecoder._assemble``).
ASSEMBLE_MIN_BYTES = 256 * 1024

# One encoder and one decoder for the whole process: building a typed msgspec decoder is far more expensive
# than decoding a frame, and both are safe to share (they keep no per-call state).
_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)


def encode_body(msg: Message) -> bytes:
    """The msgpack body of ``msg`` without its header (for size checks and tests)."""
    return _encoder.encode(msg)


def encode_frame(msg: Message) -> bytes:
    """One complete frame: header and body."""
    return bytes(encode_frame_buffer(msg))


def encode_frame_buffer(msg: Message) -> bytearray:
    """``encode_frame`` without the final copy into bytes: for a 4 MiB file chunk that copy cost as much as
    encoding it. The caller must not change the buffer before it is written."""
    buf = bytearray(HEADER_BYTES)
    # encode_into writes the body after the reserved header, which saves concatenating a ~200 KB body.
    _encoder.encode_into(msg, buf, HEADER_BYTES)
    size = len(buf) - HEADER_BYTES
    if size > MAX_FRAME_LIMIT:
        raise ValueError(f"a {type(msg).__name__} of {size} bytes cannot be framed (limit {MAX_FRAME_LIMIT})")
    _HEADER.pack_into(buf, 0, size)
    return buf


# A frame written in pieces, in order (``encode_chunk_frame``; ``Wire.write`` takes them).
FramePiece: TypeAlias = bytes | bytearray | memoryview
# A FileChunk carrying at least this many bytes is framed without copying them (``encode_chunk_frame``).
SPLIT_PAYLOAD_MIN = 64 * 1024
_BIN16_MAX = 0xFFFF


def encode_chunk_frame(chunk: FileChunk) -> list[FramePiece]:
    """A FileChunk's frame in pieces to be written in order: the same bytes as ``encode_frame``, but data of
    ``SPLIT_PAYLOAD_MIN`` bytes or more is the last piece, a view of ``chunk.data`` itself. Copying 4 MiB
    into the frame was a tenth of the relay's event-loop time while it forwarded a large file."""
    size = len(chunk.data)
    if size < SPLIT_PAYLOAD_MIN:
        return [encode_frame_buffer(chunk)]
    # Messages are msgpack arrays in field order and data is FileChunk's last field: the body of the same
    # chunk without data ends with an empty bin8 (c4 00), which the bin header of the real length replaces.
    empty = _encoder.encode(FileChunk(chunk.source, chunk.seq, chunk.offset, b""))
    bin_head = struct.pack(">BH", 0xC5, size) if size <= _BIN16_MAX else struct.pack(">BI", 0xC6, size)
    body = len(empty) - 2 + len(bin_head) + size
    if body > MAX_FRAME_LIMIT:
        raise ValueError(f"a FileChunk of {body} bytes cannot be framed (limit {MAX_FRAME_LIMIT})")
    return [_HEADER.pack(body) + empty[:-2] + bin_head, memoryview(chunk.data)]


def decode_frame_body(body: bytes | memoryview) -> Message:
    """Decode one frame body; raises ``RemoteProtocolError(MALFORMED)`` naming what was wrong."""
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec reports bad UTF-8 in a str this way
        raise RemoteProtocolError(
            f"a frame of {len(body)} bytes is not a logferry/1 message: {exc}", code=Code.MALFORMED
        ) from exc


class FrameDecoder:
    """Incremental frame parser: ``feed`` bytes as they come, then call ``next_message`` until it is None.

    The buffer holds at most one incomplete frame plus whatever the last ``feed`` brought, provided the caller
    drains ``next_message`` after each ``feed`` (the connection does). Once an error was raised the stream
    cannot be resynchronised, so every later call raises the same error again.
    """

    __slots__ = ("_buf", "_error", "_filled", "_frame", "_max_frame_bytes", "_need", "_pos")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if not 1 <= max_frame_bytes <= MAX_FRAME_LIMIT:
            raise ValueError(
                f"max_frame_bytes must be between 1 and {MAX_FRAME_LIMIT}, got {max_frame_bytes}"
            )
        self._max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._pos = 0  # read offset into _buf: consuming a frame moves it instead of shifting the buffer
        self._frame = bytearray()  # a large frame being gathered (header included), reused for the next one
        self._need = 0  # the size of that frame; 0: none is being gathered
        self._filled = 0  # how much of it arrived
        self._error: RemoteProtocolError | None = None

    @property
    def max_frame_bytes(self) -> int:
        return self._max_frame_bytes

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a message."""
        return len(self._buf) - self._pos + self._filled

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes; raises at once if the frame now starting announces an oversized body."""
        if self._error is not None:
            raise self._error
        if self._need:
            take = min(self._need - self._filled, len(data))
            with memoryview(data) as view:
                self._frame[self._filled : self._filled + take] = view[:take]
                self._filled += take
                if take == len(view):
                    return
                self._buf += view[take:]  # the frames after the one being gathered
        else:
            self._buf += data
        self._check_header()

    def next_message(self) -> Message | None:
        """The next complete message, or None when more bytes are needed."""
        if self._error is not None:
            raise self._error
        if self._need:
            if self._filled < self._need:
                return None
            with memoryview(self._frame) as whole, whole[HEADER_BYTES : self._need] as body:
                try:
                    msg = decode_frame_body(body)
                except RemoteProtocolError as exc:
                    self._error = exc
                    raise
            self._need = self._filled = 0
            return msg
        size = self._check_header()
        if size is None:
            return None
        start = self._pos + HEADER_BYTES
        end = start + size
        if len(self._buf) < end:
            if size >= ASSEMBLE_MIN_BYTES:
                self._assemble(HEADER_BYTES + size)
            return None
        # Decode straight from the buffer; the views are released before the buffer is resized
        # (a bytearray with a live export cannot change size).
        with memoryview(self._buf) as whole, whole[start:end] as body:
            try:
                msg = decode_frame_body(body)
            except RemoteProtocolError as exc:
                self._error = exc
                raise
        self._pos = end
        self._compact()
        if self._frame and size < ASSEMBLE_MIN_BYTES:
            # The large frames are over (a file's last chunk was followed by its FileDone): a connection
            # keeps a frame-sized buffer only while large frames keep coming.
            self._frame = bytearray()
        return msg

    def _assemble(self, need: int) -> None:
        """Gather the incomplete frame at the read offset (``need`` bytes with its header) in ``_frame``.

        Growing the buffer for each piece of a 4 MiB chunk, freeing it after the frame and growing it again
        for the next made the allocator move and zero megabytes per chunk: in a loopback test, receiving
        1 GiB in 4 MiB chunks took 2.7 CPU-seconds, with this buffer kept from frame to frame 0.6."""
        if len(self._frame) < need:
            self._frame = bytearray(need)
        with memoryview(self._buf) as whole, whole[self._pos :] as pending:
            self._filled = len(pending)
            self._frame[: self._filled] = pending
        self._need = need
        self._buf.clear()
        self._pos = 0

    def _check_header(self) -> int | None:
        """Validate the header of the frame at the read offset; its body size, or None if incomplete."""
        if len(self._buf) - self._pos < HEADER_BYTES:
            return None
        (size,) = _HEADER.unpack_from(self._buf, self._pos)
        if size == 0:
            self._error = RemoteProtocolError(
                "a frame announced an empty body; every frame carries one message", code=Code.MALFORMED
            )
        elif size > self._max_frame_bytes:
            self._error = RemoteProtocolError(
                f"a frame announced {size} bytes, over the limit of {self._max_frame_bytes} "
                "(max_frame_bytes); raise the limit on this side or send smaller batches",
                code=Code.TOO_LARGE,
            )
        if self._error is not None:
            raise self._error
        return int(size)

    def _compact(self) -> None:
        if self._pos == len(self._buf):
            # The common case: every byte was consumed, so dropping them costs nothing.
            self._buf.clear()
            self._pos = 0
        elif self._pos >= _COMPACT_FLOOR and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
