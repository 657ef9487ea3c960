"""A finish that frees a slot of its key hands it to the next run in line in
one round trip (runs.concurrency.hand_over_waiting): a function on
PostgreSQL, so that trying the key's row and counting its slots are two
statements (the count's snapshot taken after the lock) in one call. Other
databases keep the ORM's way and need nothing here."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION runs_hand_over_freed_slot(
    p_key text, p_reason text, p_mode text, p_now timestamptz, p_channel text,
    OUT picked_count integer, OUT handed_runs json)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    notified_count integer;
BEGIN
    -- Only tried, never waited for: the caller holds the journal's clock.
    PERFORM 1 FROM runs_concurrencykey WHERE key = p_key FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;  -- both NULL: the row is taken, the caller hands over after its commit
    END IF;
    -- A statement of its own, whose snapshot is taken now that the row is
    -- locked: it sees whatever the row's previous holder committed.
    WITH picked AS (
        SELECT id, mode
          FROM runs_run
         WHERE concurrency_key = p_key AND status = 'pending' AND waiting_for IS NOT NULL
           AND waiting_for ->> 'reason' = p_reason
         ORDER BY created_at
         LIMIT GREATEST(0, (SELECT "limit" FROM runs_concurrencykey WHERE key = p_key) - (
             SELECT count(*) FROM runs_run
              WHERE concurrency_key = p_key
                AND (status = 'running' OR (status = 'pending' AND waiting_for IS NULL))))
           FOR UPDATE SKIP LOCKED
    ), handed AS (
        UPDATE runs_run AS r SET waiting_for = NULL, not_before = NULL, updated_at = p_now
          FROM picked WHERE r.id = picked.id AND picked.mode = p_mode
        RETURNING r.id, r.spec, r.created_at, r.priority
    ), notified AS (SELECT pg_notify(p_channel, handed.id::text) FROM handed)
    SELECT (SELECT count(*) FROM picked), (SELECT count(*) FROM notified),
           (SELECT json_agg(json_build_array(handed.id, handed.spec, handed.created_at, handed.priority)
                            ORDER BY handed.created_at) FROM handed)
      INTO picked_count, notified_count, handed_runs;
END
$$
"""

DROP = "DROP FUNCTION IF EXISTS runs_hand_over_freed_slot(text, text, text, timestamptz, text)"


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):

    dependencies = [
        ("runs", "0009_run_priority"),
    ]

    operations = [
        migrations.RunPython(create_function, drop_function),
    ]
