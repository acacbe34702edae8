"""The relay's whole files: received from agents (rules decide), kept content-addressed, forwarded.

Composes the layers for files the way ``relay.py`` does for records: ``FileIntake`` receives into the
content store under ``<data_dir>/files``; ``RelayFileLedger`` gives each file its fate by the rules and
journals it (``store/journal_files.py``) before the agent is acknowledged; ``RelayFileOutbox`` is the file
sender's queue (forwarded and released files the collector has not acknowledged). Content stays on disk
after the collector's acknowledgement so reconciliation can send it again, up to ``file_keep_bytes``
(``store/file_retention.py``); a dropped file's content is removed at once unless another item still needs
it. Nothing here decides a fate itself (the rules do).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from logferry.model import Fate
from logferry.pipeline.rules import RuleSet
from logferry.protocol.connection import Authenticated
from logferry.protocol.messages import FileNack, FileOffer
from logferry.store import journal_files
from logferry.store.content import ContentStore
from logferry.store.file_intake import FileIntake
from logferry.store.journal import Journal
from logferry.store.journal_files import FileItem
from logferry.transport.file_sender import OutgoingFile

log = logging.getLogger("logferry.relay")


class RelayFileLedger:
    """Journals a received file with its fate by the rules (``FileLedger`` of the relay's intake)."""

    def __init__(
        self, journal: Journal, rules: RuleSet, content: ContentStore, on_forward: Callable[[], None]
    ) -> None:
        self.journal = journal
        self.rules = rules
        self.content = content
        self.on_forward = on_forward
        self.fates: dict[Fate, int] = {}

    async def file_known(self, source: str, seq: int, sha256: bytes) -> bool:
        found = await self.journal.read_with(lambda c: journal_files.get(c, source, seq))
        if found is not None and found.sha256 != sha256:
            log.warning("file %s:%d offered again with other content; the first version is kept", source, seq)
        return found is not None

    async def file_commit(self, peer: Authenticated, offer: FileOffer) -> None:
        fate, rule = self.rules.decide_file(offer.source, offer.path, offer.size)
        item = FileItem(offer.source, offer.seq, offer.path, offer.size, offer.mtime_ns, offer.sha256,
                        fate, rule, time.time_ns(), False)  # fmt: skip
        await self.journal.write_with(lambda c: journal_files.commit(c, item))
        self.fates[fate] = self.fates.get(fate, 0) + 1
        log.info("file %s:%d (%s) %s%s", offer.source, offer.seq, offer.path, fate.name.lower(),
                 f" by rule {rule}" if rule else "")  # fmt: skip
        if fate is Fate.DROPPED:
            await self._drop_content(offer.sha256)
        elif fate is Fate.FORWARDED:
            self.on_forward()

    async def _drop_content(self, sha256: bytes) -> None:
        in_use = await self.journal.read_with(lambda c: journal_files.content_in_use(c, sha256))
        if not in_use:
            await asyncio.to_thread(self.content.remove, sha256)


class RelayFileOutbox:
    """Forwarded and released files waiting for the collector (the file sender's queue)."""

    def __init__(
        self, journal: Journal, content: ContentStore, on_acked: Callable[[], None] = lambda: None
    ) -> None:
        self.journal = journal
        self.content = content
        self.on_acked = on_acked  # the retention pass may remove older content now

    async def next_files(self, limit: int) -> list[OutgoingFile]:
        items = await self.journal.read_with(lambda c: journal_files.outbox(c, limit))
        return [
            OutgoingFile(f.source, f.seq, f.path, f.size, f.mtime_ns, f.sha256, self.content.path_for(h))
            for f in items
            if (h := f.sha256)
        ]

    async def acked(self, item: OutgoingFile) -> None:
        now = time.time_ns()
        await self.journal.write_with(lambda c: journal_files.mark_sent(c, item.source, item.seq, now))
        self.on_acked()

    async def refused(self, item: OutgoingFile, nack: FileNack) -> None:
        # The relay's copy was verified when it arrived; a refusal means the stored content is damaged.
        log.error("the collector refused file %s:%d (%s): %s; its content here may be damaged, check %s",
                  item.source, item.seq, item.path, nack.reason, item.local)  # fmt: skip


def file_intake(
    data_dir: Path, journal: Journal, rules: RuleSet, on_forward: Callable[[], None]
) -> FileIntake:
    """The relay's receiving side for files, content under ``<data_dir>/files``."""
    content = ContentStore(data_dir / "files")
    return FileIntake(content, RelayFileLedger(journal, rules, content, on_forward))
