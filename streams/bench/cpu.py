"""Watching the machine while the streams benchmarks run: resident memory and CPU time of a process, which of
our processes plays which role (ROLES), and CpuWatch, the CPU each role used during a phase.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict
from pathlib import Path


def _rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU time all cores of the machine have spent busy so far (every process, ours or not)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


ROLES = ("worker", "sink", "broker", "PostgreSQL", "raw pipe", "benchmark clients", "everything else")


def _role(pid: int, me: int) -> str | None:
    """Which part of the benchmark a process is, from its command line (None: not ours)."""
    if pid == me:
        return "benchmark clients"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if "streams.cli worker" in command:
        return "worker"
    if "streams.cli sink" in command:
        return "sink"
    if "streams.bench.suite pipe" in command:
        return "raw pipe"
    if "tansu" in command or "kafka.Kafka" in command:
        return "broker"
    if "postgres" in command:
        return "PostgreSQL"
    return None


def _our_processes() -> dict[int, str]:
    """Our process and its descendants, by role."""
    me = os.getpid()
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                children[int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])].append(int(entry))
    found, todo = {}, [me]
    while todo:
        pid = todo.pop()
        role = _role(pid, me)
        if role is not None:
            found[pid] = role
        todo += children.get(pid, [])
    return found


class CpuWatch:
    """Cores used between start() and stop(): by the worker, the broker, PostgreSQL, the raw pipe, the
    benchmark's own clients, and whatever else the machine ran meanwhile (other people's work included)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.cores: dict[str, float] = {}

    @staticmethod
    def _sample() -> tuple[dict[int, tuple[str, float]], float]:
        used = {}
        for pid, role in _our_processes().items():
            with contextlib.suppress(OSError, IndexError, ValueError):
                used[pid] = (role, _cpu_seconds(pid))
        return used, _machine_busy_seconds()

    def start(self) -> "CpuWatch":
        self._t = time.monotonic()
        self._before, self._machine = self._sample()
        return self

    def stop(self) -> "CpuWatch":
        elapsed = max(1e-9, time.monotonic() - self._t)
        after, machine = self._sample()
        cores: dict[str, float] = dict.fromkeys(ROLES, 0.0)
        for pid, (role, seconds) in after.items():
            cores[role] += (seconds - self._before.get(pid, (role, 0.0))[1]) / elapsed
        cores["everything else"] = max(0.0, (machine - self._machine) / elapsed - sum(cores.values()))
        self.cores, self.elapsed = cores, elapsed
        return self

    def cpu_seconds(self, role: str) -> float:
        return self.cores.get(role, float("nan")) * self.elapsed

    @property
    def worker(self) -> float:
        return self.cores.get("worker", float("nan"))

    @property
    def machine(self) -> float:
        return sum(self.cores.values()) if self.cores else float("nan")
