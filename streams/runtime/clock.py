"""The platform's clock: what a worker stamps on what it receives and what its time limits are reckoned by.

On duty it is the wall clock. For a compressed simulated day (`patrol up`) it runs `clock_rate` times faster from
`clock_epoch`, so that the district core lives the day the simulated city lives: a 60-second acknowledgement limit,
a car's 3 minutes across a street and a unit's plausible speed are the same simulated seconds as in the offline
benchmark, with nothing in the core or the catalogue scaled.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from streams.settings import Settings

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


def platform_clock(settings: Settings) -> Clock:
    """The worker's clock: the wall clock, or the compressed day's (epoch + rate × the wall time since it)."""
    if settings.clock_rate == 1.0 or settings.clock_epoch is None:
        return wall_clock
    epoch, rate = settings.clock_epoch.astimezone(timezone.utc), settings.clock_rate

    def compressed() -> datetime:
        return epoch + (wall_clock() - epoch) * rate

    return compressed
