"""The unit register: the authoritative list of field units, saying for each its agency, kind (officer or auxiliary),
home street, mode of travel and delegated enforcement powers (委托执法: which categories, granted by whom, until when).

A unit's log-on only claims a profile; the register decides it. A log-on that contradicts the register (another
agency, an auxiliary claiming to be an officer, a delegation never granted or expired, another home street) is
refused with a reason, in intake, whoever published it. The command centre changes the register at run time with
a `RegisterChange` message on the `unit.register` topic: each names who changed what, and why, and the topic is
the audit trail of the register. Pure: parsing, applying a change, and checking a log-on do no I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from processors.dead_letters import Rejected
from processors.messages import Identifier, LogOn, Message, ShortText

UNREGISTERED = "unregistered_unit"
MISMATCH = "register_mismatch"


class RegisterError(ValueError):
    """The register file cannot be read."""


class Delegation(BaseModel):
    """One delegated power: the unit may take `category` for the agency that owns it, from `granted_by`'s grant,
    until `until`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    category: Identifier
    granted_by: Identifier = Field(description="the agency (or office) that delegated the power")
    until: AwareDatetime


class RegisteredUnit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    unit_id: Identifier
    agency: Identifier
    kind: Literal["officer", "auxiliary"]
    home_street: Identifier
    mode: Literal["foot", "bike", "car"] | None = Field(
        default=None, description="the unit's means of travel; unset: the log-on says")
    delegations: list[Delegation] = Field(default_factory=list, max_length=200)

    def granted(self, at: datetime) -> frozenset[str]:
        """The categories delegated to the unit and still in force at `at`."""
        return frozenset(d.category for d in self.delegations if d.until > at)


class UnitRegister(BaseModel):
    """`unlisted: refuse` (the shipped register, and production): a unit not in the register cannot log on.
    `unlisted: admit` is for a development or test site whose units make up their own ids: an unlisted unit's
    log-on is taken at its word, as before there was a register; a listed one is still checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    unlisted: Literal["refuse", "admit"] = "refuse"
    units: dict[str, RegisteredUnit] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _units_by_id(cls, data):
        # the file lists units; the model keys them by unit_id, refusing a unit listed twice
        if isinstance(data, dict) and isinstance(data.get("units"), list):
            units: dict = {}
            for entry in data["units"]:
                unit_id = entry.get("unit_id") if isinstance(entry, dict) else None
                if unit_id in units:
                    raise ValueError(f"unit {unit_id!r} is listed twice")
                units[unit_id] = entry
            data = {**data, "units": units}
        return data

    def get(self, unit_id: str) -> RegisteredUnit | None:
        return self.units.get(unit_id)

    def apply(self, change: "RegisterChange") -> "UnitRegister":
        """The register after `change` (this one is left as it was)."""
        units = dict(self.units)
        if change.action == "remove":
            units.pop(change.unit_id, None)
        else:
            units[change.unit_id] = change.entry
        return self.model_copy(update={"units": units})


class RegisterChange(Message):
    """A change of the register by the command centre: published on `unit.register`, keyed by unit_id."""

    change_id: Identifier = Field(description="idempotency key of the change")
    unit_id: Identifier
    action: Literal["set", "remove"] = Field(description="set: add the unit or replace its entry; remove: strike it")
    entry: RegisteredUnit | None = Field(default=None, description="the unit's whole new entry (action set)")
    changed_by: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        description="who made the change (the command-centre user)")
    reason: ShortText = Field(min_length=1, description="why, in words: the audit trail's explanation")
    at: AwareDatetime

    @model_validator(mode="after")
    def _entry_matches(self) -> "RegisterChange":
        if self.action == "set" and (self.entry is None or self.entry.unit_id != self.unit_id):
            raise ValueError("a `set` change carries the unit's entry, with the same unit_id")
        if self.action == "remove" and self.entry is not None:
            raise ValueError("a `remove` change carries no entry")
        return self


def parse_register(text: str, source: str = "(register)") -> UnitRegister:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegisterError(f"{source}: not valid YAML: {exc}") from exc
    try:
        return UnitRegister.model_validate(doc or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10])
        raise RegisterError(f"{source}: invalid unit register: {problems}") from exc


def check_log_on(register: UnitRegister, event: LogOn, at: datetime) -> Rejected | None:
    """None if the register allows this log-on at `at` (the platform's clock, not the device's); else why not."""
    entry = register.get(event.unit_id)
    if entry is None:
        if register.unlisted == "admit":
            return None
        return Rejected(UNREGISTERED, f"unit {event.unit_id!r} is not in the unit register")
    problems = []
    for name in ("agency", "kind", "home_street"):
        claimed, registered = getattr(event, name), getattr(entry, name)
        if claimed != registered:
            problems.append(f"{name} {claimed!r} is not the registered {registered!r}")
    if entry.mode is not None and event.mode != entry.mode:
        problems.append(f"mode {event.mode!r} is not the registered {entry.mode!r}")
    granted = entry.granted(at)
    ungranted = sorted(set(event.delegations) - granted)
    if ungranted:
        expired = {d.category for d in entry.delegations} & set(ungranted)
        said = ", ".join(f"{c} ({'expired' if c in expired else 'never granted'})" for c in ungranted)
        problems.append(f"delegations not in force: {said}")
    if problems:
        return Rejected(MISMATCH, f"log-on of {event.unit_id!r} contradicts the unit register: " + "; ".join(problems))
    return None
