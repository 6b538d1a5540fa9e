from streams.sink.migrate import available_migrations, migrate

EXPECTED_TABLES = {"incident_events", "incidents", "dead_letters", "dispatch_orders", "escalations",
                   "schema_migrations"}


async def test_migrations_apply_once_and_rerun_as_a_no_op(infrastructure, db):
    # the session fixture has already migrated this database
    assert await migrate(infrastructure.database_url) == []
    versions = [r["version"] for r in await db.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [m.version for m in available_migrations()]
    tables = {r["tablename"] for r in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert EXPECTED_TABLES <= tables


async def test_the_event_log_refuses_nothing_twice(db):
    # idempotency lives in the keys: a replayed event is a no-op, not an error
    insert = """INSERT INTO incident_events (event_id, incident_id, seq, type, at, data)
                VALUES ('T-1:1', 'T-1', 1, 'created', now(), '{}') ON CONFLICT DO NOTHING"""
    assert await db.execute(insert) == "INSERT 0 1"
    assert await db.execute(insert) == "INSERT 0 0"


async def test_the_dashboard_views_answer(db):
    open_columns = [r["column_name"] for r in await db.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'v_open_incidents' "
        "ORDER BY ordinal_position")]
    assert open_columns == ["incident_id", "category", "domain", "priority", "district", "street", "lat", "lon",
                            "status", "created_at", "age_s"]
    rows = await db.fetch("SELECT * FROM v_street_performance")
    for row in rows:
        assert row["compliance_24h"] is None or 0 <= row["compliance_24h"] <= 1
