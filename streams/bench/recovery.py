"""Benchmark of a takeover: the owner of a district is SIGKILLed, another worker takes the district over.

Measured for a district whose work log holds a day and one that holds 30 simulated days (the sample district's
brigade on two shifts, the simulator's reports, the crew's answers, position pings every few minutes, and the
owner's clock ticks whenever a deadline is due), each with the owner's newest snapshot a whole snapshot interval
before the end (the worst case), and the day's log once more without any snapshot: the full replay every
takeover cost before snapshots (the baseline of the same run). Split into

- detection: from the SIGKILL until the group hands the partition to the survivor, which the session timeout
  (PATROL_KAFKA_SESSION_TIMEOUT_S) sets, plus the broker's re-forming of the group;
- recovery: from the assignment until the survivor has decided the first report sent after the kill
  (snapshot read and restored, the tail replayed, the report taken in and dispatched).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from processors.catalogue import Catalogue
from processors.geography import Geography
from streams.bench.history import DAY_S, PING_S, History, district_history
from streams.runtime import clients
from streams.settings import Settings

@dataclass
class Takeover:
    """One takeover measured: the log it met, and how long detection and recovery took."""

    days: float
    snapshot: bool
    entries: int
    log_bytes: int
    kept_by_retention: int
    snapshot_bytes: int
    detection_s: float
    recovery_s: float
    replayed: int  # entries the survivor replayed (its recovery log line)
    restore_s: float  # its recovery's own seconds: snapshot read and restored, tail replayed


@dataclass
class RecoveryBench:
    takeovers: list[Takeover] = field(default_factory=list)
    session_timeout_s: float = 0.0
    snapshot_interval_s: float = 0.0
    retention_days: float = 0.0
    core_seconds: dict[float, float] = field(default_factory=dict)  # days -> the core's own cost of a full replay
    capture_seconds: dict[float, float] = field(default_factory=dict)  # days -> taking the owner's snapshot

    def row(self, days: float, snapshot: bool) -> Takeover | None:
        return next((t for t in self.takeovers if t.days == days and t.snapshot == snapshot), None)


def recovery_benchmark(base: Settings, catalogue: Catalogue, geography: Geography, roster: list[dict], workdir: Path,
                       *, ages: tuple[float, ...], baseline: bool = True, seed: int = 1,
                       steps=None) -> RecoveryBench:
    """A takeover per age with the owner's snapshot, and (with `baseline`) each once more without one: the full
    replay every takeover cost before."""
    result = RecoveryBench(session_timeout_s=base.kafka_session_timeout_s,
                           snapshot_interval_s=base.snapshot_interval_s,
                           retention_days=base.worklog_retention_s / DAY_S)
    n = 0
    for days in ages:
        # ending now: the district's clock stands where a live owner's would, so the takeover meets no backlog of
        # deadlines that a day-old clock would fire at the first entry
        history = district_history(catalogue, geography, roster, days=days, seed=seed,
                                   snapshot_interval_s=base.snapshot_interval_s, end=datetime.now(timezone.utc))
        result.core_seconds[days] = history.core_seconds
        result.capture_seconds[days] = history.capture_seconds
        for with_snapshot in (True, False) if baseline else (True,):
            n += 1
            what = "a snapshot" if with_snapshot else "no snapshot"
            with steps.task(f"recovery: {days:g} days of log, {what}", 1) if steps else contextlib.nullcontext():
                result.takeovers.append(measure_takeover(base, history, workdir / f"takeover-{n}", with_snapshot))
    return result


def measure_takeover(base: Settings, history: History, workdir: Path, with_snapshot: bool) -> Takeover:
    from streams.operations.embedded import EmbeddedBroker, client_settings, spawn_child, stop_child
    from streams.runtime.topics import ensure_topics

    workdir.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(workdir).start()
    workers: list = []
    try:
        # one partition a topic: two workers, one owns the district, the other stands by. No sink runs, so no
        # database is used (the URL keeps the worker from starting an embedded one it would not need)
        live = client_settings(base, broker).with_overrides(
            database_url="postgresql://unused@127.0.0.1:9/x", app_id=f"patrol-recovery-{uuid.uuid4().hex[:8]}",
            data_dir=workdir, topic_partitions=1, sink_in_worker=False, metrics_port=0)
        if not with_snapshot:
            # no snapshot at all, also none the owner would take of a log this long as soon as it has replayed it
            live = live.with_overrides(snapshot_interval_s=1e9, snapshot_every_entries=10**12,
                                       worklog_retention_s=2e9)
        asyncio.run(ensure_topics(live))
        written = asyncio.run(_write_history(live, history, with_snapshot))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}, **live.to_env()}

        def start(name: str):
            log = workdir / f"{name}.log"
            process = spawn_child([sys.executable, "-m", "streams.cli", "worker"], log=log,
                                  death_signal=signal.SIGTERM, env=env)
            workers.append(process)
            return process, log

        first = start("first")
        _wait(lambda: _recovered_lines(first[1]), 600, "the first worker recovers the district")
        second = start("second")
        _wait(lambda: len(_assignments(second[1])) >= 1 and _settled(first[1], second[1]), 600,
              "the second worker joins the group, and the group settles with an owner of the district")
        owner, survivor = (first, second) if _owns(first[1]) else (second, first)
        killed_at = time.time()
        owner[0].send_signal(signal.SIGKILL)
        owner[0].wait(10)
        report_id = f"AFTER-{uuid.uuid4().hex[:8]}"
        decided_at = asyncio.run(_report_and_wait(live, history, report_id))
        assigned = [at for at, parts in _assignments(survivor[1]) if at > killed_at and _worklog(parts)]
        recovered = [line for line in _recovered_lines(survivor[1]) if line["at"] > killed_at]
        if not assigned or not recovered:
            raise RuntimeError(f"the survivor's log shows no takeover: {survivor[1]}")
        return Takeover(days=history.days, snapshot=with_snapshot, entries=len(history.items),
                        log_bytes=written["bytes"], kept_by_retention=history.kept_by_retention(base.worklog_retention_s),
                        snapshot_bytes=written["snapshot_bytes"], detection_s=assigned[0] - killed_at,
                        recovery_s=decided_at - assigned[0], replayed=int(recovered[0]["replayed"]),
                        restore_s=float(recovered[0]["seconds"]))
    finally:
        for process in workers:
            if process.poll() is None:
                stop_child(process, signal.SIGTERM, 30)
        broker.stop()


async def _write_history(live: Settings, history: History, with_snapshot: bool) -> dict:
    """The history onto the district's work-log partition as its owner wrote it, the owner's snapshot, and the
    group's commit at the end (the owner had decided every entry)."""
    from streams.bench.suite import DISTRICT
    from streams.pipeline.snapshots import SnapshotStore
    from streams.runtime.topics import snapshots_topic, worklog_topic
    from streams.pipeline.worker import pipeline_group

    topic = worklog_topic(live)
    producer = clients.producer(live, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    sent, total = [], 0
    try:
        for item in history.items:
            value = item.model_dump_json(exclude_none=True).encode()
            total += len(value)
            sent.append(await producer.send(topic, value, key=DISTRICT.encode()))
        placed = [await s for s in sent]
    finally:
        await producer.stop()
    partition = placed[0].partition
    snapshot_bytes = 0
    if with_snapshot:
        store = SnapshotStore(live, snapshots_topic(live))
        stored = await store.write(partition, placed[history.snapshot_at].offset if history.snapshot_at < len(placed)
                                   else placed[-1].offset + 1, {DISTRICT: history.snapshot})
        snapshot_bytes = stored.stored_bytes
        await store.stop()
    committer = clients.consumer(live, group_id=pipeline_group(live))
    await committer.start()
    try:
        tp = TopicPartition(topic, partition)
        committer.assign([tp])
        await committer.commit({tp: OffsetAndMetadata(placed[-1].offset + 1, "")})
    finally:
        await committer.stop()
    return {"bytes": total, "snapshot_bytes": snapshot_bytes}


async def _report_and_wait(live: Settings, history: History, report_id: str) -> float:
    """Publish a report in the district, and return when (unix time) its first incident event was published."""
    from streams.runtime.topics import INCIDENT_EVENTS, INCIDENT_REPORTS

    lat, lon = _somewhere(history)
    doc = {"schema_version": 1, "report_id": report_id, "source": "hotline", "category": "PS-NOISE",
           "lat": lat, "lon": lon, "reported_at": datetime.now(timezone.utc).isoformat()}
    producer = clients.producer(live)
    await producer.start()
    try:
        await producer.send_and_wait(INCIDENT_REPORTS, json.dumps(doc).encode(), key=report_id.encode())
    finally:
        await producer.stop()
    reader = clients.consumer(live, INCIDENT_EVENTS, auto_offset_reset="earliest",
                              enable_auto_commit=False, fetch_max_wait_ms=50)
    await reader.start()
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            batch = await reader.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    # the report's incident created, or the report merged into one already open
                    if json.loads(record.value).get("data", {}).get("report_id") == report_id:
                        return record.timestamp / 1000
        raise TimeoutError(f"no decision on {report_id} within 600 s")
    finally:
        await reader.stop()


def _somewhere(history: History) -> tuple[float, float]:
    """A place in the district: where its last report was."""
    for item in reversed(history.items):
        if item.report is not None:
            return item.report.lat, item.report.lon
    raise ValueError("a history without reports")


_LINE_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z)")


