"""The topic registry (streams/runtime/topics.py): one table of which message goes to which topic under which key."""

from __future__ import annotations

from datetime import datetime, timezone

from processors.messages import DeadLetter, WorkItem, unit_event_adapter
from streams.operations.publish import classify
from streams.runtime.topics import (
    CONTRACT_TOPICS,
    INCIDENT_REPORTS_DLQ,
    REGISTRY,
    UNIT_EVENTS,
    Topics,
    internal_topics,
    worklog_topic,
)
from streams.settings import Settings

SETTINGS = Settings(app_id="patrol-registry")


def test_the_registry_names_every_topic_once_and_each_model_once():
    topics = Topics(SETTINGS)
    assert set(topics.by_name) == {*CONTRACT_TOPICS, *internal_topics(SETTINGS)}
    models = [entry.model for entry in REGISTRY if entry.model is not None]
    assert len(models) == len(set(models))


def test_a_message_goes_to_its_topic_under_its_key():
    topics = Topics(SETTINGS)
    at = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
    entry = topics.outgoing(WorkItem(kind="tick", district="JINJIANG", at=at))
    assert entry[:2] == (worklog_topic(SETTINGS), b"JINJIANG")
    letter = DeadLetter(schema_version=1, reason="invalid_json", error="not JSON", raw="{", key="R-9",
                        topic="incident.reports", partition=0, offset=4, received_at=at)
    assert topics.outgoing(letter)[:2] == (INCIDENT_REPORTS_DLQ, b"R-9")  # the key of the record it stands for
    log_off = unit_event_adapter.validate_python({"schema_version": 1, "event_id": "E-1", "unit_id": "U-7",
                                                 "at": at, "type": "log_off"})
    assert topics.outgoing(log_off)[:2] == (UNIT_EVENTS, b"U-7")  # any unit event, by its base model


def test_a_raw_line_is_published_by_the_same_table():
    assert (classify(b'{"unit_id": "U-7"}', 1).topic, classify(b'{"unit_id": "U-7"}', 1).key) == (UNIT_EVENTS, b"U-7")
