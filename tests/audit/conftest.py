import pytest

from experiments_app.audit.models import AuditEntry
from experiments_app.audit.services import audit_outbox_process


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The users these tests make need no slow password hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def chained():
    """Process the outbox now, as the worker would, and give back every entry in chain order."""

    def run() -> list[AuditEntry]:
        audit_outbox_process()
        return list(AuditEntry.objects.order_by("sequence"))

    return run
