"""The consumer loop's checkpoint (streams/runtime/checkpoint.py), without a broker: deliveries are futures settled
by hand, offsets are what it answers as committable."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from streams.runtime.checkpoint import Checkpoint

TP = TopicPartition("incident.reports", 0)
OTHER = TopicPartition("unit.events", 1)


def in_flight() -> asyncio.Future:
    return asyncio.get_running_loop().create_future()


async def turns(n: int = 10) -> None:
    """Let the event loop run the settling's steps (gathering takes a few turns)."""
    for _ in range(n):
        await asyncio.sleep(0)


def offsets(answer) -> dict[TopicPartition, int]:
    return {tp: meta.offset for tp, meta in answer.items()}


async def test_offsets_become_committable_only_once_their_outputs_are_delivered():
    checkpoint = Checkpoint()
    first, second = in_flight(), in_flight()
    checkpoint.handled([(first, "r0"), (second, "r1")], {TP: 2, OTHER: 5})
    settling = asyncio.ensure_future(checkpoint.settle())
    first.set_result("placed")
    await turns()
    assert not settling.done()  # one output still in flight: nothing committable yet
    second.set_result("placed")
    assert offsets(await settling) == {TP: 2, OTHER: 5}
    assert offsets(await checkpoint.settle()) == {}  # settled once: nothing new since


async def test_a_later_batch_moves_the_offset_on_and_deliveries_without_offsets_are_waited_for_too():
    checkpoint = Checkpoint()
    done = in_flight()
    done.set_result("placed")
    checkpoint.handled([(done, "r0")], {TP: 1})
    checkpoint.handled([], {TP: 7})
    tick = in_flight()
    checkpoint.also_wait_for([(tick, None)])
    settling = asyncio.ensure_future(checkpoint.settle())
    await turns()
    assert not settling.done() and checkpoint.pending == 0
    tick.set_result("placed")
    assert offsets(await settling) == {TP: 7}


async def test_a_lost_delivery_breaks_the_checkpoint_until_the_loop_starts_again():
    checkpoint = Checkpoint()
    lost = in_flight()
    lost.set_exception(KafkaConnectionError())
    checkpoint.handled([(lost, "r0")], {TP: 1})
    with pytest.raises(KafkaConnectionError):
        await checkpoint.settle()
    assert checkpoint.broken
    delivered = in_flight()
    delivered.set_result("placed")
    checkpoint.handled([(delivered, "r1")], {TP: 2})
    assert await checkpoint.settle() == {}  # later offsets would skip the lost output
    checkpoint.reset()
    checkpoint.handled([(delivered, "r1")], {TP: 2})
    assert offsets(await checkpoint.settle()) == {TP: 2}


async def test_an_output_refused_for_good_is_replaced_by_its_records_dead_letter():
    checkpoint = Checkpoint()
    refused = in_flight()
    refused.set_exception(MessageSizeTooLargeError())
    letter = in_flight()
    replaced = []

    async def replace(origin, exc):
        replaced.append((origin, type(exc).__name__))
        return letter, None

    checkpoint.handled([(refused, "r0")], {TP: 1})
    settling = asyncio.ensure_future(checkpoint.settle(replace))
    await turns()
    assert replaced == [("r0", "MessageSizeTooLargeError")] and not settling.done()
    letter.set_result("placed")  # the dead letter delivered: the record is done
    assert offsets(await settling) == {TP: 1}


async def test_an_output_refused_for_good_with_nothing_to_stand_in_for_it_breaks_the_checkpoint():
    checkpoint = Checkpoint()
    refused = in_flight()
    refused.set_exception(MessageSizeTooLargeError())
    checkpoint.also_wait_for([(refused, None)])  # a tick's: no record to dead-letter
    with pytest.raises(MessageSizeTooLargeError):
        await checkpoint.settle(lambda origin, exc: None)
    assert checkpoint.broken
