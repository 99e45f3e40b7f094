"""Tables of the embedded Management API.

Inclusions have their own table (one row per id, ordered by their auto-increment id) so that
adding or removing ids never rewrites a whole list; versions store the full flagConfig as JSON
and the experiment row keeps a ``latest_version`` counter so that a write stays O(1) however
many versions exist.
"""

from django.db import models


class Project(models.Model):
    id = models.CharField(primary_key=True, max_length=32)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.id} ({self.name})"


class ApiKey(models.Model):
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    projects = models.ManyToManyField(Project, related_name="api_keys", blank=True)
    all_projects = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Deployment(models.Model):
    CLIENT = "client"
    SERVER = "server"
    TYPES = [(CLIENT, "client"), (SERVER, "server")]

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="deployments")
    label = models.CharField(max_length=200)
    key = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=10, choices=TYPES)
    deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "label"], name="mapi_deployment_label_unique")]


class Experiment(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="experiments")
    key = models.CharField(max_length=200)
    name = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=False)
    ever_enabled = models.BooleanField(default=False)
    evaluation_mode = models.CharField(max_length=10, default="remote")
    bucketing_key = models.CharField(max_length=200, default="amplitude_id")
    bucketing_salt = models.CharField(max_length=200)
    bucketing_unit = models.CharField(max_length=200, default="User")
    rolled_out_variant = models.CharField(max_length=200, null=True, blank=True)
    rollout_percentage = models.FloatField(default=0)
    rollout_weights = models.JSONField(default=dict)
    target_segments = models.JSONField(default=list)
    sticky_bucketing = models.BooleanField(default=False)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    experiment_type = models.CharField(max_length=30, default="hypothesis-testing")
    decision = models.CharField(max_length=200, null=True, blank=True)
    decision_reason = models.TextField(null=True, blank=True)
    archived = models.BooleanField(default=False)
    tags = models.JSONField(default=list)
    exposure_event = models.JSONField(null=True, blank=True)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    latest_version = models.PositiveIntegerField(default=0)
    deployments = models.ManyToManyField(Deployment, through="ExperimentDeployment", related_name="experiments")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "key"], name="mapi_experiment_key_unique")]
        indexes = [models.Index(fields=["project", "archived", "-id"], name="mapi_experiment_list")]


class ExperimentDeployment(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="deployment_links")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="experiment_links")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "deployment"], name="mapi_experiment_deployment_unique")
        ]


class Variant(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    key = models.CharField(max_length=200)
    name = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    payload = models.JSONField(null=True, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["experiment", "key"], name="mapi_variant_key_unique")]


class Inclusion(models.Model):
    """One included user or device id; list order is the order of ``id`` (never renumbered)."""

    id = models.BigAutoField(primary_key=True)
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="inclusions")
    user_id = models.CharField(max_length=256)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["variant", "user_id"], name="mapi_inclusion_unique")]
        indexes = [models.Index(fields=["variant", "id"], name="mapi_inclusion_order")]


class Version(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200)
    flag_config = models.JSONField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "version"], name="mapi_version_unique")]


class RateCounter(models.Model):
    """One request counter per (project, window) — shared by every server process."""

    bucket = models.CharField(max_length=100, unique=True)
    count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)
