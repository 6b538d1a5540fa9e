"""The worker's stop sequence (streams/pipeline/worker.py, `Worker.stop`) on the real broker: a SIGTERM'd worker
commits what it delivered and leaves its consumer group, so the next member gets the partitions at once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from streams.pipeline.worker import pipeline_group
from streams.runtime import clients
from streams.runtime.consumer_loop import SHUTDOWN_GRACE_S
from streams.runtime.topics import INCIDENT_EVENTS, INCIDENT_REPORTS
from tests.streams.accounting import report
from tests.streams.conftest import WorkerProcess, _isolated, eventually

pytestmark = pytest.mark.integration

DISTRICT = _isolated(0)


async def _trickle(site, run: str, sent: dict, stop: asyncio.Event) -> None:
    """Reports one after another until `stop`: the worker is stopped with work in hand."""
    producer = clients.producer(site, linger_ms=0)
    await producer.start()
    try:
        i = 0
        while not stop.is_set():
            doc = {**json.loads(report(run, DISTRICT, i % 256).value), "report_id": f"{run}-{i}"}
            placed = await producer.send_and_wait(INCIDENT_REPORTS, json.dumps(doc).encode(), key=f"{run}-{i}".encode())
            sent[f"{run}-{i}"] = (placed.partition, placed.offset)
            i += 1
            await asyncio.sleep(0.005)
    finally:
        await producer.stop()


async def _decided(site, run: str) -> set[str]:
    """The reports whose incident is on incident.events (their outputs delivered)."""
    found = set()
    async with clients.reading(site, auto_offset_reset="earliest") as consumer:
        partitions = [TopicPartition(INCIDENT_EVENTS, p) for p in range(site.topic_partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    report_id = json.loads(record.value).get("data", {}).get("report_id", "")
                    if report_id.startswith(f"{run}-"):
                        found.add(report_id)
    return found


async def _group(site) -> tuple[dict[TopicPartition, int], str, int]:
    """The pipeline group's committed offsets, its state and how many members it has."""
    admin = clients.admin(site)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(pipeline_group(site))
        (description,) = await admin.describe_consumer_groups([pipeline_group(site)])
        _, _, state, _, _, members, *_ = description.groups[0]
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in committed.items()}, state, len(members)


async def test_a_sigtermed_worker_commits_what_it_delivered_and_leaves_its_group(second_site):
    # a session long enough that a member that did not leave would still be listed when the next one joins
    site = second_site.with_overrides(kafka_session_timeout_s=120.0, sink_in_worker=False)
    run = uuid.uuid4().hex[:6]
    first = WorkerProcess(site, Path(site.data_dir) / "first.log").start()
    sent: dict[str, tuple[int, int]] = {}
    stop_sending = asyncio.Event()
    sender = asyncio.create_task(_trickle(site, run, sent, stop_sending))
    try:
        await eventually(lambda: _some(_decided(site, run)), timeout=180)  # at work, its group formed
        first.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(first.process.wait, SHUTDOWN_GRACE_S + 30)
    finally:
        stop_sending.set()
        await sender
        first.stop()
    assert code == 0, first.log.read_text()[-3000:]
    assert "stopped: work committed, groups left" in first.log.read_text()

    committed, state, members = await _group(site)
    # left, not timed out: with a 120 s session the group would still list the member that went away
    assert members == 0 and state == "Empty", (state, members)
    decided = await _decided(site, run)
    assert decided
    # every report whose outputs were delivered is committed: the next owner redoes none of them
    redone = [r for r in decided if sent[r][1] >= committed.get(TopicPartition(INCIDENT_REPORTS, sent[r][0]), 0)]
    assert redone == []

    # the next member gets the partitions, and carries on from the commit
    second = WorkerProcess(site, Path(site.data_dir) / "second.log").start()
    try:
        await eventually(lambda: _assigned(second), timeout=120)
    finally:
        second.stop()


async def _some(probe) -> bool:
    return bool(await probe)


async def _assigned(worker: WorkerProcess) -> bool:
    worker.assert_alive()
    return "partitions assigned" in worker.log.read_text()
