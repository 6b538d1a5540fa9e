"""Working-time calendars: deadlines that count only working hours (the 12345 hotline practice of 工作日/工作时).

A category that names a calendar in the catalogue gets its SLA limits counted in
that calendar's working time; every other category counts the clock as it runs.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class WorkingCalendar(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    utc_offset: Annotated[str, Field(pattern=r"^[+-]\d{2}:\d{2}$")] = "+08:00"
    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS[:5]))
    hours: list[tuple[time, time]] = Field(default_factory=lambda: [(time(9), time(12)), (time(13, 30), time(17, 30))])
    holidays: list[date] = Field(default_factory=list)
    # weekend days worked to make up for a holiday (调休)
    workdays: list[date] = Field(default_factory=list)

    @field_validator("days")
    @classmethod
    def _known_days(cls, days: list[str]) -> list[str]:
        unknown = [d for d in days if d not in WEEKDAYS]
        if unknown:
            raise ValueError(f"unknown weekday(s) {unknown}; use {', '.join(WEEKDAYS)}")
        return days

    @model_validator(mode="after")
    def _hours_ordered(self) -> "WorkingCalendar":
        previous = time(0)
        for start, end in self.hours:
            if not (previous <= start < end):
                raise ValueError("hours must be increasing, non-overlapping [start, end] pairs within a day")
            previous = end
        if not self.hours:
            raise ValueError("a calendar needs working hours")
        return self

    @property
    def tz(self) -> timezone:
        sign = 1 if self.utc_offset[0] == "+" else -1
        h, m = self.utc_offset[1:].split(":")
        return timezone(sign * timedelta(hours=int(h), minutes=int(m)))

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return WEEKDAYS[day.weekday()] in self.days and day not in self.holidays

    def add_working_time(self, start: datetime, seconds: float) -> datetime:
        """The instant at which `seconds` of working time have passed since `start`."""
        tz = self.tz
        local = start.astimezone(tz)
        remaining = timedelta(seconds=seconds)
        day = local.date()
        # a long limit (days) never needs more than a year of walking; the bound guards a calendar with no working day
        for _ in range(3660):
            if self.is_working_day(day):
                for open_, close in self.hours:
                    window_start = datetime.combine(day, open_, tz)
                    window_end = datetime.combine(day, close, tz)
                    begin = max(window_start, local)
                    if begin >= window_end:
                        continue
                    available = window_end - begin
                    if remaining <= available:
                        return (begin + remaining).astimezone(start.tzinfo)
                    remaining -= available
            day += timedelta(days=1)
            local = datetime.combine(day, time(0), tz)
        raise ValueError("the calendar has no working time within ten years")
