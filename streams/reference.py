"""Loads the catalogue and the geography named by the settings, or the defaults shipped with the package."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from processors.catalogue import Catalogue, parse_catalogue
from processors.geography import Geography, GeographyError, parse_geography
from processors.register import UnitRegister, parse_register
from streams.settings import Settings


def _read(path: Path | None, default_name: str) -> tuple[str, str]:
    if path is not None:
        return path.read_text(encoding="utf-8"), str(path)
    resource = resources.files("processors.data").joinpath(default_name)
    return resource.read_text(encoding="utf-8"), f"(shipped) {default_name}"


def catalogue_text(settings: Settings) -> str:
    """The catalogue in force as YAML text (for deriving another, e.g. a compressed day's)."""
    return _read(settings.catalogue, "catalogue.yaml")[0]


def load_catalogue(settings: Settings) -> Catalogue:
    text, source = _read(settings.catalogue, "catalogue.yaml")
    return parse_catalogue(text, source)


def load_roster() -> list[dict]:
    """The sample district's units, as the log-on messages of its roster file."""
    text = resources.files("processors.data").joinpath("roster.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_geography(settings: Settings) -> Geography:
    text, source = _read(settings.geography, "geography.geojson")
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise GeographyError(f"{source}: not valid JSON: {exc}") from exc
    return parse_geography(doc, source)


def load_register(settings: Settings) -> UnitRegister:
    """The unit register file in force (before the run-time changes on unit.register: streams/pipeline/register.py)."""
    text, source = _read(settings.unit_register, "units.yaml")
    return parse_register(text, source)
