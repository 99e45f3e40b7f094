from django.db import models
from django.urls import reverse


class Kind(models.TextChoices):
    ADD = "add", "Add ids to a variant"
    REMOVE = "remove", "Remove ids from a variant"
    REPLACE = "replace", "Replace a variant's inclusions"
    COPY = "copy", "Copy a variant's inclusions to another variant"
    SWEEP = "sweep", "Remove ids from every variant of matching experiments"
    UNDO = "undo", "Undo of an earlier job"


class JobStatus(models.TextChoices):
    PREVIEWING = "previewing", "Reading the variants"
    DRAFT = "draft", "Draft (preview)"
    REVIEW = "review", "In review"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected in review"
    EXPIRED = "expired", "Expired in review"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.REJECTED,
                     JobStatus.EXPIRED)


class SweepFilter(models.TextChoices):
    ALL = "all", "All experiments"
    TAG = "tag", "Experiments with a tag"
    DEPLOYMENT = "deployment", "Experiments in a deployment"


class Action(models.TextChoices):
    ADD = "add", "Add"
    REMOVE = "remove", "Remove"


class ItemStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class BulkJob(models.Model):
    """One bulk edit: the approved id list and targets, and (in its items) the ledger a worker
    works through. Lease fields let exactly one worker hold a running job at a time."""

    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.DRAFT, db_index=True)
    requester = models.ForeignKey("auth.User", on_delete=models.PROTECT, related_name="bulk_jobs")
    title = models.CharField(max_length=300)
    reason = models.TextField()
    source_experiment_id = models.CharField(max_length=64, blank=True)
    source_experiment_key = models.CharField(max_length=200, blank=True)
    source_variant_key = models.CharField(max_length=200, blank=True)
    sweep_filter = models.CharField(max_length=12, choices=SweepFilter.choices, blank=True)
    sweep_value = models.CharField(max_length=200, blank=True)
    ids_text = models.TextField(help_text="The job's ids, one a line, in input order, de-duplicated.")
    id_count = models.PositiveIntegerField()
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the ids, targets and kind")
    preview = models.JSONField(default=dict)
    change_request = models.OneToOneField("experiments_app.ChangeRequest", null=True, blank=True,
                                          on_delete=models.SET_NULL, related_name="bulk_job")
    undo_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="undo_jobs")
    cancel_requested = models.BooleanField(default=False)
    cancelled_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    lease_owner = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    verified = models.BooleanField(null=True)
    verification = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Bulk job #{self.pk}: {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("bulk_job_detail", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def ids(self) -> list[str]:
        return self.ids_text.split("\n") if self.ids_text else []


class BulkTarget(models.Model):
    """One (experiment, variant) the job touches."""

    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="targets")
    position = models.PositiveIntegerField()
    experiment_id = models.CharField(max_length=64)
    experiment_key = models.CharField(max_length=200, blank=True)
    variant_key = models.CharField(max_length=200)
    refreshed_at = models.DateTimeField(null=True, blank=True,
                                        help_text="When the worker re-read the variant before its first write")
    finished_at = models.DateTimeField(null=True, blank=True)
    verified = models.BooleanField(null=True)
    verify_detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["job", "experiment_id", "variant_key"], name="bulk_target_unique")]

    def __str__(self) -> str:
        return f"{self.experiment_key or self.experiment_id}/{self.variant_key}"


class BulkJobItem(models.Model):
    """A ledger line: one id to add to or remove from one target."""

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="items")
    target = models.ForeignKey(BulkTarget, on_delete=models.CASCADE, related_name="items")
    user_id = models.CharField(max_length=256)
    action = models.CharField(max_length=6, choices=Action.choices)
    status = models.CharField(max_length=8, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["target", "user_id", "action"], name="bulk_item_unique"),
        ]
        indexes = [
            models.Index(fields=["job", "status"], name="bulk_item_job_status"),
            models.Index(fields=["target", "status", "action"], name="bulk_item_target_status"),
        ]
