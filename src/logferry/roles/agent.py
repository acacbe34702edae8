"""The agent (device side): inputs → durable spool → the relay.

An input's lines are numbered and committed to the spool together with the input's read position, in one
transaction; only then does the input read on. The sender ships unacknowledged spool batches to the relay and
marks them acknowledged when the relay says they are durable there. After a reconnect everything the relay
does not already hold is sent again. With ``exit_when_done`` (stdin) the agent exits once its inputs ended and
the relay acknowledged everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Protocol

from logferry.config import (
    AgentConfig,
    Compression,
    FilesInput,
    StdinInput,
    TailInput,
    parse_address,
    read_token,
)
from logferry.inputs import Emit, stdin_source
from logferry.inputs import StdinInput as StdinReader
from logferry.inputs import TailInput as TailReader
from logferry.inputs.files import FolderWatch, after_ack
from logferry.lifecycle import StopSignal, announce_ready
from logferry.model import Codec, Entry, encode_body
from logferry.protocol.files import files_source
from logferry.protocol.messages import Ack, FileNack, PeerRole, ResendRequest, Welcome
from logferry.roles.server import store_durability
from logferry.store.file_queue import FileQueueStore, FileState
from logferry.store.missing import subtract
from logferry.store.runs import Range, coalesce, ranges_of
from logferry.store.spool import Spool
from logferry.tls import agent_tls
from logferry.transport.file_sender import FileSender, Key, OutgoingFile
from logferry.transport.sender import Outgoing, Sender, SenderConfig

log = logging.getLogger("logferry.agent")

MAX_RESEND_SEQS = 100_000  # seqs one ResendRequest is answered for (bounds memory)
RESEND_BATCH_RECORDS = 1_000


class RunsWithEmit(Protocol):
    """An input given to the agent in code (e.g. the Python logging handler's queue)."""

    async def run(self, emit: Emit) -> None: ...


class SpoolQueue:
    """The spool seen as the sender's durable queue; a batch's key is its first seq."""

    def __init__(self, spool: Spool, source: str) -> None:
        self.spool = spool
        self.source = source
        self.progress = asyncio.Event()  # set after every ack, for whoever waits for the spool to drain
        self._resend_key = 1 << 62  # batch ids of resends: apart from spool keys (first seqs)

    async def pending(self, after_key: int, max_batches: int) -> list[Outgoing]:
        rows = await self.spool.pending(after_key, max_batches)
        return [Outgoing(b.first_seq, self.source, b.count, b.codec, b.body) for b in rows]

    async def acked(self, key: int, ack: Ack) -> None:
        await self.spool.ack(ack.ranges)
        self.progress.set()

    async def resend(self, request: ResendRequest) -> tuple[list[Outgoing], list[Range]]:
        """A relay's ResendRequest: the records still spooled, as batches; the seqs that are not, as ranges.

        One request is answered for at most ``MAX_RESEND_SEQS`` seqs; the relay asks again for the rest.
        Resent batches take keys far above any first seq, so they never disturb the pending order.
        """
        batches: list[Outgoing] = []
        unavailable: list[Range] = []
        budget = MAX_RESEND_SEQS
        for lo, hi in coalesce(request.ranges):
            end = min(hi, lo + budget - 1)
            if end < lo:
                break
            budget -= end - lo + 1
            records = await self.spool.records(lo, end)
            unavailable.extend(subtract([(lo, end)], ranges_of(r.seq for r in records)))
            for i in range(0, len(records), RESEND_BATCH_RECORDS):
                chunk = records[i : i + RESEND_BATCH_RECORDS]
                self._resend_key += 1
                batches.append(Outgoing(self._resend_key, self.source, len(chunk), Codec.MSGPACK,
                                        encode_body(chunk)))  # fmt: skip
        return batches, unavailable


class SpoolWriter:
    """The inputs' ``emit``: appends to the spool with up to ``depth`` appends in flight.

    An input may read its next batch while the previous one commits: the spool's writer queue keeps appends
    in the order they were made, and each carries its own read position, so after a crash the input resumes
    exactly after the last batch that was committed. A failed append stops the inputs.
    """

    def __init__(self, spool: Spool, notify: Callable[[], None], depth: int = 4) -> None:
        self.spool = spool
        self.notify = notify
        self._slots = asyncio.Semaphore(depth)
        self._in_flight: set[asyncio.Future[tuple[int, int]]] = set()
        self._failure: BaseException | None = None

    async def emit(self, entries: list[Entry], checkpoints: dict[str, bytes]) -> None:
        if self._failure is not None:
            raise self._failure
        await self._slots.acquire()
        await self.spool.wait_for_room()
        task = asyncio.ensure_future(self.spool.append(entries, checkpoints))  # queued now, in order
        self._in_flight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[tuple[int, int]]) -> None:
        self._in_flight.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            self._failure = task.exception()
            log.error("cannot write to the spool: %s", self._failure)
        else:
            self.notify()

    async def flush(self) -> None:
        """Wait for the appends in flight; raise the first failure."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight))
        if self._failure is not None:
            raise self._failure


class AgentFiles:
    """The file queue as the file sender's queue; what happens to a shipped file is the input's choice."""

    def __init__(self, queue: FileQueueStore, watches: list[FolderWatch]) -> None:
        self.queue = queue
        self.watches = watches

    async def next_files(self, limit: int, busy: Collection[Key] = frozenset()) -> list[OutgoingFile]:
        return await self.queue.next_files(limit, busy)

    async def acked(self, item: OutgoingFile) -> None:
        await self.acked_many([item])

    async def acked_many(self, items: list[OutgoingFile]) -> None:
        await self.queue.settle_many([item.seq for item in items], FileState.ACKED)
        if not any(w.spec.move_to or w.spec.delete_after for w in self.watches):
            return  # every input keeps its shipped files: no need to know whose each one is
        # The first watch whose folder holds the file decides; folders globbed once per group, not per file.
        folders = [(w.spec, set(w.folders())) for w in self.watches]
        done = [
            (spec, local)
            for local in (Path(item.local) for item in items)
            if (spec := next((s for s, found in folders if str(local.parent) in found), None))
        ]
        if done:
            await asyncio.to_thread(_after_acks, done)

    async def refused(self, item: OutgoingFile, nack: FileNack) -> None:
        # Refused for good (it changed while it was sent): the watch queues the new content as a new item.
        await self.queue.settle(item.seq, FileState.REFUSED)
        log.warning("file %s:%d (%s) was refused: %s", item.source, item.seq, item.path, nack.reason)


def _after_acks(done: list[tuple[FilesInput, Path]]) -> None:
    for spec, local in done:
        after_ack(spec, local)


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        exit_when_done: bool = False,
        extra_inputs: Sequence[RunsWithEmit] = (),
        announce: bool = True,
    ) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.exit_when_done = exit_when_done
        self.extra_inputs = tuple(extra_inputs)
        self.announce = announce  # False when embedded (the logging handler): stdout is not ours
        self.host = socket.gethostname()

    async def run(self, stop: StopSignal) -> int:
        cfg = self.config
        if not cfg.inputs and not self.extra_inputs:
            log.warning("no inputs configured: add [[agent.inputs]] to the config, or use --tail/--stdin")
        host, port = parse_address(cfg.relay)
        relay_tls = agent_tls(cfg, host)  # checked before the spool opens: a bad certificate stops the start
        spool = await Spool.open(
            self.data_dir / "spool.db",
            store_durability(cfg.durability),
            max_unacked_bytes=cfg.max_spool_bytes,
            keep_acked_bytes=cfg.keep_acked_bytes,
            codec=Codec.ZSTD if cfg.compression is Compression.ZSTD else Codec.MSGPACK,
        )
        token = read_token(cfg.token, cfg.token_file, "agent.token")
        queue = SpoolQueue(spool, cfg.source)
        sender = Sender(
            SenderConfig(
                host=host,
                port=port,
                source=cfg.source,
                role=PeerRole.AGENT,
                token=token.encode() if token else None,
                connect_timeout_s=cfg.connect_timeout_s,
                reconnect_min_s=cfg.reconnect_min_s,
                reconnect_max_s=cfg.reconnect_max_s,
                tls=relay_tls.context if relay_tls else None,
                server_hostname=relay_tls.server_hostname if relay_tls else "",
                spool=spool.spool_id,
            ),
            queue,
            on_open=lambda welcome: self._on_open(spool, welcome),
            on_resend=queue.resend,
        )

        writer = SpoolWriter(spool, sender.notify)
        sender_stop = asyncio.Event()
        file_specs = [i for i in cfg.inputs if isinstance(i, FilesInput)]
        file_queue: FileQueueStore | None = None
        if file_specs:
            file_queue = await FileQueueStore.open(
                self.data_dir / "files.db", files_source(cfg.source), store_durability(cfg.durability)
            )
        checkpoints = await spool.checkpoints()
        # No await from here to the try below, whose finally winds the duties down: a start that fails
        # never leaves a duty running to be cancelled as if by a bug.
        shipping = stop.watch(
            asyncio.create_task(sender.run(sender_stop)), f"shipping records to {cfg.relay}"
        )
        file_tasks: list[asyncio.Task[None]] = []
        if file_queue is not None:
            # Files travel on a session of their own: a large file never holds the logs back.
            file_sender = FileSender(sender.config, AgentFiles(file_queue, []),
                                     chunk_bytes=min(s.chunk_bytes for s in file_specs))  # fmt: skip
            watches = [FolderWatch(s, file_queue, file_sender.notify) for s in file_specs]
            file_sender.files = AgentFiles(file_queue, watches)
            file_tasks = [
                stop.watch(asyncio.create_task(w.run()), f"watching {', '.join(w.spec.paths)}")
                for w in watches
            ]
            shipping_files = asyncio.create_task(file_sender.run(sender_stop))
            file_tasks.append(stop.watch(shipping_files, f"shipping files to {cfg.relay}"))
        readers = [
            asyncio.create_task(self._run_input(i, checkpoints, writer.emit))
            for i in cfg.inputs
            if not isinstance(i, FilesInput)
        ]
        readers += [asyncio.create_task(extra.run(writer.emit)) for extra in self.extra_inputs]
        if self.announce:
            announce_ready("agent", {}, source=cfg.source, relay=cfg.relay, data=str(self.data_dir))
        try:
            if self.exit_when_done:
                done = asyncio.create_task(self._drained(queue, readers, writer))
                stopped = asyncio.create_task(stop.wait())
                await asyncio.wait({done, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                done.cancel()
            else:
                await stop.wait()
        finally:
            stop.wind_down()  # the duties end now: that is no failure
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await writer.flush()
            sender_stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shipping, 10)
            for task in file_tasks:
                task.cancel()
            await asyncio.gather(*file_tasks, return_exceptions=True)
            if file_queue is not None:
                await file_queue.close()
            stats = await spool.stats()
            await spool.close()
        log.info("agent stopped: %d records acknowledged by the relay, %d waiting in the spool",
                 stats.acked_through, stats.unacked_records)  # fmt: skip
        return stop.status

    async def _on_open(self, spool: Spool, welcome: Welcome) -> None:
        """Skip what the relay already holds (its ack was lost in a crash)."""
        held = welcome.acked_through
        if held >= spool.next_seq:
            log.error(
                "the relay already holds seqs up to %d for source %r but this spool only gave up to %d: "
                "another device uses the same source name, or this spool was reset; give each device "
                "its own source",
                held, self.config.source, spool.next_seq - 1,
            )  # fmt: skip
            return
        if held > spool.acked_through:
            await spool.ack([(1, held)])

    async def _drained(
        self, queue: SpoolQueue, readers: list[asyncio.Task[None]], writer: SpoolWriter
    ) -> None:
        """Wait until every input ended and the relay acknowledged all that they produced."""
        await asyncio.gather(*readers)
        await writer.flush()
        spool = queue.spool
        while spool.acked_through < spool.next_seq - 1:
            queue.progress.clear()
            await queue.progress.wait()

    async def _run_input(
        self, spec: TailInput | StdinInput | FilesInput, checkpoints: dict[str, bytes], emit: Emit
    ) -> None:
        now_ns = time.time_ns
        if isinstance(spec, StdinInput):
            async with stdin_source(sys.stdin.buffer) as stream:
                reader = StdinReader(
                    stream,
                    self.host,
                    now_ns,
                    max_line_bytes=spec.max_line_bytes,
                    max_batch_records=self.config.batch_max_records,
                    max_batch_wait_s=self.config.batch_max_wait_s,
                    multiline_start=spec.multiline_start or None,
                    multiline_timeout_s=spec.multiline_timeout_s,
                    detect_level=spec.detect_level,
                    encoding=spec.encoding,
                )
                await reader.run(emit)
            return
        assert isinstance(spec, TailInput)  # files inputs run as FolderWatch, beside the record inputs
        await TailReader(spec, checkpoints, self.host, now_ns).run(emit)
