"""The figures of docs/adr/0001-faust-runtime.md: start an embedded broker and PostgreSQL, then a `patrol worker`
(sink in it, as by default) against them, and say
- start-to-ready: seconds from spawning the worker to its first 200 from /readyz;
- idle CPU: the worker process's user+system CPU seconds over the next 60 s with no traffic;
- the topics and consumer groups on the broker besides the ones `ensure_topics` creates (what the worker's
  runtime makes of its own).

    .venv/bin/python docs/adr/measure_worker_runtime.py [runs]
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from streams.operations.embedded import embedded_infrastructure, free_port, spawn_child, stop_child
from streams.runtime.topics import CONTRACT_TOPICS, ensure_topics, internal_topics
from streams.settings import Settings
from streams.sink.migrate import migrate

IDLE_S = 60.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


async def _broker_view(settings: Settings) -> tuple[list[str], list[str]]:
    from streams.runtime import clients

    admin = clients.admin(settings)
    await admin.start()
    try:
        topics = sorted(await admin.list_topics())
        groups = sorted(group[0] for group in await admin.list_consumer_groups())
    finally:
        await admin.close()
    return topics, groups


def one_run(workdir: Path) -> dict:
    settings = Settings(metrics_port=0, app_id=f"patrol-adr-{uuid.uuid4().hex[:6]}", data_dir=workdir)
    with embedded_infrastructure(settings, workdir) as live:
        asyncio.run(migrate(live.database_url))
        asyncio.run(ensure_topics(live))
        port = free_port()
        worker = live.with_overrides(metrics_port=port)
        env = {**os.environ, **worker.to_env()}
        started = time.monotonic()
        process = spawn_child([sys.executable, "-m", "streams.cli", "worker"], log=workdir / "worker.log",
                              death_signal=signal.SIGTERM, env=env)
        try:
            while not _ready(port):
                if process.poll() is not None:
                    raise RuntimeError((workdir / "worker.log").read_text()[-3000:])
                time.sleep(0.05)
            ready_s = time.monotonic() - started
            cpu_before = _cpu_seconds(process.pid)
            time.sleep(IDLE_S)
            idle_cpu = _cpu_seconds(process.pid) - cpu_before
            topics, groups = asyncio.run(_broker_view(live))
        finally:
            stop_started = time.monotonic()
            stop_child(process, signal.SIGTERM, timeout=60)
            stop_s = time.monotonic() - stop_started
        ours = set(CONTRACT_TOPICS) | set(internal_topics(live))
        return {"start_to_ready_s": round(ready_s, 2), "idle_cpu_s_per_60s": round(idle_cpu, 2),
                "stop_s": round(stop_s, 2), "exit_code": process.returncode,
                "runtime_topics": [t for t in topics if t not in ours and not t.startswith("__")],
                "consumer_groups": groups}


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="patrol-adr-") as workdir:
            print(json.dumps(one_run(Path(workdir))), flush=True)


if __name__ == "__main__":
    main()
