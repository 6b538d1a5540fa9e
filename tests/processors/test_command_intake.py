"""Command intake: a dispatcher command enters its district's work log, or is dead-lettered with its reason."""

import pytest

from processors.command_intake import admit_command
from processors.dead_letters import Rejected
from processors.incidents import incident_id_for
from processors.intake import Limits
from processors.messages import WorkItem
from tests.processors.conftest import NOW, inbound

INCIDENT = incident_id_for("JINJIANG", "R-1")


def command(**overrides) -> dict:
    doc = {"schema_version": 1, "command_id": "CMD-1", "type": "assign", "incident_id": INCIDENT,
           "unit_id": "PS-CXL-01", "by": {"name": "li.wei", "role": "dispatcher"}, "issued_at": NOW.isoformat()}
    doc.update(overrides)
    return doc


@pytest.fixture
def admit(geography):
    def admitted(doc, key=b"JINJIANG"):
        return admit_command(inbound(doc, topic="dispatch.commands", key=key), geography, Limits())
    return admitted


def test_a_command_enters_its_districts_work_log(admit):
    item = admit(command())
    assert isinstance(item, WorkItem)
    assert (item.kind, item.district, item.at, item.command.by.name) == ("command", "JINJIANG", NOW, "li.wei")
    assert item.provenance.topic == "dispatch.commands"


@pytest.mark.parametrize("doc, key, reason", [
    (command(incident_id="INC-NOWHERE-0123456789AB"), b"NOWHERE", "unknown_district"),
    (command(incident_id="not-an-incident"), b"JINJIANG", "unknown_district"),
    (command(), b"OTHER", "key_mismatch"),
    (command(type="launch"), b"JINJIANG", "schema_violation"),
    (command(by={"name": "x", "role": "admin"}), b"JINJIANG", "schema_violation"),
    (command(by=None), b"JINJIANG", "schema_violation"),
    (b"{not json", b"JINJIANG", "invalid_json"),
])
def test_a_bad_command_is_refused_with_its_reason(admit, doc, key, reason):
    rejected = admit(doc, key)
    assert isinstance(rejected, Rejected) and rejected.reason == reason
