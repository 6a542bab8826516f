"""Frames: the runner groups what a play emitted while a record was in flight; the processor unpacks them."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaError

from agentwire.processor.records import decode_record
from agentwire.runner.framing import MAX_FRAME_EVENTS, Framer
from agentwire.schema import RawEvent, encode, encode_many

WF = "task-frames"


def event(n: int, workflow_id: str = WF) -> RawEvent:
    return RawEvent(event_id=f"{workflow_id}:{n}", workflow_id=workflow_id, type="LLM_PARTIAL", message=f"chunk {n}")


class Broker:
    """Hands out delivery futures that the test resolves, like records in flight."""

    def __init__(self) -> None:
        self.frames: list[list[str]] = []
        self.deliveries: list[asyncio.Future[None]] = []

    async def send(self, frame: list[RawEvent]) -> asyncio.Future[None]:
        self.frames.append([e.event_id for e in frame])
        self.deliveries.append(asyncio.get_running_loop().create_future())
        return self.deliveries[-1]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_events_ready_while_a_record_is_in_flight_travel_as_one_frame() -> None:
    broker = Broker()
    framer = Framer(broker.send)
    await framer.emit(event(1))
    await settle()
    for n in range(2, 6):  # the first record is still in flight
        await framer.emit(event(n))
    await settle()
    assert broker.frames == [[f"{WF}:1"]]
    broker.deliveries[0].set_result(None)
    await settle()
    assert broker.frames == [[f"{WF}:1"], [f"{WF}:{n}" for n in range(2, 6)]]
    broker.deliveries[1].set_result(None)
    await framer.flush()


async def test_at_light_load_every_frame_holds_one_event() -> None:
    broker = Broker()
    framer = Framer(broker.send)
    for n in range(1, 4):
        await framer.emit(event(n))
        await settle()
        broker.deliveries[-1].set_result(None)
        await settle()
    await framer.flush()
    assert broker.frames == [[f"{WF}:1"], [f"{WF}:2"], [f"{WF}:3"]]


async def test_frames_are_capped_and_keep_order() -> None:
    broker = Broker()
    framer = Framer(broker.send)
    await framer.emit(event(0))
    await settle()
    for n in range(1, MAX_FRAME_EVENTS + 11):
        await framer.emit(event(n))
    broker.deliveries[0].set_result(None)
    await settle()
    broker.deliveries[1].set_result(None)
    await settle()
    broker.deliveries[2].set_result(None)
    await framer.flush()
    assert [len(f) for f in broker.frames] == [1, MAX_FRAME_EVENTS, 10]
    sent = [i for frame in broker.frames for i in frame]
    assert sent == [f"{WF}:{n}" for n in range(MAX_FRAME_EVENTS + 11)]


async def test_a_failed_send_surfaces_in_flush() -> None:
    broker = Broker()
    framer = Framer(broker.send)
    await framer.emit(event(1))
    await settle()
    broker.deliveries[0].set_exception(KafkaError("NotLeaderForPartition"))
    await settle()
    with pytest.raises(KafkaError):
        await framer.flush()


def test_the_processor_reads_single_events_and_frames() -> None:
    key = WF.encode()
    assert [r.event_id for r in decode_record(key, encode(event(1)))] == [f"{WF}:1"]
    frame = encode_many([event(2), event(3), event(4)])
    assert [r.event_id for r in decode_record(key, frame)] == [f"{WF}:2", f"{WF}:3", f"{WF}:4"]


@pytest.mark.parametrize("value, reason", [
    (b"[]", "empty frame"),
    (b"\x00garbage", "cannot decode"),
    (encode_many([event(1), event(2, "task-other")]), "record key does not match"),
    (b'[{"event_id": "x"}]', "cannot decode RawEvent"),
])
def test_a_malformed_frame_is_rejected_whole(value: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_record(WF.encode(), value)
