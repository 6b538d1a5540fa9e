"""A district's work log as its owner would have written it over days, for the recovery benchmark
(streams/bench/recovery.py): the sample brigade on two shifts, the simulator's reports, the crew's answers,
position pings every few minutes, and the owner's clock ticks whenever a deadline falls due; played through a
district core in simulated time, with the owner's newest snapshot a whole snapshot interval before the end."""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from processors.catalogue import Catalogue
from processors.district import DistrictCore
from processors.geography import Geography
from processors.intake import Limits
from processors.messages import DispatchOrder, WorkItem, unit_event_adapter
from processors.snapshot import snapshot
from streams.simulation.simulator import plan_day

# a unit on duty tells its position this often besides on reaching a scene (a patrol app's background ping)
PING_S = 300.0
# the owner looks for due deadlines this often (PATROL_TICK_INTERVAL_S)
TICK_S = 1.0
DAY_S = 86400.0


@dataclass
class History:
    """A district's work log as its owner would have written it, and the owner's newest snapshot in it."""

    days: float
    items: list[WorkItem]
    snapshot_at: int  # the index of the first entry the snapshot does not hold
    snapshot: dict  # processors.snapshot document of the district core there
    core_seconds: float  # what replaying every entry costs the core alone (no broker)
    capture_seconds: float  # what taking the snapshot costs (the pipeline waits meanwhile)

    def kept_by_retention(self, retention_s: float) -> int:
        """Entries a broker that enforces a retention of `retention_s` keeps of this history (Tansu keeps them all)."""
        oldest_kept = self.items[-1].at - timedelta(seconds=retention_s)
        return sum(1 for item in self.items if item.at >= oldest_kept)


def district_history(catalogue: Catalogue, geography: Geography, roster: list[dict], *, days: float, seed: int,
                     snapshot_interval_s: float, end: datetime) -> History:
    """`days` of the district's work log up to `end`, played through a district core in simulated time."""
    from streams.bench.suite import DISTRICT, SimCrew, _admit

    start = end.replace(microsecond=0) - timedelta(days=days)
    heap: list[tuple[float, int, str, object]] = []
    seq = 0
    for day in range(math.ceil(days)):
        plan = plan_day(catalogue, geography, roster, seed=seed * 1000 + day, hours=min(24.0, (days - day) * 24),
                        start=start + timedelta(days=day))
        for m in plan.messages:
            seq += 1
            heap.append((day * DAY_S + m.at_s, seq, "plan", m))
    for i, unit in enumerate(roster):
        seq += 1
        heap.append((PING_S * (i + 1) / len(roster), seq, "ping", unit["unit_id"]))
    heapq.heapify(heap)
    core = DistrictCore(DISTRICT, catalogue)
    crew = SimCrew(catalogue, seed)
    items: list[WorkItem] = []
    unit_district: dict[str, str | None] = {}
    end_s, offset = days * DAY_S, 0

    def apply(item: WorkItem, now: float) -> None:
        nonlocal seq
        items.append(item)
        for out in core.apply(item):
            if isinstance(out, DispatchOrder):
                for at, unit_id, fields in crew.on_order(out, now):
                    seq += 1
                    heapq.heappush(heap, (at, seq, "crew", (unit_id, fields)))

    while heap and heap[0][0] <= end_s:
        now, _, kind, payload = heapq.heappop(heap)
        # the owner's ticks: the first round of its timer after each deadline falls due
        while (due := core.state.deadlines.next_due()) is not None and due <= start + timedelta(seconds=now):
            tick_s = math.ceil((due - start).total_seconds() / TICK_S) * TICK_S
            apply(WorkItem(kind="tick", district=DISTRICT, at=start + timedelta(seconds=tick_s)), tick_s)
        at = start + timedelta(seconds=now)
        offset += 1
        if kind == "plan":
            item = _admit(payload, at, offset, catalogue, geography, Limits(), unit_district, crew)
        else:
            if kind == "ping":
                seq += 1
                heapq.heappush(heap, (now + PING_S, seq, "ping", payload))
                unit = crew.units.get(payload)
                if unit is None or not unit.on_duty:
                    continue
                unit_id, fields = payload, {"type": "location", "lat": unit.lat, "lon": unit.lon}
            else:
                unit_id, fields = payload
                if not crew.still_wanted(unit_id, fields):
                    continue
                crew.happened(unit_id, fields)
            event = unit_event_adapter.validate_python(
                {"schema_version": 1, "event_id": f"h{seed}-{offset}", "unit_id": unit_id, "at": at, **crew.wire(fields)})
            item = WorkItem(kind="unit_event", district=DISTRICT, at=at, unit_event=event)
        if item is not None:
            apply(item, now)
    # the newest snapshot a whole interval before the end: the most a takeover has to replay
    cut_at = items[-1].at - timedelta(seconds=snapshot_interval_s)
    k = next((i for i, item in enumerate(items) if item.at > cut_at), len(items))
    replay = DistrictCore(DISTRICT, catalogue)
    timed = time.process_time()
    for item in items[:k]:
        replay.apply(item)
    captured = time.perf_counter()
    document = snapshot(replay)
    capture_seconds = time.perf_counter() - captured
    for item in items[k:]:
        replay.apply(item)
    return History(days, items, k, document, core_seconds=time.process_time() - timed - capture_seconds,
                   capture_seconds=capture_seconds)
