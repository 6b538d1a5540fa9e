import pytest

from tests.streams.field_unit.field_api import FieldApi, start_field_api, stop_field_api


@pytest.fixture(scope="session")
def field_api(infrastructure, worker) -> FieldApi:
    api = start_field_api(infrastructure, infrastructure.data_dir / "field-api.log")
    try:
        yield api
    finally:
        stop_field_api(api)
