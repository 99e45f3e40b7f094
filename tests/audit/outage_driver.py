"""Run by test_broker_outage.py in its own process, against the test's database and broker.

    python tests/audit/outage_driver.py record <n> <label>   n changes, each with its audit entry
    python tests/audit/outage_driver.py tick                  what beat sends: process the outbox
    python tests/audit/outage_driver.py report                the chain as JSON

Several commands may run in one process, separated by "+": ``tick + tick + record 2 after``.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from django.db import transaction  # noqa: E402

from experiments_app.audit import actions  # noqa: E402
from experiments_app.audit.models import AuditEntry  # noqa: E402
from experiments_app.audit.services import audit_chain_verify, audit_record  # noqa: E402
from experiments_app.audit.tasks import process_audit_outbox  # noqa: E402


def main(command: str, *args: str) -> None:
    if command == "record":
        count, label = int(args[0]), args[1]
        for n in range(count):
            with transaction.atomic():
                audit_record(action=actions.CHANGE_REQUEST_APPROVED, actor=label, experiment_id="exp-outage",
                             reason=f"{label} {n}")
        print(json.dumps({"recorded": count}))
    elif command == "tick":
        process_audit_outbox.delay()
    elif command == "report":
        report = audit_chain_verify()
        rows = list(AuditEntry.objects.order_by("id").values("id", "reason", "sequence"))
        print(json.dumps({"entries": rows, "ok": report.ok, "checked": report.checked,
                          "problem": report.problem.message if report.problem else None}))


if __name__ == "__main__":
    command: list[str] = []
    for word in [*sys.argv[1:], "+"]:
        if word == "+":
            main(*command)
            command = []
        else:
            command.append(word)
