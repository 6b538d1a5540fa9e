"""Where the worker's CPU goes during the throughput burst: py-spy samples the running worker process from outside
(the worker is not changed or slowed by instrumentation of its own), and the benchmark lists the top costs.

Samples of a waiting event loop are left out (py-spy's default: idle threads are not sampled), so the shares are of
the time the worker was computing. *Own* counts a function when it is the innermost frame; *areas* group those by
the module that owns the innermost frame (our core, our shell, aiokafka, pydantic, …).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SAMPLES_PER_S = 250
_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
# the innermost frame's file decides its area: the first of these its path contains (site-packages trimmed)
AREAS = (
    ("processors/", "district core and intake rules (processors/)"),
    ("streams/", "our shell (streams/)"),
    ("aiokafka/", "Kafka client (aiokafka)"),
    ("kafka/", "Kafka client (aiokafka)"),
    ("pydantic", "validation and JSON (pydantic, pydantic-core)"),
    ("json/", "JSON (standard library)"),
    ("asyncio/", "event loop (asyncio)"),
    ("faust/", "faust"),
    ("mode/", "faust"),
    ("structlog/", "logging"),
    ("logging/", "logging"),
    ("prometheus_client/", "metrics (prometheus-client)"),
    ("zlib", "compression"),
)


@dataclass
class Profile:
    samples: int = 0
    own: Counter = field(default_factory=Counter)  # function -> samples where it was the innermost frame
    total: Counter = field(default_factory=Counter)  # function -> samples where it was on the stack
    areas: Counter = field(default_factory=Counter)
    error: str | None = None  # why there is no profile

    def share(self, count: int) -> float:
        return count / self.samples if self.samples else 0.0


def _function(frame: str) -> tuple[str, str]:
    """("name (file)", file) of a py-spy frame "name (path/to/file.py:123)", the path trimmed to the package."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    path = match["file"].split("site-packages/")[-1]
    return f"{match['name']} ({path})", path


def parse(raw: str) -> Profile:
    """A Profile from py-spy's raw (collapsed stacks) output: one 'frame;frame;…;innermost count' per line."""
    profile = Profile()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_function(f) for f in stack.split(";")]
        profile.samples += n
        name, path = frames[-1]
        profile.own[name] += n
        profile.areas[next((area for key, area in AREAS if key in path), "other")] += n
        for function in {f for f, _ in frames}:
            profile.total[function] += n
    return profile


class Sampler:
    """py-spy recording one process until stop(); a Profile, or one with the reason when py-spy is missing or fails."""

    def __init__(self, pid: int, out: Path):
        self.pid, self.out = pid, Path(out)
        self.process: subprocess.Popen | None = None
        self.error: str | None = None

    def start(self) -> "Sampler":
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(spy).exists():
            self.error = "py-spy is not installed (it is in the dev extra: pip install -e '.[dev]')"
            return self
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [spy, "record", "--pid", str(self.pid), "--format", "raw", "--output", str(self.out),
             "--rate", str(SAMPLES_PER_S), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        return self

    def stop(self) -> Profile:
        if self.process is None:
            return Profile(error=self.error)
        self.process.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        with contextlib.suppress(OSError):
            profile = parse(self.out.read_text(errors="replace"))
            if profile.samples:
                return profile
        return Profile(error=f"py-spy recorded nothing: {err.decode(errors='replace').strip()[-300:]}")


def profile_markdown(profile: Profile | None, top: int = 12) -> list[str]:
    if profile is None:
        return []
    lines = ["### Where the worker's CPU goes", ""]
    if profile.error:
        return lines + [f"No profile in this run: {profile.error}.", ""]
    lines += [
        f"py-spy sampled the worker {SAMPLES_PER_S} times a second during the burst, from outside the process; "
        f"{profile.samples:,} samples of the worker computing (waiting in the event loop is not sampled). "
        "By area of the innermost frame:", "",
        "| area | share |", "|---|---:|",
    ]
    lines += [f"| {area} | {100 * profile.share(n):.1f} % |" for area, n in profile.areas.most_common()]
    lines += ["", f"The top {top} functions by own time (innermost frame), with the share of samples in which each "
              "was anywhere on the stack:", "", "| function | own | on the stack |", "|---|---:|---:|"]
    for function, n in profile.own.most_common(top):
        lines.append(f"| `{function}` | {100 * profile.share(n):.1f} % | "
                     f"{100 * profile.share(profile.total[function]):.1f} % |")
    return lines + [""]
