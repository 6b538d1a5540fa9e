"""The embedded broker and database: they start, serve, and never outlive the process that started them."""

import signal
import subprocess
import sys

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from streams.embedded import EmbeddedBroker, EmbeddedDatabase
from tests.streams.processes import alive, descendants, wait_gone


async def test_the_embedded_database_and_broker_serve_and_stop_cleanly(tmp_path):
    database, broker = EmbeddedDatabase(tmp_path).start(), EmbeddedBroker(tmp_path).start()
    pids = {database.process.pid, broker.process.pid}
    try:
        connection = await asyncpg.connect(database.url)
        assert "PostgreSQL" in await connection.fetchval("SELECT version()")
        await connection.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        assert isinstance(await admin.list_topics(), list)
        await admin.close()
    finally:
        database.stop()
        broker.stop()
    assert wait_gone(pids) == set()
    assert not database.pgdata.exists()


HOLDER = """
import sys, time
from pathlib import Path
from streams.embedded import EmbeddedBroker, EmbeddedDatabase
d = EmbeddedDatabase(Path(sys.argv[1])).start()
b = EmbeddedBroker(Path(sys.argv[1])).start()
print(d.process.pid, b.process.pid, flush=True)
time.sleep(600)
"""


def test_a_killed_parent_takes_the_broker_and_database_with_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        pids = {int(p) for p in holder.stdout.readline().split()}
        assert len(pids) == 2 and all(alive(p) for p in pids)
        family = pids | descendants(holder.pid)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert wait_gone(family) == set(), "orphans survived a SIGKILL of their parent"
    finally:
        if holder.poll() is None:
            holder.kill()
