import json
from datetime import datetime, timezone
from importlib import resources

import pytest

from processors.catalogue import parse_catalogue
from processors.geography import parse_geography
from processors.intake import Inbound

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def catalogue():
    return parse_catalogue(resources.files("processors.data").joinpath("catalogue.yaml").read_text())


@pytest.fixture(scope="session")
def geography():
    return parse_geography(json.loads(resources.files("processors.data").joinpath("geography.geojson").read_text()))


def report(**overrides) -> dict:
    doc = {
        "schema_version": 1,
        "report_id": "R-1",
        "source": "hotline",
        "category": "PS-FIGHT",
        "lat": 30.652,
        "lon": 104.0765,
        "reported_at": "2026-11-25T07:59:00Z",
    }
    doc.update(overrides)
    return doc


def inbound(value, topic="incident.reports", offset=0, key=b"R-1", at=NOW) -> Inbound:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return Inbound(topic=topic, partition=0, offset=offset, key=key, value=raw, received_at=at)
