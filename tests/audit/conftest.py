import pytest

from experiments_app.audit.models import AuditEntry
from experiments_app.audit.services import audit_outbox_process


@pytest.fixture
def chained():
    """Process the outbox now, as the worker would, and give back every entry in chain order."""

    def run() -> list[AuditEntry]:
        audit_outbox_process()
        return list(AuditEntry.objects.order_by("sequence"))

    return run
