from django.db import models


class Access(models.Model):
    """Holds the portal's own permissions; roles (groups) are bundles of them.

    It has no table: the permissions belong to no single model, so they hang off this one.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_portal", "Can view experiments, requests, jobs and history"),
            ("request_change", "Can create change requests and bulk jobs"),
            ("approve_change", "Can review other people's change requests"),
            ("administer_portal", "Can manage policy, users and keys"),
        ]


class Tier(models.TextChoices):
    """How risky a change is; the policy says how many approvals each tier needs."""

    METADATA = "metadata", "Metadata (name, description, tags)"
    STANDARD = "standard", "Rollout-affecting change"
    HIGH = "high", "High risk"
    BULK_SMALL = "bulk_small", "Bulk inclusions: small, one variant"
    BULK_LARGE = "bulk_large", "Bulk inclusions: large"
    BULK_SWEEP = "bulk_sweep", "Bulk inclusions: sweep across experiments"


DEFAULT_REQUIRED_APPROVALS = {
    Tier.METADATA: 0,
    Tier.STANDARD: 1,
    Tier.HIGH: 2,
    Tier.BULK_SMALL: 0,
    Tier.BULK_LARGE: 1,
    Tier.BULK_SWEEP: 2,
}


class Policy(models.Model):
    """Approvals a tier needs, and (optionally) the only group whose members may give them."""

    tier = models.CharField(max_length=20, choices=Tier.choices, unique=True)
    required_approvals = models.PositiveSmallIntegerField()
    approver_group = models.ForeignKey("auth.Group", null=True, blank=True, on_delete=models.SET_NULL,
                                       help_text="Leave empty to let any approver approve.")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"{self.get_tier_display()}: {self.required_approvals} approval(s)"


class Status(models.TextChoices):
    PENDING = "pending", "Pending review"
    APPROVED = "approved", "Approved, queued"
    APPLYING = "applying", "Applying"
    APPLIED = "applied", "Applied"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    CONFLICT = "conflict", "Conflict"
    FAILED = "failed", "Failed"


OPEN_STATUSES = (Status.PENDING,)
FINAL_STATUSES = (Status.APPLIED, Status.REJECTED, Status.CANCELLED, Status.EXPIRED, Status.CONFLICT, Status.FAILED)


class ChangeRequest(models.Model):
    """A proposed change: the exact upstream operations (the plan), what they were made against
    (the snapshot and base version), and the hash that approvals are bound to."""

    kind = models.CharField(max_length=40)
    tier = models.CharField(max_length=20, choices=Tier.choices)
    title = models.CharField(max_length=300)
    reason = models.TextField()
    requester = models.ForeignKey("auth.User", on_delete=models.PROTECT, related_name="change_requests")
    experiment_id = models.CharField(max_length=64, blank=True, db_index=True)
    experiment_key = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    plan = models.JSONField()
    base_version = models.PositiveIntegerField(null=True, blank=True)
    snapshot = models.JSONField(default=dict, blank=True)
    plan_hash = models.CharField(max_length=64)
    required_approvals = models.PositiveSmallIntegerField()
    approver_group = models.ForeignKey("auth.Group", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    correlation_id = models.CharField(max_length=64, unique=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    rebased_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rebases")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status == Status.PENDING


class Approval(models.Model):
    change_request = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey("auth.User", on_delete=models.PROTECT, related_name="+")
    plan_hash = models.CharField(max_length=64)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["change_request", "approver", "plan_hash"], name="one_approval_per_plan"),
        ]


class Comment(models.Model):
    change_request = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey("auth.User", on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class StatusChange(models.Model):
    """The status history a request page shows (the audit log holds the full record)."""

    change_request = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="status_changes")
    status = models.CharField(max_length=20, choices=Status.choices)
    actor = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
