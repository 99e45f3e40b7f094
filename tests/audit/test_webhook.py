import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from experiments_app.audit import actions
from experiments_app.audit.models import AuditDelivery
from experiments_app.audit.services import audit_outbox_process, audit_record
from experiments_app.audit.tasks import deliver_audit_entry

pytestmark = pytest.mark.django_db
SECRET = "webhook-test-secret"


@pytest.fixture
def receiver():
    """A real HTTP server on 127.0.0.1 that answers with the statuses queued in `answers`
    (then 200) and keeps what it received."""
    received, answers = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(answers.pop(0) if answers else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.received, server.answers = received, answers
    server.url = f"http://127.0.0.1:{server.server_address[1]}/audit-hook"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def webhook(settings, receiver):
    settings.AUDIT_WEBHOOK_URL = receiver.url
    settings.AUDIT_WEBHOOK_SECRET = SECRET
    settings.AUDIT_WEBHOOK_BACKOFF_SECONDS = 0
    return receiver


def test_chained_entries_are_posted_signed_after_a_failed_attempt(webhook):
    webhook.answers.append(503)
    entry = audit_record(action=actions.CHANGE_REQUEST_APPLIED, actor="ada", experiment_id="exp-1",
                         after={"rolloutPercentage": 30}, upstream_version_after=4)
    audit_outbox_process()
    delivery = AuditDelivery.objects.get(entry=entry)

    deliver_audit_entry.apply((delivery.id,))

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 2, 200)
    headers, body = webhook.received[-1]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Portal-Signature"] == expected
    sent = json.loads(body)
    entry.refresh_from_db()
    assert (sent["id"], sent["sequence"], sent["chain_hash"]) == (entry.id, entry.sequence, entry.chain_hash)
    assert sent["after"] == {"rolloutPercentage": 30}


def test_delivery_gives_up_after_the_last_attempt_and_says_why(webhook, settings):
    settings.AUDIT_WEBHOOK_MAX_ATTEMPTS = 3
    webhook.answers.extend([500, 500, 500])
    entry = audit_record(action=actions.POLICY_CHANGED)
    audit_outbox_process()
    delivery = AuditDelivery.objects.get(entry=entry)

    deliver_audit_entry.apply((delivery.id,))

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 3, "HTTP 500")


def test_a_delivered_entry_is_not_sent_again(webhook):
    entry = audit_record(action=actions.POLICY_CHANGED)
    audit_outbox_process()
    delivery = AuditDelivery.objects.get(entry=entry)

    deliver_audit_entry.apply((delivery.id,))
    deliver_audit_entry.apply((delivery.id,))

    assert len(webhook.received) == 1


def test_without_a_webhook_nothing_is_queued_for_delivery(settings):
    settings.AUDIT_WEBHOOK_URL = ""
    audit_record(action=actions.POLICY_CHANGED)
    audit_outbox_process()

    assert not AuditDelivery.objects.exists()
