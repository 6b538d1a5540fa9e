"""The platform's clock: the wall clock on duty, a compressed one for a simulated day, never one by accident."""

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from streams.runtime.clock import platform_clock, wall_clock
from streams.settings import Settings


def test_on_duty_the_worker_keeps_the_wall_clock():
    assert platform_clock(Settings()) is wall_clock


def test_a_compressed_day_runs_its_clock_rate_times_faster_from_the_epoch():
    epoch = datetime.now(timezone.utc) - timedelta(seconds=2)
    clock = platform_clock(Settings(clock_rate=360, clock_epoch=epoch))
    before = wall_clock()
    now = clock()
    after = wall_clock()
    assert epoch + (before - epoch) * 360 <= now <= epoch + (after - epoch) * 360
    assert now - epoch >= timedelta(seconds=720)  # two wall seconds are twelve simulated minutes


def test_a_faster_clock_without_an_epoch_is_refused():
    with pytest.raises(ValidationError, match="PATROL_CLOCK_EPOCH"):
        Settings(clock_rate=360)
    with pytest.raises(ValidationError, match="PATROL_CLOCK_EPOCH"):
        Settings(clock_rate=360, clock_epoch=datetime(2026, 12, 2, 8, 0))  # no zone: whose 08:00?


def test_the_epoch_reaches_a_child_process_intact():
    epoch = datetime(2026, 12, 2, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8)))
    env = Settings(clock_rate=360, clock_epoch=epoch).to_env()
    assert env["PATROL_CLOCK_RATE"] == "360.0"
    assert datetime.fromisoformat(env["PATROL_CLOCK_EPOCH"]) == epoch
