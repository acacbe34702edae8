"""Receiving whole files on a server (relay or collector): partial → verified content → journaled item.

``FileIntake`` is the ``transport.serve.FileSink`` both servers use. An offer is answered from the disk:
``None`` (the item is journaled already: acknowledge at once) or the size of this version's partial file
(the resume offset: no byte that reached our disk is asked for again, after a cut or a restart). Chunks are
appended in order; at ``FileDone`` the partial is fsynced, its sha256 checked against the offer and the
sender's, moved to its content address, and only then is the item handed to the role's ``FileLedger``
(rules, journal, manifest table), whose commit makes the acknowledgement true.

Counters (``IntakeStats``) say how many bytes arrived and how many were resumed rather than resent; the
integration tests read them from the log lines. This module must never acknowledge a file before the ledger
committed it, never keep a whole file in memory, and never let a mismatched file reach a content address.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import Code, FileChunk, FileDone, FileOffer
from logferry.store.content import ContentMismatch, ContentStore, Partial
from logferry.transport.serve import BatchRefused

log = logging.getLogger("logferry.files")


class FileLedger(Protocol):
    """Where a role journals the files it received."""

    async def file_known(self, source: str, seq: int, sha256: bytes) -> bool:
        """True if the item is journaled already (the sender lost our ack): acknowledge without a transfer."""
        ...

    async def file_commit(self, peer: Authenticated, offer: FileOffer) -> None:
        """Journal the item (its content is durable at ``content.path_for(offer.sha256)``)."""
        ...


@dataclass
class IntakeStats:
    offers: int = 0
    files: int = 0  # transfers completed and committed
    bytes_received: int = 0  # chunk bytes that reached the disk
    bytes_resumed: int = 0  # bytes not asked for again because a partial already held them
    already_held: int = 0  # offers acknowledged at once


class FileIntake:
    def __init__(self, content: ContentStore, ledger: FileLedger) -> None:
        self.content = content
        self.ledger = ledger
        self.stats = IntakeStats()
        self._open: dict[tuple[str, int], tuple[FileOffer, Partial, int]] = {}  # + bytes this transfer

    async def file_offered(self, peer: Authenticated, offer: FileOffer) -> int | None:
        self.stats.offers += 1
        key = (offer.source, offer.seq)
        self._drop(key)  # an earlier connection's transfer of the same item: its handle is stale
        if await self.ledger.file_known(offer.source, offer.seq, offer.sha256):
            self.stats.already_held += 1
            return None
        partial = await asyncio.to_thread(
            self.content.open_partial, offer.source, offer.seq, offer.sha256, offer.size
        )
        self._open[key] = (offer, partial, 0)
        self.stats.bytes_resumed += partial.size
        log.info("receiving file %s:%d (%s, %d bytes) from %s at offset %d",
                 offer.source, offer.seq, offer.path, offer.size, peer.source, partial.size)  # fmt: skip
        return partial.size

    async def file_chunk(self, peer: Authenticated, chunk: FileChunk) -> None:
        key = (chunk.source, chunk.seq)
        found = self._open.get(key)
        if found is None:
            raise BatchRefused(Code.INTERNAL, f"file {chunk.source}:{chunk.seq} is not open here", retry=True)
        offer, partial, got = found
        try:
            await asyncio.to_thread(partial.write, chunk.offset, chunk.data)
        except (OSError, ValueError) as exc:
            self._drop(key)
            raise BatchRefused(Code.STORE_FAILED, f"cannot write file {chunk.source}:{chunk.seq}: {exc}",
                               retry=True) from exc  # fmt: skip
        self._open[key] = (offer, partial, got + len(chunk.data))
        self.stats.bytes_received += len(chunk.data)

    async def file_finished(self, peer: Authenticated, done: FileDone) -> None:
        key = (done.source, done.seq)
        found = self._open.pop(key, None)
        if found is None:
            raise BatchRefused(Code.INTERNAL, f"file {done.source}:{done.seq} is not open here", retry=True)
        offer, partial, got = found
        if done.sha256 != offer.sha256:
            partial.close()
            partial.path.unlink(missing_ok=True)
            raise BatchRefused(
                Code.MALFORMED,
                f"file {done.source}:{done.seq} changed while it was sent (sha256 differs from the offer); "
                "offer the new content as a new item",
                retry=False,
            )
        try:
            await asyncio.to_thread(self.content.commit, partial, offer.sha256)
        except ContentMismatch as exc:
            raise BatchRefused(Code.STORE_FAILED, f"file {done.source}:{done.seq}: {exc}; send it again",
                               retry=True) from exc  # fmt: skip
        await self.ledger.file_commit(peer, offer)
        self.stats.files += 1
        log.info("stored file %s:%d (%s, %d bytes, sha256 %s…): %d bytes received on this connection",
                 offer.source, offer.seq, offer.path, offer.size, offer.sha256.hex()[:16], got)  # fmt: skip

    def _drop(self, key: tuple[str, int]) -> None:
        found = self._open.pop(key, None)
        if found is not None:
            found[1].close()

    def close(self) -> None:
        for key in list(self._open):
            self._drop(key)
