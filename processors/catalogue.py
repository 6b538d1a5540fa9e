"""The catalogue of powers and duties (权责清单): which categories exist, who may act on them, and their time limits."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from processors.calendar import WorkingCalendar

# A day: a call-back from the command centre is made within a working day of the resolution, and a complainant
# answering through the app does so the same day or not at all.
VERIFY_WINDOW_S = 86400.0

Domain = Literal["public_security", "traffic", "city_management"]


class Sla(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    ack_s: Annotated[float, Field(gt=0)]
    arrive_s: Annotated[float, Field(gt=0)]
    resolve_s: Annotated[float, Field(gt=0)]


class Dedup(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    radius_m: Annotated[float, Field(ge=0)]
    window_s: Annotated[float, Field(ge=0)]


class Category(BaseModel):
    # Further per-category fields may be added by the format, so they are kept, not refused.
    model_config = ConfigDict(extra="allow", frozen=True)
    code: Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]*$")]
    name: str
    name_zh: str | None = None
    domain: Domain
    agencies: Annotated[list[str], Field(min_length=1)]
    priority: Annotated[int, Field(ge=1, le=5)]
    sla: Sla
    dedup: Dedup
    auxiliary_ok: bool = False
    # an auxiliary may fill a support place (any agency but the first, the lead) beside the officer who leads
    auxiliary_support_ok: bool = False
    calendar: str | None = Field(
        default=None, description="name of a working-time calendar its SLA limits are counted in")
    verify_window_s: Annotated[float, Field(gt=0)] = Field(
        default=VERIFY_WINDOW_S,
        description="how long a resolved incident awaits the complainant's verification (核查) before it is "
                    "closed as unverified; counted in the category's own time")

    @property
    def is_joint(self) -> bool:
        return len(self.agencies) > 1

    def auxiliary_may_fill(self, agency: str) -> bool:
        """May an auxiliary fill this category's `agency` place: alone where `auxiliary_ok`, or in a support place
        beside an officer where `auxiliary_support_ok`."""
        return self.auxiliary_ok or (self.auxiliary_support_ok and agency != self.agencies[0])


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    categories: Annotated[list[Category], Field(min_length=1)]
    calendars: dict[str, WorkingCalendar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _codes_unique(self) -> "Catalogue":
        seen: set[str] = set()
        for c in self.categories:
            if c.code in seen:
                raise ValueError(f"category code {c.code!r} appears twice")
            if c.calendar is not None and c.calendar not in self.calendars:
                raise ValueError(f"category {c.code!r} names calendar {c.calendar!r}, which is not under calendars")
            seen.add(c.code)
        return self

    def deadline(self, category: Category, start: datetime, seconds: float) -> datetime:
        """When a limit of `seconds` that starts at `start` runs out, in the category's own time."""
        if category.calendar is None:
            return start + timedelta(seconds=seconds)
        return self.calendars[category.calendar].add_working_time(start, seconds)

    _by_code: dict[str, Category] = PrivateAttr(default_factory=dict)

    def model_post_init(self, __context) -> None:
        self._by_code = {c.code: c for c in self.categories}

    def get(self, code: str) -> Category | None:
        return self._by_code.get(code)

    @property
    def codes(self) -> list[str]:
        return [c.code for c in self.categories]


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; the message names the file, line and field."""


def parse_catalogue(text: str, source: str = "<catalogue>") -> Catalogue:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise CatalogueError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    try:
        return Catalogue.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err["loc"]
            line = _line_of(root, loc)
            field = ".".join(str(p) for p in loc) or "(top level)"
            problems.append(f"{source}:{line}: {field}: {err['msg']}")
        raise CatalogueError("invalid catalogue\n  " + "\n  ".join(problems)) from exc


def _line_of(node: yaml.Node | None, loc: tuple) -> int:
    """The 1-based line of the deepest YAML node that `loc` reaches."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    child = value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line
