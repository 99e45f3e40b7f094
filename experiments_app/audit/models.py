"""Audit rows are written once (the outbox) and completed once (their place in the hash chain).

Nothing else ever changes them: on PostgreSQL a trigger (migration 0002) enforces it; the
portal has no view, form or admin that edits or deletes them. Delivery to sinks and drift
bookkeeping live in their own tables so that audit rows never need another update.
"""

from django.db import models

from experiments_app.audit import actions

# The fields that make up an entry's content: sealed when written, hashed (with the id, seal
# and sequence) when chained.
CONTENT_FIELDS = (
    "created_at", "action", "actor_label", "actor_user_id", "experiment_id", "experiment_key",
    "change_request_id", "bulk_job_id", "before", "after", "reason", "correlation_id", "upstream_calls",
    "upstream_version_before", "upstream_version_after", "detail",
)
# The fields the chain processor fills in, exactly once.
CHAIN_FIELDS = ("sequence", "content_hash", "chain_hash", "processed_at")


class AuditEntry(models.Model):
    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField()
    action = models.CharField(max_length=64)
    actor_label = models.CharField(max_length=150, blank=True)  # username, "system" or "system:drift", …
    actor_user_id = models.BigIntegerField(null=True, blank=True)  # no FK: users may go, entries stay
    experiment_id = models.CharField(max_length=200, blank=True)
    experiment_key = models.CharField(max_length=200, blank=True)
    change_request_id = models.BigIntegerField(null=True, blank=True)
    bulk_job_id = models.BigIntegerField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    correlation_id = models.CharField(max_length=100, blank=True)
    upstream_calls = models.JSONField(default=list, blank=True)
    upstream_version_before = models.IntegerField(null=True, blank=True)
    upstream_version_after = models.IntegerField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    # HMAC of the content, made when written: rows inserted out of band cannot forge one, and
    # being unique, a copied row cannot be inserted twice.
    seal = models.CharField(max_length=64, unique=True)

    sequence = models.BigIntegerField(null=True, blank=True, unique=True)
    content_hash = models.CharField(max_length=64, blank=True, default="")
    chain_hash = models.CharField(max_length=64, blank=True, default="")
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="audit_created_idx"),
            models.Index(fields=["experiment_id", "-created_at", "-id"], name="audit_experiment_idx"),
            models.Index(fields=["experiment_key", "-created_at", "-id"], name="audit_experiment_key_idx"),
            models.Index(fields=["actor_label", "-created_at", "-id"], name="audit_actor_idx"),
            models.Index(fields=["actor_label", "action", "-created_at", "-id"], name="audit_actor_action_idx"),
            models.Index(fields=["action", "-created_at", "-id"], name="audit_action_idx"),
            models.Index(fields=["correlation_id"], name="audit_correlation_idx"),
            models.Index(fields=["id"], name="audit_unprocessed_idx", condition=models.Q(sequence__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.action} by {self.actor_label or 'system'}"

    @property
    def action_label(self) -> str:
        return actions.label(self.action)

    @property
    def summary(self) -> str:
        """The reason, or else the detail in a line (sign-ins and role changes have no reason)."""
        if self.reason or not isinstance(self.detail, dict):
            return self.reason
        return " · ".join(f"{key}: {', '.join(map(str, value)) if isinstance(value, list) else value}"
                          for key, value in self.detail.items() if not isinstance(value, dict))

    @property
    def action_subject(self) -> str:
        return self.action.partition(".")[0]


class AuditChainHead(models.Model):
    """One row: the last sequence number and chain hash. Locked while entries are chained."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_sequence = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)
    updated_at = models.DateTimeField(auto_now=True)


class AuditDelivery(models.Model):
    """An entry's delivery to the webhook sink (kept apart so audit rows are never updated)."""

    PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
    STATUSES = [(PENDING, "Pending"), (DELIVERED, "Delivered"), (FAILED, "Failed")]

    entry = models.OneToOneField(AuditEntry, on_delete=models.PROTECT, related_name="delivery")
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "audit deliveries"
        indexes = [models.Index(fields=["status", "updated_at"], name="audit_delivery_status_idx")]


class UpstreamWatermark(models.Model):
    """The newest upstream version the drift check has looked at, per experiment."""

    experiment_id = models.CharField(max_length=200, primary_key=True)
    experiment_key = models.CharField(max_length=200, blank=True)
    last_version = models.IntegerField()
    fingerprint = models.CharField(max_length=64, blank=True)  # of the listed configuration, when checked
    checked_at = models.DateTimeField(auto_now=True)
