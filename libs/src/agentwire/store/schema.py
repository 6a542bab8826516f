"""The store's tables, created and upgraded by numbered migrations.

Every service that opens the store runs ``migrate``; an advisory lock makes
concurrent pods take turns, and each migration runs once (``schema_migrations``).
Append new migrations at the end; never edit one that has shipped.

Lifetimes (STYLE.md, "Growth"): a ``tasks`` row lives until the task-state
topic's tombstone for it is indexed (the indexer writes that tombstone once
``active_at`` is older than ``retention.tasks_days``); readers ignore rows past
that age even before the tombstone lands. A ``sessions`` row lives while the
session has tasks; ``task_state_offsets`` has one row per partition. A ``session_meta``
row lives until its session has no task left and it is older than the tasks' lifetime
(then the sessions topic's tombstone removes it); ``session_meta_offsets``: one row per partition.
"""

from __future__ import annotations

import asyncpg

MIGRATION_LOCK = 0x61677769  # "agwi": pg_advisory_xact_lock key of the migration step

MIGRATIONS: list[str] = [
    # 1: tasks, the partitions' indexed offsets, sessions kept by triggers
    """
    CREATE TABLE tasks (
        workflow_id  text PRIMARY KEY,
        tenant       text NOT NULL,
        session_id   text NOT NULL,
        status       text NOT NULL,
        created_at   timestamptz NOT NULL,
        updated_at   timestamptz NOT NULL,
        completed_at timestamptz,
        active_at    timestamptz NOT NULL,  -- completed_at when ended, else updated_at: the lifetime counts from it
        partition    integer NOT NULL,      -- of the task-state topic (the indexer that owns it sweeps it)
        state        bytea NOT NULL         -- the TaskState record as written to the topic
    );
    CREATE INDEX tasks_by_tenant ON tasks (tenant, created_at DESC, workflow_id DESC) INCLUDE (active_at);
    CREATE INDEX tasks_by_status ON tasks (tenant, status, created_at DESC, workflow_id DESC) INCLUDE (active_at);
    CREATE INDEX tasks_by_session ON tasks (tenant, session_id, created_at DESC, workflow_id DESC)
        INCLUDE (active_at);
    CREATE INDEX tasks_by_age ON tasks (partition, active_at);

    CREATE TABLE task_state_offsets (
        partition   integer PRIMARY KEY,
        next_offset bigint NOT NULL        -- every record below it is applied to tasks
    );

    CREATE TABLE sessions (
        tenant         text NOT NULL,
        session_id     text NOT NULL,
        first_task_at  timestamptz NOT NULL,
        last_task_at   timestamptz NOT NULL,
        last_active_at timestamptz NOT NULL,
        task_count     integer NOT NULL,
        PRIMARY KEY (tenant, session_id)
    );
    CREATE INDEX sessions_by_tenant ON sessions (tenant, last_task_at DESC, session_id DESC)
        INCLUDE (last_active_at);

    CREATE FUNCTION sessions_on_task_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO sessions AS s (tenant, session_id, first_task_at, last_task_at, last_active_at, task_count)
        VALUES (NEW.tenant, NEW.session_id, NEW.created_at, NEW.created_at, NEW.active_at, 1)
        ON CONFLICT (tenant, session_id) DO UPDATE SET
            first_task_at = LEAST(s.first_task_at, EXCLUDED.first_task_at),
            last_task_at = GREATEST(s.last_task_at, EXCLUDED.last_task_at),
            last_active_at = GREATEST(s.last_active_at, EXCLUDED.last_active_at),
            task_count = s.task_count + 1;
        RETURN NULL;
    END $$;
    CREATE FUNCTION sessions_on_task_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE sessions SET last_active_at = GREATEST(last_active_at, NEW.active_at)
        WHERE tenant = NEW.tenant AND session_id = NEW.session_id;
        RETURN NULL;
    END $$;
    CREATE FUNCTION sessions_on_task_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE sessions SET task_count = task_count - 1
        WHERE tenant = OLD.tenant AND session_id = OLD.session_id;
        DELETE FROM sessions WHERE tenant = OLD.tenant AND session_id = OLD.session_id AND task_count <= 0;
        RETURN NULL;
    END $$;
    CREATE TRIGGER tasks_insert AFTER INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION sessions_on_task_insert();
    CREATE TRIGGER tasks_update AFTER UPDATE OF active_at ON tasks
        FOR EACH ROW WHEN (NEW.active_at > OLD.active_at) EXECUTE FUNCTION sessions_on_task_update();
    CREATE TRIGGER tasks_delete AFTER DELETE ON tasks FOR EACH ROW EXECUTE FUNCTION sessions_on_task_delete();
    """,
    # 2: what clients set on sessions (titles, deletions), indexed from the sessions topic (store/sessions.py)
    """
CREATE TABLE session_meta (
    tenant      text NOT NULL,
    session_id  text NOT NULL,
    title       text,
    deleted_at  timestamptz,           -- set: the session answers as an unknown one
    updated_at  timestamptz NOT NULL,  -- the record's; the newest wins
    partition   integer NOT NULL,      -- of the sessions topic (the indexer that owns it sweeps it)
    PRIMARY KEY (tenant, session_id)
);
CREATE INDEX session_meta_by_age ON session_meta (partition, updated_at);
CREATE TABLE session_meta_offsets (
    partition   integer PRIMARY KEY,
    next_offset bigint NOT NULL
);
    """,
    # 3: per-tenant, per-status counters (lists' total_count without counting rows), kept by triggers;
    # rows past their lifetime not yet tombstoned are found by (tenant, active_at) and taken off
    """
    CREATE TABLE task_counts (
        tenant text NOT NULL,
        status text NOT NULL,
        n      bigint NOT NULL,
        PRIMARY KEY (tenant, status)
    );
    CREATE INDEX tasks_by_tenant_age ON tasks (tenant, active_at);

    -- statement-level: one aggregated change per statement, counter rows locked in one order
    CREATE FUNCTION task_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO task_counts AS c (tenant, status, n)
            SELECT tenant, status, count(*) FROM came GROUP BY tenant, status ORDER BY tenant, status
            ON CONFLICT (tenant, status) DO UPDATE SET n = c.n + EXCLUDED.n;
        ELSIF TG_OP = 'DELETE' THEN
            UPDATE task_counts AS c SET n = c.n - g.k
            FROM (SELECT tenant, status, count(*) AS k FROM gone GROUP BY tenant, status ORDER BY tenant, status) g
            WHERE c.tenant = g.tenant AND c.status = g.status;
        ELSE
            INSERT INTO task_counts AS c (tenant, status, n)
            SELECT tenant, status, sum(d) FROM (
                SELECT tenant, status, -1 AS d FROM gone
                UNION ALL SELECT tenant, status, 1 AS d FROM came
            ) changes GROUP BY tenant, status HAVING sum(d) <> 0 ORDER BY tenant, status
            ON CONFLICT (tenant, status) DO UPDATE SET n = c.n + EXCLUDED.n;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks REFERENCING NEW TABLE AS came
        FOR EACH STATEMENT EXECUTE FUNCTION task_counts_apply();
    CREATE TRIGGER tasks_count_update AFTER UPDATE ON tasks REFERENCING OLD TABLE AS gone NEW TABLE AS came
        FOR EACH STATEMENT EXECUTE FUNCTION task_counts_apply();
    CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks REFERENCING OLD TABLE AS gone
        FOR EACH STATEMENT EXECUTE FUNCTION task_counts_apply();
    INSERT INTO task_counts (tenant, status, n) SELECT tenant, status, count(*) FROM tasks GROUP BY tenant, status;
    """,
    # 4: each task's usage as columns (session totals summed without parsing state: a JSON text with an
    # escaped NUL cannot become jsonb); rows whose state holds one keep 0 until their next record
    r"""
    ALTER TABLE tasks ADD COLUMN tokens bigint NOT NULL DEFAULT 0, ADD COLUMN cost float8 NOT NULL DEFAULT 0;
    UPDATE tasks SET
        tokens = coalesce((convert_from(state, 'UTF8')::jsonb #>> '{usage,total_tokens}')::bigint, 0),
        cost = coalesce((convert_from(state, 'UTF8')::jsonb #>> '{usage,estimated_cost}')::float8, 0)
    WHERE strpos(convert_from(state, 'UTF8'), '\u0000') = 0;
    """,
]


async def migrate(conn: asyncpg.Connection) -> int:
    """Apply the migrations this database lacks; returns the schema version."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz"
            " NOT NULL DEFAULT now())"
        )
        done = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
        for version, sql in enumerate(MIGRATIONS, start=1):
            if version > done:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
    return len(MIGRATIONS)
