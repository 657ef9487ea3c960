"""On PostgreSQL a checkpoint's reference to its run is kept by statement
triggers instead of the foreign key.

The foreign key checks every inserted row on its own (a query per row, at
commit), a third of what a batch append of 100 costs the server. The
triggers keep the same rule once per statement: an insert (or a change of
`run_id`) locks each run its rows name, as the key's check locks it, and
fails unless every one exists; a delete, a change of id or a truncate of
runs fails while a checkpoint still names one of them. Under READ COMMITTED,
the isolation the project runs at, each check sees what other transactions
committed before it, and the lock on the run's row orders an insert and a
delete of that run, so no checkpoint can outlive its run.

The model keeps its foreign key: the ORM's cascade, and the embedded SQLite
database, which keeps the constraint itself, are unchanged.

Both ways only take brief locks: the key is dropped and the triggers made in
one transaction, with no scan. Going back adds the key NOT VALID (checked for
new rows at once) in one transaction and validates the existing rows in a
second one, which lets writes go on while it scans the table.
"""

from django.db import migrations

FOREIGN_KEY = "runs_checkpoint_run_id_d05b2df8_fk_runs_run_id"

TRIGGERS = """
CREATE FUNCTION runs_checkpoint_runs_exist() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Locked as the foreign key's check locks them: a delete of one of these
    -- runs waits for this transaction, and then sees its checkpoints.
    IF (SELECT count(*) FROM (
            SELECT 1 FROM runs_run r WHERE r.id IN (SELECT run_id FROM new_rows) FOR KEY SHARE OF r
        ) AS held) <> (SELECT count(DISTINCT run_id) FROM new_rows) THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'insert or update on table "runs_checkpoint" names a run that does not exist',
            TABLE = 'runs_checkpoint', CONSTRAINT = 'checkpoint_run_exists';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER checkpoint_run_exists_on_insert AFTER INSERT ON runs_checkpoint
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION runs_checkpoint_runs_exist();
CREATE TRIGGER checkpoint_run_exists_on_update AFTER UPDATE ON runs_checkpoint
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION runs_checkpoint_runs_exist();

CREATE FUNCTION runs_run_checkpoints_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        -- Fired once every table of the TRUNCATE is emptied: one checkpoint left names a run no more.
        PERFORM 1 FROM runs_checkpoint LIMIT 1;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM 1 FROM runs_checkpoint c WHERE c.run_id IN (SELECT id FROM old_rows) LIMIT 1;
    ELSE
        PERFORM 1 FROM runs_checkpoint c
         WHERE c.run_id = OLD.id AND NOT EXISTS (SELECT 1 FROM runs_run r WHERE r.id = OLD.id) LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'update or delete on table "runs_run" leaves checkpoints without their run',
            TABLE = 'runs_run', CONSTRAINT = 'checkpoint_run_exists';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER run_checkpoints_gone_on_delete AFTER DELETE ON runs_run
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION runs_run_checkpoints_gone();
-- Per row, and only where the id is set to another: no transition table for
-- every update of a run (each append updates one).
CREATE TRIGGER run_checkpoints_gone_on_update AFTER UPDATE OF id ON runs_run
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION runs_run_checkpoints_gone();
CREATE TRIGGER run_checkpoints_gone_on_truncate AFTER TRUNCATE ON runs_run
    FOR EACH STATEMENT EXECUTE FUNCTION runs_run_checkpoints_gone();
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS checkpoint_run_exists_on_insert ON runs_checkpoint;
DROP TRIGGER IF EXISTS checkpoint_run_exists_on_update ON runs_checkpoint;
DROP TRIGGER IF EXISTS run_checkpoints_gone_on_delete ON runs_run;
DROP TRIGGER IF EXISTS run_checkpoints_gone_on_update ON runs_run;
DROP TRIGGER IF EXISTS run_checkpoints_gone_on_truncate ON runs_run;
DROP FUNCTION IF EXISTS runs_checkpoint_runs_exist();
DROP FUNCTION IF EXISTS runs_run_checkpoints_gone();
"""


def _foreign_keys(schema_editor) -> list[str]:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            """SELECT conname FROM pg_constraint
                WHERE contype = 'f' AND conrelid = 'runs_checkpoint'::regclass
                  AND confrelid = 'runs_run'::regclass"""
        )
        return [name for (name,) in cursor.fetchall()]


def to_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in _foreign_keys(schema_editor):
        schema_editor.execute(f'ALTER TABLE runs_checkpoint DROP CONSTRAINT "{name}"')
    schema_editor.execute(TRIGGERS)


def to_foreign_key(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    if not _foreign_keys(schema_editor):
        schema_editor.execute(
            f'ALTER TABLE runs_checkpoint ADD CONSTRAINT "{FOREIGN_KEY}" FOREIGN KEY (run_id) '
            "REFERENCES runs_run (id) DEFERRABLE INITIALLY DEFERRED NOT VALID"
        )
    schema_editor.execute(DROP_TRIGGERS)


def validate_foreign_key(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in _foreign_keys(schema_editor):
        schema_editor.execute(f'ALTER TABLE runs_checkpoint VALIDATE CONSTRAINT "{name}"')


class Migration(migrations.Migration):
    # Each step commits on its own: going back, the scan of VALIDATE runs
    # after the NOT VALID key (and its lock) is committed.
    atomic = False

    dependencies = [("runs", "0010_hand_over_freed_slot_function")]

    operations = [
        # Going back this runs last: the key already checks new rows.
        migrations.RunPython(migrations.RunPython.noop, validate_foreign_key, atomic=True),
        migrations.RunPython(to_triggers, to_foreign_key, atomic=True),
    ]
