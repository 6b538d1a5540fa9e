"""Incident-event payloads are typed per event type (a discriminated union on `type`)."""

from datetime import datetime, timezone
from typing import get_args

import pytest
from pydantic import ValidationError

from processors.event_data import DATA_OF_TYPE, Escalated, Stage
from processors.messages import CONTRACT_MESSAGES, IncidentEvent, IncidentEventType, incident_event_adapter

AT = datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)


def event(type_: str, data: dict) -> IncidentEvent:
    return IncidentEvent(schema_version=1, event_id="INC-1:1", incident_id="INC-1", seq=1, type=type_, at=AT,
                         data=data)


def test_every_event_type_has_a_payload_model():
    assert set(DATA_OF_TYPE) == set(get_args(IncidentEventType))


def test_a_payload_is_checked_against_its_type_when_the_event_is_made():
    with pytest.raises(ValidationError, match="unit_id"):
        event("acknowledged", {"order_id": "O-1"})
    with pytest.raises(ValidationError, match="level"):
        event("escalated", {"escalation_id": "E-1", "level": "high", "reason": "ack_overdue"})
    ok = event("acknowledged", {"unit_id": "U-1", "order_id": "O-1", "since_order_s": 12.5})
    assert isinstance(ok.data, Stage) and ok.data.since_order_s == 12.5


def test_the_wire_form_round_trips_through_the_union_keeping_a_newer_writers_fields():
    first = event("escalated", {"escalation_id": "E-1", "level": 2, "reason": "ack_overdue", "added_later": [1]})
    again = incident_event_adapter.validate_json(first.to_json_bytes())
    assert type(again).__name__ == "EscalatedEvent" and isinstance(again, IncidentEvent)
    assert isinstance(again.data, Escalated) and again.data.level == 2
    assert again.data["added_later"] == [1] and again.data == first.data.as_dict()
    assert IncidentEvent.model_validate_json(first.to_json_bytes()).data == again.data


def test_the_contract_schema_tells_the_types_apart():
    schema = CONTRACT_MESSAGES["IncidentEvent"].json_schema()
    assert schema["discriminator"]["propertyName"] == "type"
    assert len(schema["oneOf"]) == len(DATA_OF_TYPE)
