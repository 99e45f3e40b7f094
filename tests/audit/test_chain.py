import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from experiments_app.audit import actions
from experiments_app.audit.models import AuditEntry
from experiments_app.audit.services import audit_chain_verify, audit_outbox_process, audit_record

pytestmark = pytest.mark.django_db
TABLE = AuditEntry._meta.db_table
POSTGRES = connection.vendor == "postgresql"


@pytest.fixture
def five_entries():
    for n in range(5):
        audit_record(action=actions.CHANGE_REQUEST_EDITED, actor=f"user-{n}", experiment_id="exp-1",
                     before={"rolloutPercentage": n}, after={"rolloutPercentage": n + 1}, reason=f"step {n}")
    audit_outbox_process()
    return list(AuditEntry.objects.order_by("sequence"))


@pytest.fixture
def out_of_band():
    """Raw SQL against the audit table, as someone with database access would; on PostgreSQL
    the append-only trigger is switched off for the test's transaction."""

    def execute(sql: str, params: list | tuple = ()) -> None:
        with connection.cursor() as cursor:
            if POSTGRES:
                cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER audit_entry_append_only")
            cursor.execute(sql, params)
            if POSTGRES:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred checks pending on the table
                cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER audit_entry_append_only")

    return execute


def verify_output() -> str:
    try:
        call_command("verify_audit_chain")
    except CommandError as error:
        return str(error)
    return "OK"


def test_an_untouched_chain_verifies(five_entries):
    assert [e.sequence for e in five_entries] == [1, 2, 3, 4, 5]
    report = audit_chain_verify()
    assert report.ok and report.checked == 5


def test_verify_reports_an_entry_changed_out_of_band(five_entries, out_of_band):
    out_of_band(f"UPDATE {TABLE} SET reason = %s WHERE id = %s", ["nothing to see", five_entries[2].id])

    message = verify_output()

    assert "Broken link at sequence 3" in message and f"entry #{five_entries[2].id}" in message
    assert "changed" in message


def test_verify_reports_a_rehashed_entry_as_changed(five_entries, out_of_band):
    # Someone who also recomputes the hashes still cannot make the portal's seal.
    from experiments_app.audit.services import entry_content_hash, link_hash

    victim = five_entries[1]
    victim.reason = "rewritten"
    content_hash = entry_content_hash(victim, 2)
    out_of_band(f"UPDATE {TABLE} SET reason = %s, content_hash = %s, chain_hash = %s WHERE id = %s",
                ["rewritten", content_hash, link_hash(five_entries[0].chain_hash, content_hash), victim.id])

    assert "Broken link at sequence 2" in verify_output()


def test_verify_reports_an_entry_removed_from_the_middle(five_entries, out_of_band):
    out_of_band(f"DELETE FROM {TABLE} WHERE id = %s", [five_entries[3].id])

    message = verify_output()

    assert "Broken link at sequence 4" in message and "removed" in message


def test_verify_reports_entries_removed_from_the_end(five_entries, out_of_band):
    out_of_band(f"DELETE FROM {TABLE} WHERE id = %s", [five_entries[4].id])

    assert "Broken link at sequence 5" in verify_output()


def test_verify_reports_an_entry_inserted_out_of_band(five_entries, out_of_band):
    out_of_band(
        f"INSERT INTO {TABLE} (created_at, action, actor_label, experiment_id, experiment_key, before, after, "
        "reason, correlation_id, upstream_calls, detail, seal, content_hash, chain_hash) "
        "VALUES (CURRENT_TIMESTAMP, %s, 'mallory', 'exp-1', '', 'null', 'null', 'backdated', '', '[]', '{}', "
        "%s, '', '')", [actions.CHANGE_REQUEST_APPROVED, "f" * 64])

    message = verify_output()
    assert "not written by the portal" in message

    audit_outbox_process()  # chained by the worker all the same: verify still names it
    assert "Broken link at sequence 6" in verify_output()


def test_a_copy_of_an_entry_cannot_be_inserted(five_entries):
    copy = AuditEntry.objects.get(pk=five_entries[0].pk)
    copy.pk = None
    copy.sequence, copy.content_hash, copy.chain_hash, copy.processed_at = None, "", "", None

    with pytest.raises(IntegrityError), transaction.atomic():
        copy.save(force_insert=True)


def test_entries_are_chained_once_however_often_processing_runs(five_entries):
    audit_record(action=actions.POLICY_CHANGED)

    assert audit_outbox_process() == 1
    assert audit_outbox_process() == 0
    assert list(AuditEntry.objects.order_by("sequence").values_list("sequence", flat=True)) == [1, 2, 3, 4, 5, 6]
    assert audit_chain_verify().ok


@pytest.mark.skipif(not POSTGRES, reason="the append-only trigger exists on PostgreSQL only")
@pytest.mark.parametrize("sql", [f"UPDATE {TABLE} SET reason = 'x'", f"DELETE FROM {TABLE}",
                                 f"UPDATE {TABLE} SET sequence = NULL, content_hash = '', chain_hash = ''"])
def test_postgresql_rejects_updates_and_deletes_of_audit_rows(five_entries, sql):
    from django.db import DatabaseError

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)


@pytest.mark.skipif(not POSTGRES, reason="the append-only trigger exists on PostgreSQL only")
def test_postgresql_rejects_changing_content_while_chaining():
    entry = audit_record(action=actions.POLICY_CHANGED, reason="original")
    from django.db import DatabaseError

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET sequence = 1, processed_at = now(), reason = 'edited' WHERE id = %s",
                       [entry.id])


def test_django_admin_shows_entries_but_cannot_add_change_or_delete_them(client, django_user_model, five_entries):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x"))
    admin_client, entry = client, five_entries[0]
    assert admin_client.get("/admin/audit/auditentry/").status_code == 200
    assert admin_client.get("/admin/audit/auditentry/add/").status_code == 403
    assert admin_client.get(f"/admin/audit/auditentry/{entry.pk}/delete/").status_code == 403
    admin_client.post(f"/admin/audit/auditentry/{entry.pk}/change/", {"reason": "edited"})
    admin_client.post("/admin/audit/auditentry/", {"action": "delete_selected", "_selected_action": [entry.pk]})
    assert AuditEntry.objects.get(pk=entry.pk).reason == "step 0"
    assert audit_chain_verify().ok


@pytest.mark.skipif(not POSTGRES, reason="concurrent transactions need a server database (runs in CI's PostgreSQL pass)")
@pytest.mark.django_db(transaction=True)
def test_concurrent_processors_chain_each_entry_once():
    import threading

    for n in range(300):
        audit_record(action=actions.BULK_JOB_PROGRESSED, bulk_job_id=1, detail={"n": n})
    counts, errors = [], []

    def process():
        try:
            counts.append(audit_outbox_process(batch_size=40))
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=process) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors and sum(counts) == 300
    assert sorted(AuditEntry.objects.values_list("sequence", flat=True)) == list(range(1, 301))
    assert audit_chain_verify().ok
