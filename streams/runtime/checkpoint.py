"""The checkpoint of a consumer loop: which consumed offsets may be committed, given which of their records'
outputs the broker has acknowledged.

A record counts as done once every output decided for it is delivered; its offset may be committed only then, or
a crash would skip outputs that never reached the broker. The loop hands the checkpoint each handled batch (its
deliveries in flight and the next offset of each partition) and each delivery decided outside a batch (a
followed record's, a tick's); `settle` waits for everything handed in so far and answers the offsets that are
now committable. One delivery that fails for good-and-all is replaced by its record's dead letter (`Replace`);
any other failure marks the checkpoint broken: nothing more is committable until the loop starts again from its
last commit (`reset`), where the same records come again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from streams.runtime.error_policy import refused_for_good

# a delivery in flight, and the consumed record it was decided for (None: the loop's own, such as a tick)
Sent = tuple[asyncio.Future, object | None]
# what to send instead of an output the broker refused for good, for the record it stems from (its dead
# letter), or None when nothing can stand in for it
Replace = Callable[[object, BaseException], Awaitable[Sent | None]]


class Checkpoint:
    """Delivered -> committable offsets, for one run of a consumer loop."""

    def __init__(self) -> None:
        self._sent: list[Sent] = []
        self._offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        self.broken = False  # a delivery failed: nothing may be committed until `reset`

    def handled(self, sent: Iterable[Sent], next_offsets: Mapping[TopicPartition, int]) -> None:
        """A batch is handled: its outputs are in flight, and its records end before `next_offsets`. Handed in
        together, once the whole batch is handled, so that no offset outruns a delivery it depends on."""
        self._sent.extend(sent)
        self._offsets.update({tp: OffsetAndMetadata(offset, "") for tp, offset in next_offsets.items()})

    def also_wait_for(self, sent: Iterable[Sent]) -> None:
        """Deliveries that the next commit must wait for, though no consumed offset stands behind them."""
        self._sent.extend(sent)

    @property
    def pending(self) -> int:
        """Deliveries handed in and not yet settled."""
        return len(self._sent)

    async def settle(self, replace: Replace | None = None) -> dict[TopicPartition, OffsetAndMetadata]:
        """Wait for everything handed in so far; the offsets now committable ({} when broken). A failed delivery
        that `replace` cannot stand in for marks the checkpoint broken and is raised."""
        sent, offsets = self._sent, self._offsets
        self._sent, self._offsets = [], {}
        if self.broken:
            return {}
        try:
            await self._delivery_of(sent, replace)
        except Exception:
            # committing later offsets would skip these records' lost outputs for good
            self.broken = True
            raise
        return offsets

    def reset(self) -> None:
        """A new run of the loop, from its last commit: nothing handed in before counts any more."""
        self._sent, self._offsets, self.broken = [], {}, False

    async def _delivery_of(self, sent: list[Sent], replace: Replace | None) -> None:
        results = await asyncio.gather(*(delivery for delivery, _ in sent), return_exceptions=True)
        replacements = []
        for (_, origin), result in zip(sent, results):
            if not isinstance(result, BaseException):
                continue
            if not refused_for_good(result) or origin is None or replace is None:
                raise result
            replacement = await replace(origin, result)
            if replacement is None:
                raise result
            replacements.append(replacement)
        if replacements:
            await self._delivery_of(replacements, replace)
