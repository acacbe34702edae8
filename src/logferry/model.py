"""The items logferry carries: records, their levels and digests, and the encoded batch bodies.

A record's identity is ``(source, seq)``; its payload never changes once it has a seq, and its digest is
computed over the payload (never over the seq), so a receiver can tell "the same item again" from "another
item under the same id". This module does no I/O.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence

import msgspec
import zstandard

DIGEST_BYTES = 8


class Level(enum.IntEnum):
    """Syslog severities (RFC 5424 §6.2.1): lower is more severe."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6
    DEBUG = 7

    @classmethod
    def parse(cls, text: str) -> Level:
        """Accept the usual spellings: ``error``, ``ERR``, ``warn``, ``crit``, ``3``."""
        key = text.strip().lower()
        if key.isdigit() and 0 <= int(key) <= 7:
            return cls(int(key))
        found = _LEVEL_ALIASES.get(key)
        if found is None:
            raise ValueError(
                f"unknown level {text!r}; expected one of {', '.join(m.name.lower() for m in cls)}"
            )
        return found


_LEVEL_ALIASES: dict[str, Level] = {m.name.lower(): m for m in Level} | {
    "emerg": Level.EMERGENCY,
    "panic": Level.EMERGENCY,
    "crit": Level.CRITICAL,
    "fatal": Level.CRITICAL,
    "err": Level.ERROR,
    "warn": Level.WARNING,
    "information": Level.INFO,
    "trace": Level.DEBUG,
}


class Record(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One log record. ``seq`` is given once, at the first durable point (spool or journal)."""

    seq: int
    ts_ns: int
    level: int
    host: str
    path: str
    msg: str
    fields: dict[str, str] = {}
    digest: bytes = b""


class Entry(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A record before it has an identity: what an input produces and a spool or journal numbers."""

    ts_ns: int
    level: int
    host: str
    path: str
    msg: str
    fields: dict[str, str] = {}

    def numbered(self, seq: int) -> Record:
        return make_record(seq, self.ts_ns, self.level, self.host, self.path, self.msg, self.fields)


class Fate(enum.IntEnum):
    """What the relay did with an item; every seq the relay saw has exactly one current fate."""

    FORWARDED = 1  # passed the rules unchanged and went to the outbox
    REDACTED = 2  # a rule masked part of it, then it went to the outbox
    HELD = 3  # kept in the held store by a rule, waiting for an operator
    DROPPED = 4  # discarded by a rule; counted, never silent
    RELEASED = 5  # was held; an operator released it to the outbox
    PURGED = 6  # was held; an operator deleted it


class Codec(enum.IntEnum):
    """How a batch body is encoded on the wire and in stores."""

    MSGPACK = 0
    ZSTD = 1


_payload_encoder = msgspec.msgpack.Encoder()
_body_encoder = msgspec.msgpack.Encoder()
_body_decoder = msgspec.msgpack.Decoder(list[Record])


def payload_digest(ts_ns: int, level: int, host: str, path: str, msg: str, fields: dict[str, str]) -> bytes:
    """The digest of a record's payload (everything but its seq)."""
    data = _payload_encoder.encode((ts_ns, level, host, path, msg, fields))
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).digest()


def make_record(
    seq: int,
    ts_ns: int,
    level: int,
    host: str,
    path: str,
    msg: str,
    fields: dict[str, str] | None = None,
) -> Record:
    """Build a record with its digest filled in."""
    f = fields or {}
    return Record(seq, ts_ns, level, host, path, msg, f, payload_digest(ts_ns, level, host, path, msg, f))


def with_payload(rec: Record, *, msg: str, fields: dict[str, str] | None = None) -> Record:
    """A copy of ``rec`` with a new message (and fields), digest recomputed; used by redaction."""
    f = rec.fields if fields is None else fields
    return make_record(rec.seq, rec.ts_ns, rec.level, rec.host, rec.path, msg, f)


def encode_body(records: Sequence[Record], codec: Codec = Codec.MSGPACK, level: int = 3) -> bytes:
    """Encode records as a batch body."""
    raw = _body_encoder.encode(records)
    if codec is Codec.ZSTD:
        return zstandard.ZstdCompressor(level=level).compress(raw)
    return raw


def decode_body(body: bytes, codec: int, max_bytes: int) -> list[Record]:
    """Decode a batch body; raises ``ValueError`` (or msgspec.DecodeError) on anything malformed.

    ``max_bytes`` bounds the decompressed size, so a zstd bomb cannot exhaust memory.
    """
    if codec == Codec.ZSTD:
        dctx = zstandard.ZstdDecompressor()
        try:
            raw = dctx.decompress(body, max_output_size=max_bytes)
        except zstandard.ZstdError as exc:
            raise ValueError(f"batch body is not valid zstd: {exc}") from exc
        if len(raw) > max_bytes:
            raise ValueError(f"decompressed batch body exceeds {max_bytes} bytes")
        body = raw
    elif codec != Codec.MSGPACK:
        raise ValueError(f"unknown batch codec {codec}")
    return _body_decoder.decode(body)
