"""What identifies a followed file and where the tail input stands in it: the checkpoint value.

A file is ``(st_dev, st_ino)`` plus a fingerprint: a short hash of its first ``fp_len`` bytes (up to
``fingerprint_bytes``; a younger file has a shorter one, which grows as the file does). An inode number is
reused by the filesystem once a file is deleted, and copy-truncate keeps the inode but replaces the content;
the fingerprint tells both apart from "the same file, grown".

The checkpoint is msgpack-encoded (array-like, so a few dozen bytes) and holds the offset up to which every
line is already spooled. It is only valid for a file whose head still hashes to its fingerprint.

This module must never decide policy (when to resume, when to start over); ``tail`` does that.
"""

from __future__ import annotations

import hashlib
import os

import msgspec


class TailCheckpoint(msgspec.Struct, array_like=True, frozen=True):
    """What a checkpoint value holds: resume at ``offset`` if the head still hashes to ``fp_hash``."""

    offset: int
    fp_len: int
    fp_hash: bytes
    path: str  # for people reading the spool; identity is the key and the fingerprint
    part: int = 0  # parts of an over-long line already emitted, when offset is in the middle of one


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(TailCheckpoint)


def encode_checkpoint(cp: TailCheckpoint) -> bytes:
    return _encoder.encode(cp)


def decode_checkpoint(value: bytes) -> TailCheckpoint:
    """Raises ``msgspec.DecodeError`` (or ``ValidationError``, a subclass) on a malformed value."""
    return _decoder.decode(value)


def fingerprint(head: bytes) -> bytes:
    """The 8-byte hash of a file's head (collisions between different heads are negligible)."""
    return hashlib.blake2b(head, digest_size=8).digest()


def pread(fd: int, size: int, offset: int) -> bytes:
    """Read up to ``size`` bytes at ``offset`` without moving a shared file position."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows has no pread; this descriptor is ours alone
    return os.read(fd, size)
