import pytest
from django.db import transaction

from experiments_app import gateway
from experiments_app.audit import actions
from experiments_app.audit.models import AuditEntry
from experiments_app.audit.services import audit_chain_verify, audit_record

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("action", actions.ALL)
def test_each_action_writes_its_entry_and_it_joins_the_chain(action, editor, chained):
    with transaction.atomic():
        entry = audit_record(action=action, actor=editor, experiment_id="exp-1", experiment_key="checkout",
                             change_request_id=7, bulk_job_id=3, before={"rolloutPercentage": 10},
                             after={"rolloutPercentage": 20}, reason="ramp up", correlation_id="cr-7",
                             upstream_version_before=4, upstream_version_after=5, detail={"note": "x"})

    stored = AuditEntry.objects.get(pk=entry.pk)
    assert (stored.action, stored.actor_label, stored.actor_user_id) == (action, "eddie-editor", editor.pk)
    assert (stored.experiment_id, stored.experiment_key, stored.change_request_id, stored.bulk_job_id) == \
        ("exp-1", "checkout", 7, 3)
    assert (stored.before, stored.after, stored.reason) == ({"rolloutPercentage": 10}, {"rolloutPercentage": 20},
                                                            "ramp up")
    assert (stored.upstream_version_before, stored.upstream_version_after) == (4, 5)
    assert stored.sequence is None, "written to the outbox, chained only by the processor"
    [*_, last] = chained()
    assert last.pk == entry.pk and last.sequence is not None and len(last.chain_hash) == 64
    assert audit_chain_verify().ok


def test_unknown_action_is_refused():
    with pytest.raises(ValueError, match="Unknown audit action"):
        audit_record(action="change_request.teleported")


def test_actor_may_be_the_system_or_a_label():
    assert audit_record(action=actions.POLICY_CHANGED).actor_label == "system"
    assert audit_record(action=actions.EXTERNAL_CHANGE, actor="system:drift").actor_label == "system:drift"


def test_upstream_calls_and_correlation_id_come_from_the_gateway():
    calls = [gateway.CallRecord("PATCH", "/api/1/experiments/e1", 200, 12.345, 1, "cr-9"),
             {"method": "GET", "path": "/api/1/experiments/e1/versions", "status": 200, "latency_ms": 3.0,
              "attempt": 1, "correlation_id": "cr-9", "secret": "dropped"}]
    with gateway.correlation("cr-9"):
        entry = audit_record(action=actions.CHANGE_REQUEST_APPLIED, upstream_calls=calls)

    stored = AuditEntry.objects.get(pk=entry.pk)
    assert stored.correlation_id == "cr-9"
    assert stored.upstream_calls[0] == {"method": "PATCH", "path": "/api/1/experiments/e1", "status": 200,
                                        "latency_ms": 12.3, "attempt": 1, "correlation_id": "cr-9", "error": None}
    assert "secret" not in stored.upstream_calls[1]


def test_entry_rolls_back_with_the_change_it_records():
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action=actions.CHANGE_REQUEST_APPROVED, reason="approved")
        raise RuntimeError("the change failed")

    assert not AuditEntry.objects.filter(action=actions.CHANGE_REQUEST_APPROVED).exists()


def test_processing_is_queued_only_when_the_transaction_commits(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        audit_record(action=actions.POLICY_CHANGED)

    assert len(callbacks) == 1