def _timed_lines(log: Path, marker: str) -> list[tuple[float, str]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if marker in line and (m := _LINE_TIME.match(line)):
            at = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
            found.append((at.timestamp(), line))
    return found


def _assignments(log: Path) -> list[tuple[float, str]]:
    return _timed_lines(log, "partitions assigned")


def _worklog(line: str) -> bool:
    return "-district-worklog:0'" in line


def _owns(log: Path) -> bool:
    assignments = _assignments(log)
    return bool(assignments) and _worklog(assignments[-1][1])


def _settled(*logs: Path) -> bool:
    """The group has settled: no assignment for SETTLED_S (the embedded broker rebalances twice when a member
    joins), exactly one worker owns the district's partition, and it has recovered it since it was assigned."""
    latest = [_assignments(log)[-1] if _assignments(log) else None for log in logs]
    if None in latest or time.time() - max(at for at, _ in latest) < SETTLED_S:
        return False
    owners = [log for log, (_, line) in zip(logs, latest) if _worklog(line)]
    if len(owners) != 1:
        return False
    assigned_at = _assignments(owners[0])[-1][0]
    return any(line["at"] >= assigned_at for line in _recovered_lines(owners[0]))


def _recovered_lines(log: Path) -> list[dict]:
    """The worker's recoveries of the work log's one partition, as key=value pairs with the line's time."""
    lines = [{"at": at, **dict(re.findall(r"(\w+)=(\S+)", line))}
             for at, line in _timed_lines(log, "district state recovered")]
    return [line for line in lines if line.get("partition") == "0"]


def _wait(probe, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


# how long a group must go without a new assignment to count as settled
SETTLED_S = 25.0


# ============================================================================ the report

TARGET_RECOVERY_S = 2.0


def recovery_targets(r: RecoveryBench) -> list[tuple[str, str, bool | None]]:
    snapshotted = [t for t in r.takeovers if t.snapshot]
    if not snapshotted:
        return []
    worst = max(t.recovery_s for t in snapshotted)
    spread = " and ".join(f"{t.recovery_s:.2f} s with {_days(t.days)} of log" for t in snapshotted)
    return [(f"recovery ≤ {TARGET_RECOVERY_S:g} s after a takeover, whatever the log's age", spread,
             worst <= TARGET_RECOVERY_S)]


def recovery_markdown(r: RecoveryBench) -> list[str]:
    lines = [
        "## 6. Recovery",
        "",
        f"The owner of a district is SIGKILLed while a second worker stands by in its group; a report is published "
        f"at once. *Detection* runs from the SIGKILL until the group hands the district's work-log partition to the "
        f"survivor: the session timeout (`PATROL_KAFKA_SESSION_TIMEOUT_S` = {r.session_timeout_s:g} s) plus the "
        f"broker's re-forming of the group. *Recovery* runs from that assignment until the survivor has decided the "
        f"report (its first incident event published): the newest snapshot read and restored, the entries after it "
        f"replayed, the report taken in. The district's log is the sample brigade's days played in simulated time "
        f"(the simulator's reports, the crew's answers, a position ping from every unit on duty every "
        f"{PING_S / 60:g} minutes, and the owner's clock ticks whenever a deadline falls due), with the owner's "
        f"newest snapshot a whole snapshot interval ({r.snapshot_interval_s:g} s) before its end: the most a "
        f"takeover replays. *No snapshot* is the same log recovered by a full replay, as every takeover was before "
        f"snapshots.",
        "",
        "| work log | snapshot | entries | log size | detection s | recovery s | entries replayed | "
        "survivor's recovery s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in r.takeovers:
        lines.append(f"| {_days(t.days)} | {'yes' if t.snapshot else 'no (full replay)'} | {t.entries:,} | "
                     f"{t.log_bytes / 1e6:,.1f} MB | {t.detection_s:.1f} | **{t.recovery_s:.2f}** | {t.replayed:,} | "
                     f"{t.restore_s:.2f} |")
    lines.append("")
    snapshotted = sorted((t for t in r.takeovers if t.snapshot), key=lambda t: t.days)
    if len(snapshotted) >= 2:
        young, old = snapshotted[0], snapshotted[-1]
        lines.append(f"- With snapshots, recovery took {young.recovery_s:.2f} s with {_days(young.days)} of log and "
                     f"{old.recovery_s:.2f} s with {_days(old.days)} ({old.recovery_s / young.recovery_s:.2f} ×): the "
                     f"survivor replayed {young.replayed:,} and {old.replayed:,} entries, whatever the log's age.")
    for t in snapshotted:
        full = r.row(t.days, False)
        if full is not None:
            lines.append(f"- {_days(t.days)} of log: recovery {t.recovery_s:.2f} s from the snapshot against "
                         f"{full.recovery_s:.2f} s by a full replay of {full.replayed:,} entries "
                         f"({full.recovery_s / t.recovery_s:.1f} ×); the core alone takes "
                         f"{r.core_seconds.get(t.days, float('nan')):.1f} s of CPU to replay them all.")
    if r.takeovers:
        detections = [t.detection_s for t in r.takeovers]
        lines.append(f"- Detection took {min(detections):.1f}–{max(detections):.1f} s: the session timeout "
                     f"({r.session_timeout_s:g} s) and the embedded broker's re-forming of the group; Apache Kafka "
                     f"re-forms a group in a few seconds, so there detection is about the session timeout.")
        oldest = max(r.takeovers, key=lambda t: t.days)
        per_day = oldest.entries / oldest.days
        lines.append(f"- The work log after {_days(oldest.days)}: {oldest.entries:,} entries, "
                     f"{oldest.log_bytes / 1e6:,.1f} MB ({per_day:,.0f} entries a day). A broker that enforces its "
                     f"retention (`PATROL_WORKLOG_RETENTION_S`, {r.retention_days:g} days) keeps "
                     f"{oldest.kept_by_retention:,} of them; the embedded broker (Tansu) enforces no retention and "
                     f"keeps them all, which recovery no longer reads. The snapshot was "
                     f"{max(t.snapshot_bytes for t in r.takeovers) / 1e3:,.0f} kB compressed; taking it (the "
                     f"pipeline waits meanwhile, once a snapshot interval) cost "
                     f"{1000 * r.capture_seconds.get(oldest.days, float('nan')):,.0f} ms.")
    lines.append("")
    return lines


def _days(days: float) -> str:
    return f"{days:g} day" + ("" if days == 1 else "s")
