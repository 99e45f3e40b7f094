"""Reads and serialisation to the seed's JSON shapes (camelCase; ids as strings).

``state`` is derived, never stored:
- ``planning``       the experiment has never been enabled;
- ``running``        it is enabled now;
- ``decision-made``  it was enabled once and has been disabled since (stopped).
Archiving (``archive: true``) sets ``archived`` and ``deleted`` and leaves ``state`` alone.
"""

import datetime
import json
from collections.abc import Iterable

from django.db.models import Prefetch, QuerySet, TextField
from django.db.models.functions import Cast

from .errors import not_found
from .models import Deployment, Experiment, ExperimentDeployment, Inclusion, Variant, Version
from .validation import NUMERIC_ID_RE, number_out


def iso_utc(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def derive_state(*, enabled: bool, ever_enabled: bool) -> str:
    if enabled:
        return "running"
    return "decision-made" if ever_enabled else "planning"


def experiment_state(experiment: Experiment) -> str:
    return derive_state(enabled=experiment.enabled, ever_enabled=experiment.ever_enabled)


def _date(value: datetime.date | None) -> str | None:
    return value.isoformat() if value else None


def _deployment_ids(experiment: Experiment) -> list[str]:
    return [str(link.deployment_id) for link in experiment.deployment_links.all()]


EXPERIMENT_COLUMNS = (
    "id",
    "project_id",
    "key",
    "name",
    "decision",
    "decision_reason",
    "description",
    "enabled",
    "ever_enabled",
    "evaluation_mode",
    "bucketing_key",
    "bucketing_salt",
    "bucketing_unit",
    "rolled_out_variant",
    "rollout_percentage",
    "sticky_bucketing",
    "start_date",
    "end_date",
    "experiment_type",
    "archived",
    "created_by",
    "created_at",
)
# JSON columns are copied into the answer as the database's JSON text, never decoded and
# re-encoded: that round trip was most of the time of a 1,000-experiment page.
RAW_JSON_COLUMNS = {
    "rollout_weights": "rolloutWeights",
    "target_segments": "targetSegments",
    "tags": "tags",
    "exposure_event": "exposureEvent",
}


def _experiment_document(row: dict, variant_keys: list[str], deployment_ids: list[str]) -> str:
    """The seed's experiment object plus ``createdAt`` and ``archived``, as JSON text."""
    fields = {
        "id": str(row["id"]),
        "projectId": str(row["project_id"]),
        "deployments": deployment_ids,
        "key": row["key"],
        "name": row["name"],
        "decision": row["decision"],
        "decisionReason": row["decision_reason"],
        "description": row["description"],
        "enabled": row["enabled"],
        "evaluationMode": row["evaluation_mode"],
        "bucketingKey": row["bucketing_key"],
        "bucketingSalt": row["bucketing_salt"],
        "bucketingUnit": row["bucketing_unit"],
        "variants": [{"key": key} for key in variant_keys],
        "rolledOutVariant": row["rolled_out_variant"],
        "rolloutPercentage": number_out(row["rollout_percentage"]),
        "stickyBucketing": row["sticky_bucketing"],
        "state": derive_state(enabled=row["enabled"], ever_enabled=row["ever_enabled"]),
        "startDate": _date(row["start_date"]),
        "endDate": _date(row["end_date"]),
        "experimentType": row["experiment_type"],
        "deleted": row["archived"],
        "archived": row["archived"],
        "createdBy": row["created_by"],
        "createdAt": iso_utc(row["created_at"]),
    }
    raw = "".join(
        f', "{name}": {row[f"{column}__raw"] or "null"}' for column, name in RAW_JSON_COLUMNS.items()
    )
    return json.dumps(fields)[:-1] + raw + "}"


def experiment_documents(queryset: QuerySet[Experiment]) -> list[str]:
    """Serialise experiments in three queries whatever their number (rows, variants, deployments),
    without building model instances — the 1,000-experiment list page stays fast."""
    raw_columns = {f"{column}__raw": Cast(column, TextField()) for column in RAW_JSON_COLUMNS}
    rows = list(queryset.annotate(**raw_columns).values(*EXPERIMENT_COLUMNS, *raw_columns))
    ids = [row["id"] for row in rows]
    variant_keys: dict[int, list[str]] = {experiment_id: [] for experiment_id in ids}
    deployment_ids: dict[int, list[str]] = {experiment_id: [] for experiment_id in ids}
    if ids:
        # An id range instead of IN (1,000 ids): cheaper to build and run; rows of experiments
        # outside the page that fall in the range are skipped.
        span = {"experiment_id__gte": min(ids), "experiment_id__lte": max(ids)}
        for experiment_id, key in (
            Variant.objects.filter(**span).order_by("experiment_id", "position", "id").values_list("experiment_id", "key")
        ):
            if experiment_id in variant_keys:
                variant_keys[experiment_id].append(key)
        for experiment_id, deployment_id in (
            ExperimentDeployment.objects.filter(**span)
            .order_by("experiment_id", "id")
            .values_list("experiment_id", "deployment_id")
        ):
            if experiment_id in deployment_ids:
                deployment_ids[experiment_id].append(str(deployment_id))
    return [_experiment_document(row, variant_keys[row["id"]], deployment_ids[row["id"]]) for row in rows]


def experiment_document(experiment_id: int) -> str:
    documents = experiment_documents(Experiment.objects.filter(pk=experiment_id))
    if not documents:
        raise not_found(f"experiment {experiment_id} not found", "id")
    return documents[0]


def flag_config(experiment: Experiment) -> dict:
    """What a version records: the seed's flagConfig fields, plus the other editable settings
    (rolloutPercentage, tags, exposureEvent, archived, evaluationMode, bucketing) and each
    variant's name/description/payload, so that every kind of edit shows in the history."""
    return {
        "id": str(experiment.id),
        "projectId": str(experiment.project_id),
        "deployments": _deployment_ids(experiment),
        "key": experiment.key,
        "name": experiment.name,
        "description": experiment.description,
        "enabled": experiment.enabled,
        "evaluationMode": experiment.evaluation_mode,
        "bucketingKey": experiment.bucketing_key,
        "bucketingSalt": experiment.bucketing_salt,
        "bucketingUnit": experiment.bucketing_unit,
        "variants": [
            {"key": v.key, "name": v.name, "description": v.description, "payload": v.payload}
            for v in experiment.variants.all()
        ],
        "rolloutPercentage": number_out(experiment.rollout_percentage),
        "rolloutWeights": experiment.rollout_weights,
        "targetSegments": experiment.target_segments,
        "stickyBucketing": experiment.sticky_bucketing,
        "state": experiment_state(experiment),
        "startDate": _date(experiment.start_date),
        "endDate": _date(experiment.end_date),
        "experimentType": experiment.experiment_type,
        "tags": experiment.tags,
        "exposureEvent": experiment.exposure_event,
        "archived": experiment.archived,
    }


def variant_json(variant: Variant, weights: dict) -> dict:
    return {
        "key": variant.key,
        "name": variant.name,
        "payload": variant.payload,
        "description": variant.description,
        "rolloutWeight": weights.get(variant.key, 0),
    }


def deployment_json(deployment: Deployment) -> dict:
    return {
        "id": str(deployment.id),
        "projectId": str(deployment.project_id),
        "label": deployment.label,
        "key": deployment.key,
        "deleted": deployment.deleted,
    }


def version_json(version: Version) -> dict:
    return {
        "createdAt": iso_utc(version.created_at),
        "createdBy": version.created_by,
        "version": version.version,
        "flagConfig": version.flag_config,
    }


def experiments_with_relations(*, full_variants: bool = False) -> QuerySet[Experiment]:
    variants = Variant.objects.order_by("position", "id")
    if not full_variants:
        variants = variants.only("id", "experiment_id", "key", "position")
    return Experiment.objects.prefetch_related(
        Prefetch("variants", queryset=variants),
        Prefetch("deployment_links", queryset=ExperimentDeployment.objects.order_by("id")),
    )


def parse_id(raw: str, what: str) -> int:
    if not NUMERIC_ID_RE.match(raw or "") or int(raw) == 0:
        raise not_found(f"{what} {raw!r} not found", what)
    return int(raw)


def experiment_loaded(experiment_id: int) -> Experiment:
    """The experiment with its variants and deployments (access was checked by the caller)."""
    experiment = experiments_with_relations().filter(pk=experiment_id).first()
    if experiment is None:
        raise not_found(f"experiment {experiment_id} not found", "id")
    return experiment


def variant_of(experiment: Experiment, variant_key: str) -> Variant:
    for variant in experiment.variants.all():
        if variant.key == variant_key:
            return variant
    raise not_found(f"variant {variant_key!r} not found", "variantKey")


def experiment_list_page(
    *, project_ids: Iterable[str] | None, limit: int, offset: int, include_archived: bool
) -> tuple[list[str], str | None]:
    queryset = Experiment.objects.all()
    if project_ids is not None:
        queryset = queryset.filter(project_id__in=list(project_ids))
    if not include_archived:
        queryset = queryset.filter(archived=False)
    documents = experiment_documents(queryset.order_by("-id")[offset : offset + limit + 1])
    next_cursor = str(offset + limit) if len(documents) > limit else None
    return documents[:limit], next_cursor


def experiment_versions(experiment: Experiment) -> list[dict]:
    return [version_json(v) for v in experiment.versions.order_by("-version")]


def experiment_version(experiment: Experiment, raw_version: str) -> dict:
    if not NUMERIC_ID_RE.match(raw_version or ""):
        raise not_found(f"version {raw_version!r} not found", "versionId")
    version = experiment.versions.filter(version=int(raw_version)).first()
    if version is None:
        raise not_found(f"version {raw_version} not found", "versionId")
    return version_json(version)


def variant_list(experiment: Experiment) -> list[dict]:
    variants = Variant.objects.filter(experiment=experiment).order_by("position", "id")
    return [variant_json(v, experiment.rollout_weights) for v in variants]


def variant_detail(experiment: Experiment, variant_key: str) -> dict:
    variant = Variant.objects.filter(experiment=experiment, key=variant_key).first()
    if variant is None:
        raise not_found(f"variant {variant_key!r} not found", "variantKey")
    return variant_json(variant, experiment.rollout_weights)


def variant_inclusions(variant: Variant) -> list[str]:
    return list(Inclusion.objects.filter(variant=variant).order_by("id").values_list("user_id", flat=True))


def experiment_deployments(experiment: Experiment) -> list[dict]:
    deployments = Deployment.objects.filter(experiment_links__experiment=experiment).order_by("experiment_links__id")
    return [deployment_json(d) for d in deployments]


def deployment_list_page(*, project_ids: Iterable[str] | None, limit: int, offset: int) -> tuple[list[dict], str | None]:
    queryset = Deployment.objects.all()
    if project_ids is not None:
        queryset = queryset.filter(project_id__in=list(project_ids))
    rows = list(queryset.order_by("id")[offset : offset + limit + 1])
    next_cursor = str(offset + limit) if len(rows) > limit else None
    return [deployment_json(row) for row in rows[:limit]], next_cursor
