from celery import shared_task
from django.conf import settings

from experiments_app.audit import services


@shared_task(name="audit.process_outbox")
def process_audit_outbox() -> int:
    """Chain unprocessed entries and re-queue webhook deliveries lost to a broker outage."""
    chained = services.audit_outbox_process()
    if services.webhook_configured():
        for delivery_id in services.audit_deliveries_stale():
            deliver_audit_entry.apply_async((delivery_id,), retry=False)
    return chained


@shared_task(name="audit.deliver_entry", bind=True, max_retries=None)
def deliver_audit_entry(self, delivery_id: int) -> None:
    attempts = getattr(settings, "AUDIT_WEBHOOK_MAX_ATTEMPTS", 8)
    final = self.request.retries + 1 >= attempts
    try:
        services.audit_delivery_send(delivery_id=delivery_id, final_attempt=final)
    except services.DeliveryFailed as error:
        base = getattr(settings, "AUDIT_WEBHOOK_BACKOFF_SECONDS", 5.0)
        raise self.retry(exc=error, countdown=min(base * 2 ** self.request.retries, 600)) from None


@shared_task(name="audit.detect_drift")
def audit_detect_drift() -> int:
    return services.audit_drift_detect().external_changes
