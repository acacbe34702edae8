"""Wire.write over a real loopback socket: large frames go to the transport in slices, yet every frame
arrives whole and in its writer's order, whatever other tasks write meanwhile, and a write cancelled
halfway still leaves no half frame on the wire; the same for frames written as pieces (a chunk's header
and its data, ``encode_chunk_frame``)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import pytest

from logferry.protocol.connection import ClientConnection
from logferry.protocol.framing import FramePiece
from logferry.transport.wire import WRITE_SLICE, Wire


def frame(tag: int, size: int) -> bytes:
    """A length-prefixed frame whose payload says which it is (tag) in every byte."""
    return size.to_bytes(4, "big") + bytes([tag % 251]) * size


def pieces(data: bytes, rng: random.Random) -> list[FramePiece]:
    """``data`` cut at up to three random places, as the several buffer types a frame's pieces may be."""
    cuts = sorted(rng.sample(range(1, len(data)), min(3, len(data) - 1)))
    spans = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return [rng.choice([bytes, bytearray, memoryview])(span) for span in spans]


def frames_in(stream: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(stream):
        size = int.from_bytes(stream[pos : pos + 4], "big")
        out.append(stream[pos : pos + 4 + size])
        pos += 4 + size
    assert pos == len(stream), "the stream ends inside a frame"
    return out


@asynccontextmanager
async def wire_to_sink(reading: asyncio.Event) -> AsyncIterator[tuple[Wire[ClientConnection], bytearray]]:
    """A Wire to a server that reads in small pieces once ``reading`` is set; yields (wire, what arrived)."""
    got = bytearray()
    finished = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reading.wait()
        while data := await reader.read(48 * 1024):
            got.extend(data)
            await asyncio.sleep(0)
        writer.close()
        finished.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    # Only writes are exercised: the protocol core is never touched.
    wire = Wire(reader, writer, cast(ClientConnection, None), peer="test sink")
    try:
        yield wire, got
        writer.close()
        await asyncio.wait_for(finished.wait(), 30)
    finally:
        server.close()
        await server.wait_closed()


async def test_large_and_small_frames_from_many_tasks_arrive_whole_and_in_order() -> None:
    rng = random.Random(3)
    reading = asyncio.Event()
    reading.set()
    plans = {
        task: [frame(task * 50 + i, rng.choice([10, 300, WRITE_SLICE + 1, 3 << 20])) for i in range(12)]
        for task in range(4)
    }

    async def writer_task(wire: Wire[ClientConnection], frames: list[bytes]) -> None:
        for f in frames:
            await wire.write(f if rng.random() < 0.5 else pieces(f, rng))
            if rng.random() < 0.3:
                await asyncio.sleep(0)

    async with wire_to_sink(reading) as (wire, got):
        await asyncio.gather(*(writer_task(wire, frames) for frames in plans.values()))
    arrived = frames_in(bytes(got))
    assert sorted(arrived) == sorted(f for frames in plans.values() for f in frames)
    for frames in plans.values():  # each writer's frames in the order it wrote them
        mine = set(frames)
        assert [f for f in arrived if f in mine] == frames


@pytest.mark.parametrize("in_pieces", [False, True], ids=["one-buffer", "pieces"])
async def test_a_write_cancelled_halfway_leaves_its_whole_frame_on_the_wire(in_pieces: bool) -> None:
    reading = asyncio.Event()  # the peer does not read yet: the large write waits for it to drain
    big, after = frame(1, 8 << 20), frame(2, 100)
    async with wire_to_sink(reading) as (wire, got):
        task = asyncio.create_task(wire.write(pieces(big, random.Random(5)) if in_pieces else big))
        await asyncio.sleep(0.2)
        assert not task.done(), "the write should be waiting for the peer"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        reading.set()
        await wire.write(after)
    assert frames_in(bytes(got)) == [big, after]
