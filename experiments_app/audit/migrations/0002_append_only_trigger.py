"""On PostgreSQL, audit rows refuse DELETE and every UPDATE except the one that chains them.

The chain processor fills sequence, content_hash, chain_hash and processed_at once, while they
are still empty, and changes nothing else; any other UPDATE, and every DELETE, raises.
(TRUNCATE is left to database privileges: the portal's role in production should not own the table.)
"""

from django.db import migrations

CONTENT_COLUMNS = [
    "id", "created_at", "action", "actor_label", "actor_user_id", "experiment_id", "experiment_key",
    "change_request_id", "bulk_job_id", "before", "after", "reason", "correlation_id", "upstream_calls",
    "upstream_version_before", "upstream_version_after", "detail", "seal",
]
_old = ", ".join(f"OLD.{c}" for c in CONTENT_COLUMNS)
_new = ", ".join(f"NEW.{c}" for c in CONTENT_COLUMNS)

CREATE = f"""
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit entries are append-only: refusing to delete entry %', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.sequence IS NULL AND OLD.processed_at IS NULL AND OLD.content_hash = '' AND OLD.chain_hash = ''
       AND NEW.sequence IS NOT NULL AND NEW.processed_at IS NOT NULL
       AND ROW({_new}) IS NOT DISTINCT FROM ROW({_old}) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only: refusing to update entry %', OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry;
CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry;
DROP FUNCTION IF EXISTS audit_entry_append_only();
"""


def _run_on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(sql)  # no parameters: RAISE's '%' placeholders stay as they are

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(_run_on_postgresql(CREATE), _run_on_postgresql(DROP))]
