"""On PostgreSQL, trigram indexes for the audit page's free-text search.

The search is ``UPPER(column) LIKE UPPER('%text%')`` over the reason, the experiment key and the
detail as text (Django's icontains); without these a rare word means reading every row. The
indexes are on exactly those expressions. pg_trgm is a trusted extension (the database owner may
create it); where it cannot be created, the search still works, only slower.
"""

import logging

from django.db import DatabaseError, migrations, transaction

logger = logging.getLogger("experiments_app.audit")

INDEXES = {
    "audit_reason_trgm": "upper(reason)",
    "audit_experiment_key_trgm": "upper((experiment_key)::text)",
    "audit_detail_trgm": "upper((detail)::text)",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        try:
            with transaction.atomic(using=schema_editor.connection.alias):
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except DatabaseError as error:
            logger.warning("pg_trgm is not available (%s): audit free-text search will not be indexed", error)
            return
        for name, expression in INDEXES.items():
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON audit_auditentry "
                           f"USING gin ({expression} gin_trgm_ops)")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in INDEXES:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_actor_action_index")]

    operations = [migrations.RunPython(create, drop)]
