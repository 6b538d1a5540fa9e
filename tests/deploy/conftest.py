"""Fixtures shared by the modules of tests/deploy: the compose file, as written (before variable interpolation)."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.manifests import COMPOSE


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())
