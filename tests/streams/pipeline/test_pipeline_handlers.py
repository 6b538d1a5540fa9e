"""The district pipeline's handlers (streams/pipeline/pipeline.py) without a broker: records fed by hand, the
records to publish (topic, key, value) asserted. The district log's partition is given as recovered (empty), so
nothing is read back from Kafka; the pipeline end to end on the real broker is test_pipeline.py's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from aiokafka.errors import KafkaConnectionError

from processors.messages import DeadLetter, IncidentEvent, WorkItem
from streams.pipeline.district_log import DistrictLog
from processors.register import UnitRegister
from streams.pipeline.pipeline import DistrictPipeline
from streams.pipeline.register import RegisterFollower
from streams.pipeline.recovery import PartitionCores
from streams.pipeline.snapshots import SnapshotStore
from streams.pipeline.unit_districts import UnitDistricts
from streams.reference import load_catalogue, load_geography
from streams.runtime.topics import (
    INCIDENT_EVENTS,
    INCIDENT_REPORTS,
    INCIDENT_REPORTS_DLQ,
    UNIT_EVENTS,
    reporters_topic,
    snapshots_topic,
    unit_districts_topic,
    worklog_topic,
)
from streams.settings import Settings

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
SETTINGS = Settings(app_id="patrol-handlers")
WORKLOG = worklog_topic(SETTINGS)


@dataclass(frozen=True)
class Record:
    """A consumed record, as the consumer loop hands it over."""

    topic: str
    value: bytes
    key: bytes | None = None
    partition: int = 0
    offset: int = 0
    timestamp: int = -1


def report(**overrides) -> bytes:
    doc = {"schema_version": 1, "report_id": "R-1", "source": "hotline", "category": "PS-FIGHT",
           "lat": 30.652, "lon": 104.0765, "reported_at": "2026-11-25T07:59:00Z", **overrides}
    return json.dumps(doc).encode()


def log_on(unit_id: str = "U-1") -> bytes:
    return json.dumps({"schema_version": 1, "event_id": "E-1", "unit_id": unit_id, "at": "2026-11-25T07:00:00Z",
                       "type": "log_on", "agency": "police", "kind": "officer", "district": "JINJIANG",
                       "home_street": "JJ-CXL", "mode": "car", "lat": 30.65, "lon": 104.07}).encode()


@pytest.fixture
def pipeline() -> DistrictPipeline:
    catalogue = load_catalogue(SETTINGS)
    districts = DistrictLog(SETTINGS, WORKLOG, catalogue, SnapshotStore(SETTINGS, snapshots_topic(SETTINGS)),
                            group_id="patrol-handlers-pipeline")
    districts.partitions[0] = PartitionCores()  # recovered, empty: nothing to read from the broker
    unit_districts = UnitDistricts(SETTINGS, unit_districts_topic(SETTINGS))
    # a register that takes any unlisted unit at its word, read to its end: these tests are not about it
    register = RegisterFollower(SETTINGS, UnitRegister(unlisted="admit"))
    register.ready.set()
    return DistrictPipeline(SETTINGS, catalogue, load_geography(SETTINGS), districts, unit_districts, register,
                            clock=lambda: NOW)


def where(outgoing) -> list[tuple[str, bytes | None]]:
    return [(topic, key) for topic, key, _ in outgoing]


async def test_an_admitted_report_goes_to_its_districts_work_log_and_its_reporter_to_the_reporters_topic(pipeline):
    out = await pipeline.take_report(Record(INCIDENT_REPORTS, report(reporter={"name": "Wang Fang"}), b"R-1"))
    assert where(out) == [(WORKLOG, b"JINJIANG"), (reporters_topic(SETTINGS), b"R-1")]
    entry = WorkItem.model_validate_json(out[0][2])
    assert (entry.kind, entry.at, entry.report.reporter) == ("report", NOW, None)  # no personal data in the log


async def test_a_bad_report_is_dead_lettered_under_its_own_key(pipeline):
    out = await pipeline.take_report(Record(INCIDENT_REPORTS, b"{not json", b"R-9", offset=4))
    assert where(out) == [(INCIDENT_REPORTS_DLQ, b"R-9")]
    letter = DeadLetter.model_validate_json(out[0][2])
    assert (letter.topic, letter.offset, letter.reason) == (INCIDENT_REPORTS, 4, "invalid_json")


async def test_a_log_on_goes_to_the_districts_work_log_and_the_unit_map(pipeline):
    out = await pipeline.take_unit_event(Record(UNIT_EVENTS, log_on(), b"U-1"))
    assert where(out) == [(WORKLOG, b"JINJIANG"), (unit_districts_topic(SETTINGS), b"U-1")]
    assert pipeline.unit_districts.get("U-1") == "JINJIANG"


async def test_a_unit_event_under_another_units_key_is_dead_lettered(pipeline):
    out = await pipeline.take_unit_event(Record(UNIT_EVENTS, log_on("U-2"), b"U-1"))
    assert where(out) == [(INCIDENT_REPORTS_DLQ, b"U-1")]
    assert DeadLetter.model_validate_json(out[0][2]).reason == "key_mismatch"


async def test_the_core_decides_a_work_log_entry_once_and_publishes_each_output_under_its_key(pipeline):
    (entry, *_) = await pipeline.take_report(Record(INCIDENT_REPORTS, report(), b"R-1"))
    decided = await pipeline.decide(Record(WORKLOG, entry[2], entry[1], offset=0))
    events = [(key, IncidentEvent.model_validate_json(value)) for topic, key, value in decided
              if topic == INCIDENT_EVENTS]
    assert events and events[0][1].type == "created"
    assert all(key == event.incident_id.encode() for key, event in events)  # an incident's events stay in order
    assert await pipeline.decide(Record(WORKLOG, entry[2], entry[1], offset=0)) == []  # handed over again
    # the same entry as the broker acknowledged it: due only at the partition's next offset
    assert await pipeline.decide_delivered(Record(WORKLOG, entry[2], entry[1], offset=5)) == []


async def test_an_unreadable_work_log_entry_is_dead_lettered_and_the_log_moves_on(pipeline):
    out = await pipeline.handlers[WORKLOG](Record(WORKLOG, b"garbage", b"JINJIANG", offset=0))
    assert where(out) == [(INCIDENT_REPORTS_DLQ, b"JINJIANG")]
    assert DeadLetter.model_validate_json(out[0][2]).reason == "invalid_work_item"
    assert pipeline.districts.partitions[0].next_offset == 1


async def test_a_defect_meeting_a_record_dead_letters_the_report_it_stems_from(pipeline, monkeypatch):
    (entry, *_) = await pipeline.take_report(Record(INCIDENT_REPORTS, report(), b"R-1", offset=3))

    async def defect(partition, offset, item):
        raise ZeroDivisionError("a defect of ours")

    monkeypatch.setattr(pipeline.districts, "apply", defect)
    out = await pipeline.handlers[WORKLOG](Record(WORKLOG, entry[2], entry[1], offset=0))
    letter = DeadLetter.model_validate_json(out[0][2])
    assert (letter.reason, letter.topic, letter.offset) == ("processing_error", INCIDENT_REPORTS, 3)
    assert "ZeroDivisionError" in letter.error


async def test_a_broker_failure_is_not_the_records_fault_and_restarts_the_loop(pipeline, monkeypatch):
    async def broker_away(partition, offset, item):
        raise KafkaConnectionError()

    monkeypatch.setattr(pipeline.districts, "apply", broker_away)
    with pytest.raises(KafkaConnectionError):
        await pipeline.handlers[WORKLOG](Record(WORKLOG, b"{}", b"JINJIANG"))


async def test_a_district_with_a_deadline_due_gets_a_tick_in_its_work_log(pipeline):
    (entry, *_) = await pipeline.take_report(Record(INCIDENT_REPORTS, report(), b"R-1"))
    await pipeline.decide(Record(WORKLOG, entry[2], entry[1], offset=0))
    assert pipeline.ticks(NOW) == []
    (tick,) = pipeline.ticks(NOW + timedelta(days=1))
    assert tick[:2] == (WORKLOG, b"JINJIANG") and WorkItem.model_validate_json(tick[2]).kind == "tick"
