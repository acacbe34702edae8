"""A role's background duties never die in silence: a duty that fails or ends before the stop is logged with
its traceback and stops the role with exit status 70 (lifecycle.StopSignal.watch); a bug in one sender
session is logged and the sender reconnects (transport/sender.py), over a real loopback file server. And
never loudly in a loop: the same connection failure is logged once, then as a periodic reminder."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import socket
from collections.abc import Collection
from pathlib import Path

import pytest

from logferry.errors import StoreError
from logferry.lifecycle import FAILED_DUTY_STATUS, StopSignal
from logferry.protocol.messages import PeerRole
from logferry.transport.file_sender import FileSender, Key, OutgoingFile
from logferry.transport.sender import SenderConfig
from tests.unit.file_server import Queue, file_server, ship_all


async def _fails() -> None:
    await asyncio.sleep(0)
    raise KeyError("the bug")


async def _returns() -> None:
    await asyncio.sleep(0)


async def test_a_failing_duty_stops_the_role_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    stop = StopSignal()
    stop.watch(asyncio.create_task(_fails()), "shipping files to relay:1")
    await asyncio.wait_for(stop.wait(), 5)
    assert stop.failed == "shipping files to relay:1"
    assert stop.status == FAILED_DUTY_STATUS == 70
    [record] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert "shipping files to relay:1 failed: 'the bug'" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError


async def test_a_duty_that_ends_on_its_own_stops_the_role_unless_it_may(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = StopSignal()
    done = stop.watch(asyncio.create_task(_returns()), "re-hashing", may_finish=True)
    await done
    await asyncio.sleep(0)  # the done callbacks run
    assert not stop.event.is_set() and stop.status == 0
    stop.watch(asyncio.create_task(_returns()), "forwarding")
    await asyncio.wait_for(stop.wait(), 5)
    assert stop.failed == "forwarding" and stop.status == FAILED_DUTY_STATUS
    assert "forwarding ended on its own" in caplog.text


async def test_a_duty_cancelled_before_the_role_winds_down_stops_it(caplog: pytest.LogCaptureFixture) -> None:
    stop = StopSignal()
    forever = stop.watch(asyncio.create_task(asyncio.Event().wait()), "forwarding")
    await asyncio.sleep(0)
    forever.cancel()  # a cancellation that leaked into it: nobody else cancels a running duty
    await asyncio.wait_for(stop.wait(), 5)
    assert stop.failed == "forwarding" and stop.status == FAILED_DUTY_STATUS
    assert "forwarding failed: forwarding was cancelled" in caplog.text


async def test_duties_that_end_or_fail_while_stopping_do_not_fail_the_role(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = StopSignal()
    forever = stop.watch(asyncio.create_task(asyncio.Event().wait()), "forwarding")
    stop.trigger("SIGTERM")
    forever.cancel()
    late = stop.watch(asyncio.create_task(_fails()), "reconciling")
    await asyncio.gather(forever, late, return_exceptions=True)
    await asyncio.sleep(0)
    assert stop.status == 0  # asked to stop: the error is said, the exit stays clean
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "reconciling failed while stopping" in record.getMessage() and record.exc_info is not None


async def test_duties_may_end_once_the_role_winds_down_by_itself(caplog: pytest.LogCaptureFixture) -> None:
    stop = StopSignal()  # e.g. the --stdin agent, done once all is acknowledged: no signal came
    stop.wind_down()
    await stop.watch(asyncio.create_task(_returns()), "shipping records")
    await asyncio.sleep(0)
    assert not stop.event.is_set() and stop.status == 0 and caplog.text == ""


async def test_a_duty_that_is_not_fatal_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    stop = StopSignal()
    task = stop.watch(asyncio.create_task(_fails()), "log analysis", fatal=False)
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert not stop.event.is_set() and stop.status == 0
    assert "log analysis stopped: 'the bug'; the rest goes on without it" in caplog.text


class BuggyOnce(Queue):
    """A queue whose first read raises what no transport error handler expects."""

    def __init__(self, files: list[OutgoingFile], error: BaseException) -> None:
        super().__init__(files)
        self.error = error
        self.raised = False

    async def next_files(self, limit: int, busy: Collection[Key] = frozenset()) -> list[OutgoingFile]:
        if not self.raised:
            self.raised = True
            raise self.error
        return await super().next_files(limit, busy)


async def _ship_one(
    tmp_path: Path, error: BaseException
) -> tuple[BuggyOnce, FileSender, set[tuple[str, int]]]:
    """Ship one file over a real loopback session whose queue raises ``error`` once; what the server holds."""
    path = tmp_path / "a.log"
    path.write_bytes(b"x" * 1000)
    st = path.stat()
    item = OutgoingFile("dev/files", 1, str(path), st.st_size, st.st_mtime_ns,
                        hashlib.sha256(path.read_bytes()).digest(), str(path))  # fmt: skip
    queue = BuggyOnce([item], error)
    async with file_server(tmp_path / "store") as server:
        config = SenderConfig("127.0.0.1", server.port, "dev", PeerRole.AGENT, None, reconnect_min_s=0.05)
        await ship_all(FileSender(config, queue), queue)
    return queue, set(server.ledger.held)


async def test_a_store_failure_ends_the_session_without_calling_it_a_bug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue, held = await _ship_one(tmp_path, StoreError("files store files.db: database or disk is full"))
    assert queue.acknowledged == [1] and ("dev/files", 1) in held
    [record] = [r for r in caplog.records if "disk is full" in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is None and "a bug" not in record.getMessage()
    assert "ended: files store files.db: database or disk is full; trying again" in record.getMessage()


@pytest.mark.parametrize(
    "error",
    [RuntimeError("a bug in the queue"), asyncio.CancelledError("a bug in the queue")],
    ids=["exception", "leaked-cancellation"],
)
async def test_a_bug_in_a_session_is_logged_and_the_sender_reconnects(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error: BaseException
) -> None:
    queue, held = await _ship_one(tmp_path, error)
    assert queue.raised and queue.acknowledged == [1]
    assert ("dev/files", 1) in held
    [record] = [r for r in caplog.records if "a bug in the queue" in r.getMessage()]
    assert record.levelno == logging.ERROR and "reconnecting" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is type(error)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _retry_for(sender: FileSender, seconds: float) -> None:
    stopping = asyncio.Event()
    running = asyncio.create_task(sender.run(stopping))
    await asyncio.sleep(seconds)
    stopping.set()
    await asyncio.wait_for(running, 5)


async def test_the_same_connection_failure_is_logged_once_then_as_a_reminder(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="logferry.sender")
    port = _free_port()  # nobody listens there: every attempt is refused
    config = SenderConfig(
        "127.0.0.1", port, "dev", PeerRole.AGENT, None, reconnect_min_s=0.01, reconnect_max_s=0.02
    )
    sender = FileSender(config, Queue([]))
    await _retry_for(sender, 0.5)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    again = [r for r in caplog.records if r.levelno == logging.DEBUG and r.getMessage().endswith("(again)")]
    assert len(warnings) == 1 and f"cannot connect to 127.0.0.1:{port}" in warnings[0]
    assert len(again) >= 5, "the sender kept trying, quietly"
    caplog.clear()
    sender._ended.period_s = 0.1  # the reminder's period, shortened
    await _retry_for(sender, 0.5)
    reminders = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert 2 <= len(reminders) <= 7 and all(f"127.0.0.1:{port}" in m for m in reminders)
    assert re.search(r"\(again \d+ times in the last \d+ s\)$", reminders[-1])


async def test_a_failure_after_a_session_opened_is_news_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="logferry.sender")
    port = _free_port()
    config = SenderConfig(
        "127.0.0.1", port, "dev", PeerRole.AGENT, None, reconnect_min_s=0.01, reconnect_max_s=0.02
    )
    sender = FileSender(config, Queue([]))
    await _retry_for(sender, 0.2)  # refused, logged once
    async with file_server(tmp_path / "store", port=port):
        await _retry_for(sender, 0.3)  # connected
    await _retry_for(sender, 0.2)  # refused again: said again
    refused = [
        r for r in caplog.records if r.levelno == logging.WARNING and "cannot connect" in r.getMessage()
    ]
    assert len(refused) == 2
    assert all(r.getMessage().startswith("files session with") for r in refused)  # which of a hop's sessions
    assert any(f"connected to 127.0.0.1:{port} as dev for files" in r.getMessage() for r in caplog.records)
