"""Writes. Each service runs in one transaction, locks the experiment row first (so concurrent
writers to one experiment queue up and version numbers never collide), validates everything
before changing anything, and records exactly one version for a write that changed something.

A write that changes nothing (adding ids that are all present already, removing ids that are
absent, clearing an empty variant, a PATCH that leaves every field as it was, adding a
deployment already attached) answers OK and records no version.
"""

import datetime
import secrets
import string as string_module
from typing import Any

from django.db import transaction

from . import validation as v
from .errors import ApiError, bad_request, not_found
from .models import Deployment, Experiment, ExperimentDeployment, Inclusion, Project, Variant, Version
from .selectors import experiments_with_relations, flag_config

SALT_ALPHABET = string_module.ascii_letters + string_module.digits
MAX_VARIANTS = 50
DEFAULT_VARIANTS = ("control", "treatment")

EXPERIMENT_EDIT_FIELDS = {
    "name",
    "description",
    "bucketingKey",
    "bucketingSalt",
    "bucketingUnit",
    "evaluationMode",
    "rolloutPercentage",
    "rolloutWeights",
    "targetSegments",
    "enabled",
    "archive",
    "experimentType",
    "stickyBucketing",
    "startDate",
    "endDate",
    "exposureEvent",
    "tags",
}
EXPERIMENT_CREATE_FIELDS = {
    "projectId",
    "key",
    "name",
    "description",
    "variants",
    "bucketingKey",
    "rolloutWeights",
    "targetSegments",
    "deployments",
    "evaluationMode",
    "experimentType",
}
VARIANT_FIELDS = {"key", "name", "description", "payload", "rolloutWeight"}


def new_bucketing_salt() -> str:
    return "".join(secrets.choice(SALT_ALPHABET) for _ in range(8))


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def _lock(experiment_id: int) -> Experiment:
    experiment = experiments_with_relations(full_variants=True).select_for_update().filter(pk=experiment_id).first()
    if experiment is None:
        raise not_found(f"experiment {experiment_id} not found", "id")
    return experiment


def _reload(experiment_id: int) -> Experiment:
    return experiments_with_relations(full_variants=True).get(pk=experiment_id)


def _record_version(experiment: Experiment, *, by: str, save_fields: list[str] | None = None) -> Version:
    experiment.latest_version += 1
    experiment.save(update_fields=[*(save_fields or []), "latest_version"])
    return Version.objects.create(
        experiment=experiment, version=experiment.latest_version, created_by=by, flag_config=flag_config(experiment)
    )


def _variant(experiment: Experiment, variant_key: str) -> Variant:
    for variant in experiment.variants.all():
        if variant.key == variant_key:
            return variant
    raise not_found(f"variant {variant_key!r} not found", "variantKey")


# --- Projects and deployments ----------------------------------------------------------


def project_ensure(*, project_id: str, name: str | None = None) -> Project:
    project, created = Project.objects.get_or_create(id=project_id, defaults={"name": name or f"Project {project_id}"})
    if name and not created and project.name != name:
        project.name = name
        project.save(update_fields=["name"])
    return project


def deployment_create(*, body: Any, project_ids: frozenset[str] | None) -> Deployment:
    body = v.json_object(body)
    v.reject_unknown(body, {"projectId", "label", "type"})
    for required in ("projectId", "label", "type"):
        if required not in body:
            raise bad_request("is required", required)
    project_id = v.string(body["projectId"], "projectId", allow_empty=False, max_length=32)
    label = v.string(body["label"], "label", allow_empty=False, max_length=200)
    if not v.LABEL_RE.match(label):
        raise bad_request("may contain only letters, digits, '_' and '-'", "label")
    kind = v.choice(body["type"], "type", v.DEPLOYMENT_TYPES)
    if project_ids is not None and project_id not in project_ids:
        raise ApiError(403, "this API key has no access to that project", field="projectId")
    with transaction.atomic():
        if not Project.objects.filter(pk=project_id).exists():
            raise not_found(f"project {project_id} not found", "projectId")
        if Deployment.objects.filter(project_id=project_id, label=label).exists():
            raise bad_request(f"a deployment labelled {label!r} already exists in this project", "label")
        return Deployment.objects.create(
            project_id=project_id, label=label, type=kind, key=f"{kind}-{secrets.token_hex(16)}"
        )


def deployment_edit(*, deployment_id: int, body: Any) -> None:
    body = v.json_object(body)
    v.reject_unknown(body, {"label", "archive"})
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().filter(pk=deployment_id).first()
        if deployment is None:
            raise not_found(f"deployment {deployment_id} not found", "id")
        if "label" in body:
            label = v.string(body["label"], "label", allow_empty=False, max_length=200)
            if not v.LABEL_RE.match(label):
                raise bad_request("may contain only letters, digits, '_' and '-'", "label")
            clash = Deployment.objects.filter(project_id=deployment.project_id, label=label).exclude(pk=deployment.pk)
            if clash.exists():
                raise bad_request(f"a deployment labelled {label!r} already exists in this project", "label")
            deployment.label = label
        if "archive" in body:
            deployment.deleted = v.boolean(body["archive"], "archive")
        deployment.save(update_fields=["label", "deleted"])


def _deployments_for(project_id: str, raw: Any, field: str = "deployments") -> list[Deployment]:
    ids = v.id_list(raw, field)
    found = {d.id: d for d in Deployment.objects.filter(pk__in=ids)}
    deployments = []
    for index, deployment_id in enumerate(ids):
        deployment = found.get(deployment_id)
        if deployment is None:
            raise not_found(f"deployment {deployment_id} not found", f"{field}[{index}]")
        if deployment.project_id != project_id:
            raise bad_request(f"deployment {deployment_id} belongs to another project", f"{field}[{index}]")
        if deployment.deleted:
            raise bad_request(f"deployment {deployment_id} is archived", f"{field}[{index}]")
        deployments.append(deployment)
    return deployments


# --- Experiments -----------------------------------------------------------------------


def experiment_create(
    *, body: Any, by: str, project_ids: frozenset[str] | None, bucketing_salt: str | None = None
) -> Experiment:
    """Create an experiment (version 1). ``bucketing_salt`` (default: random) lets demo data be
    reproducible."""
    body = v.json_object(body)
    v.reject_unknown(body, EXPERIMENT_CREATE_FIELDS)
    for required in ("projectId", "key"):
        if required not in body:
            raise bad_request("is required", required)
    project_id = body["projectId"]
    if isinstance(project_id, int) and not isinstance(project_id, bool):
        project_id = str(project_id)
    project_id = v.string(project_id, "projectId", allow_empty=False, max_length=32)
    if project_ids is not None and project_id not in project_ids:
        raise ApiError(403, "this API key has no access to that project", field="projectId")
    key = v.key(body["key"], "key")

    raw_variants = body.get("variants")
    if raw_variants is None:
        variants = [{"key": k, "name": "", "description": "", "payload": {}} for k in DEFAULT_VARIANTS]
    else:
        if not isinstance(raw_variants, list) or not raw_variants:
            raise bad_request("must be a non-empty array of variants", "variants")
        if len(raw_variants) > MAX_VARIANTS:
            raise bad_request(f"at most {MAX_VARIANTS} variants", "variants")
        variants = []
        for index, raw in enumerate(raw_variants):
            where = f"variants[{index}]"
            item = v.json_object(raw, where)
            v.reject_unknown(item, {"key", "name", "description", "payload"}, f"{where}.")
            if "key" not in item:
                raise bad_request("is required", f"{where}.key")
            variant_key = v.key(item["key"], f"{where}.key")
            if any(existing["key"] == variant_key for existing in variants):
                raise bad_request(f"duplicate variant key {variant_key!r}", f"{where}.key")
            variants.append(
                {
                    "key": variant_key,
                    "name": v.optional_string(item.get("name"), f"{where}.name", max_length=500),
                    "description": v.optional_string(item.get("description"), f"{where}.description"),
                    "payload": v.payload(item.get("payload", {}), f"{where}.payload"),
                }
            )
    variant_keys = [item["key"] for item in variants]
    weights = {variant_key: 1 for variant_key in variant_keys}
    if "rolloutWeights" in body:
        weights.update(v.rollout_weights(body["rolloutWeights"], "rolloutWeights", variant_keys))
    bucketing_key = "amplitude_id"
    if "bucketingKey" in body:
        bucketing_key = v.string(body["bucketingKey"], "bucketingKey", allow_empty=False, max_length=200)
    segments = v.target_segments(body.get("targetSegments"), variant_keys, bucketing_key)
    evaluation_mode = v.choice(body.get("evaluationMode", "remote"), "evaluationMode", v.EVALUATION_MODES)
    experiment_type = v.choice(body.get("experimentType", "hypothesis-testing"), "experimentType", v.EXPERIMENT_TYPES)
    name = v.optional_string(body.get("name"), "name", max_length=500) or key
    description = v.optional_string(body.get("description"), "description")

    with transaction.atomic():
        if not Project.objects.filter(pk=project_id).exists():
            raise not_found(f"project {project_id} not found", "projectId")
        deployments = _deployments_for(project_id, body.get("deployments", []))
        if Experiment.objects.filter(project_id=project_id, key=key).exists():
            raise bad_request(f"an experiment with key {key!r} already exists in this project", "key")
        experiment = Experiment.objects.create(
            project_id=project_id,
            key=key,
            name=name,
            description=description,
            bucketing_key=bucketing_key,
            bucketing_salt=bucketing_salt or new_bucketing_salt(),
            rollout_weights=weights,
            target_segments=segments,
            evaluation_mode=evaluation_mode,
            experiment_type=experiment_type,
            created_by=by,
        )
        Variant.objects.bulk_create(
            [Variant(experiment=experiment, position=index, **item) for index, item in enumerate(variants)]
        )
        ExperimentDeployment.objects.bulk_create(
            [ExperimentDeployment(experiment=experiment, deployment=d) for d in deployments]
        )
        experiment = _reload(experiment.pk)
        _record_version(experiment, by=by)
    return experiment


def experiment_edit(*, experiment_id: int, body: Any, by: str) -> Version | None:
    body = v.json_object(body)
    v.reject_unknown(body, EXPERIMENT_EDIT_FIELDS)
    with transaction.atomic():
        experiment = _lock(experiment_id)
        before = flag_config(experiment)
        variant_keys = [variant.key for variant in experiment.variants.all()]
        if "name" in body:
            experiment.name = v.optional_string(body["name"], "name", max_length=500)
        if "description" in body:
            experiment.description = v.optional_string(body["description"], "description")
        if "bucketingKey" in body:
            experiment.bucketing_key = v.string(body["bucketingKey"], "bucketingKey", allow_empty=False, max_length=200)
        if "bucketingSalt" in body:
            experiment.bucketing_salt = v.string(body["bucketingSalt"], "bucketingSalt", allow_empty=False, max_length=200)
        if "bucketingUnit" in body:
            experiment.bucketing_unit = v.string(body["bucketingUnit"], "bucketingUnit", allow_empty=False, max_length=200)
        if "evaluationMode" in body:
            experiment.evaluation_mode = v.choice(body["evaluationMode"], "evaluationMode", v.EVALUATION_MODES)
        if "rolloutPercentage" in body:
            experiment.rollout_percentage = v.percentage(body["rolloutPercentage"], "rolloutPercentage")
        if "rolloutWeights" in body:
            weights = dict(experiment.rollout_weights)
            weights.update(v.rollout_weights(body["rolloutWeights"], "rolloutWeights", variant_keys))
            experiment.rollout_weights = weights
        if "targetSegments" in body:
            experiment.target_segments = v.target_segments(body["targetSegments"], variant_keys, experiment.bucketing_key)
        if "experimentType" in body:
            experiment.experiment_type = v.choice(body["experimentType"], "experimentType", v.EXPERIMENT_TYPES)
        if "stickyBucketing" in body:
            experiment.sticky_bucketing = v.boolean(body["stickyBucketing"], "stickyBucketing")
        if "startDate" in body:
            experiment.start_date = v.date_or_null(body["startDate"], "startDate")
        if "endDate" in body:
            experiment.end_date = v.date_or_null(body["endDate"], "endDate")
        if "exposureEvent" in body:
            experiment.exposure_event = v.exposure_event(body["exposureEvent"])
        if "tags" in body:
            experiment.tags = v.tags(body["tags"])
        if "archive" in body:
            experiment.archived = v.boolean(body["archive"], "archive")
        if "enabled" in body:
            experiment.enabled = v.boolean(body["enabled"], "enabled")
            if experiment.enabled:
                experiment.ever_enabled = True
                if experiment.start_date is None and "startDate" not in body:
                    experiment.start_date = _today()
        if experiment.start_date and experiment.end_date and experiment.end_date < experiment.start_date:
            raise bad_request("must not be before startDate", "endDate")
        if flag_config(experiment) == before:
            return None
        return _record_version(
            experiment,
            by=by,
            save_fields=[
                "name",
                "description",
                "bucketing_key",
                "bucketing_salt",
                "bucketing_unit",
                "evaluation_mode",
                "rollout_percentage",
                "rollout_weights",
                "target_segments",
                "experiment_type",
                "sticky_bucketing",
                "start_date",
                "end_date",
                "exposure_event",
                "tags",
                "archived",
                "enabled",
                "ever_enabled",
            ],
        )


# --- Variants --------------------------------------------------------------------------


def _rename_in_weights(weights: dict, old: str, new: str | None) -> dict:
    """Rename (or, with ``new`` None, drop) a variant key in a weights map, keeping order."""
    renamed = {}
    for variant_key, value in weights.items():
        if variant_key != old:
            renamed[variant_key] = value
        elif new is not None:
            renamed[new] = value
    return renamed


def _rename_everywhere(experiment: Experiment, old: str, new: str | None) -> None:
    experiment.rollout_weights = _rename_in_weights(experiment.rollout_weights, old, new)
    experiment.target_segments = [
        {**segment, "rolloutWeights": _rename_in_weights(segment.get("rolloutWeights", {}), old, new)}
        for segment in experiment.target_segments
    ]
    if experiment.rolled_out_variant == old:
        experiment.rolled_out_variant = new


VARIANT_SAVE_FIELDS = ["rollout_weights", "target_segments", "rolled_out_variant"]


def variant_create(*, experiment_id: int, body: Any, by: str) -> Version:
    body = v.json_object(body)
    v.reject_unknown(body, VARIANT_FIELDS)
    if "key" not in body:
        raise bad_request("is required", "key")
    variant_key = v.key(body["key"], "key")
    name = v.optional_string(body.get("name"), "name", max_length=500)
    description = v.optional_string(body.get("description"), "description")
    payload = v.payload(body.get("payload", {}))
    rollout_weight = v.weight(body.get("rolloutWeight", 1), "rolloutWeight")
    with transaction.atomic():
        experiment = _lock(experiment_id)
        variants = list(experiment.variants.all())
        if any(variant.key == variant_key for variant in variants):
            raise bad_request(f"duplicate variant key {variant_key!r}", "key")
        if len(variants) >= MAX_VARIANTS:
            raise bad_request(f"an experiment has at most {MAX_VARIANTS} variants", "key")
        position = max((variant.position for variant in variants), default=-1) + 1
        Variant.objects.create(
            experiment=experiment, key=variant_key, name=name, description=description, payload=payload, position=position
        )
        experiment = _reload(experiment_id)
        experiment.rollout_weights = {**experiment.rollout_weights, variant_key: rollout_weight}
        return _record_version(experiment, by=by, save_fields=VARIANT_SAVE_FIELDS)


def variant_edit(*, experiment_id: int, variant_key: str, body: Any, by: str) -> Version | None:
    body = v.json_object(body)
    v.reject_unknown(body, VARIANT_FIELDS)
    with transaction.atomic():
        experiment = _lock(experiment_id)
        before = flag_config(experiment)
        variant = _variant(experiment, variant_key)
        new_key = variant.key
        if "key" in body:
            new_key = v.key(body["key"], "key")
            if new_key != variant.key and any(other.key == new_key for other in experiment.variants.all()):
                raise bad_request(f"duplicate variant key {new_key!r}", "key")
        if "name" in body:
            variant.name = v.optional_string(body["name"], "name", max_length=500)
        if "description" in body:
            variant.description = v.optional_string(body["description"], "description")
        if "payload" in body:
            variant.payload = v.payload(body["payload"])
        weight = v.weight(body["rolloutWeight"], "rolloutWeight") if "rolloutWeight" in body else None
        if new_key != variant.key:
            _rename_everywhere(experiment, variant.key, new_key)
            variant.key = new_key
        if weight is not None:
            experiment.rollout_weights = {**experiment.rollout_weights, new_key: weight}
        if flag_config(experiment) == before:
            return None
        variant.save(update_fields=["key", "name", "description", "payload"])
        return _record_version(experiment, by=by, save_fields=VARIANT_SAVE_FIELDS)


def variant_remove(*, experiment_id: int, variant_key: str, by: str) -> Version:
    with transaction.atomic():
        experiment = _lock(experiment_id)
        variant = _variant(experiment, variant_key)
        if len(experiment.variants.all()) == 1:
            raise bad_request("an experiment needs at least one variant", "variantKey")
        variant.delete()
        experiment = _reload(experiment_id)
        _rename_everywhere(experiment, variant_key, None)
        return _record_version(experiment, by=by, save_fields=VARIANT_SAVE_FIELDS)


# --- Inclusions ------------------------------------------------------------------------


def inclusions_add(*, experiment_id: int, variant_key: str, body: Any, by: str) -> Version | None:
    body = v.json_object(body)
    v.reject_unknown(body, {"inclusions"})
    if "inclusions" not in body:
        raise bad_request("is required", "inclusions")
    ids = v.user_ids(body["inclusions"], "inclusions")
    with transaction.atomic():
        experiment = _lock(experiment_id)
        variant = _variant(experiment, variant_key)
        present = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            present.update(Inclusion.objects.filter(variant=variant, user_id__in=chunk).values_list("user_id", flat=True))
        new_ids = [user_id for user_id in ids if user_id not in present]
        if not new_ids:
            return None
        total = Inclusion.objects.filter(variant=variant).count() + len(new_ids)
        if total > v.MAX_INCLUSIONS_PER_VARIANT:
            raise bad_request(
                f"a variant holds at most {v.MAX_INCLUSIONS_PER_VARIANT} inclusions; this add would make {total}",
                "inclusions",
            )
        Inclusion.objects.bulk_create([Inclusion(variant=variant, user_id=user_id) for user_id in new_ids], batch_size=500)
        return _record_version(experiment, by=by)


def inclusion_remove_at(*, experiment_id: int, variant_key: str, raw_index: str, by: str) -> Version:
    if not v.NUMERIC_ID_RE.match(raw_index or ""):
        raise bad_request("must be a zero-based integer index", "userIndex")
    index = int(raw_index)
    with transaction.atomic():
        experiment = _lock(experiment_id)
        variant = _variant(experiment, variant_key)
        row_id = Inclusion.objects.filter(variant=variant).order_by("id").values_list("id", flat=True)[index : index + 1].first()
        if row_id is None:
            raise bad_request(f"index {index} is out of range", "userIndex")
        Inclusion.objects.filter(pk=row_id).delete()
        return _record_version(experiment, by=by)


def inclusions_remove_all(*, experiment_id: int, variant_key: str, by: str) -> Version | None:
    with transaction.atomic():
        experiment = _lock(experiment_id)
        variant = _variant(experiment, variant_key)
        deleted, _ = Inclusion.objects.filter(variant=variant).delete()
        return _record_version(experiment, by=by) if deleted else None


def inclusions_bulk_remove(*, experiment_id: int, variant_key: str, body: Any, by: str) -> Version | None:
    body = v.json_object(body)
    v.reject_unknown(body, {"users"})
    if "users" not in body:
        raise bad_request("is required", "users")
    ids = v.user_ids(body["users"], "users", max_count=v.MAX_BULK_DELETE)
    with transaction.atomic():
        experiment = _lock(experiment_id)
        variant = _variant(experiment, variant_key)
        deleted, _ = Inclusion.objects.filter(variant=variant, user_id__in=ids).delete()
        return _record_version(experiment, by=by) if deleted else None


# --- Deployments of an experiment ------------------------------------------------------


def experiment_deployments_add(*, experiment_id: int, body: Any, by: str) -> Version | None:
    body = v.json_object(body)
    v.reject_unknown(body, {"deployments"})
    if "deployments" not in body:
        raise bad_request("is required", "deployments")
    with transaction.atomic():
        experiment = _lock(experiment_id)
        deployments = _deployments_for(experiment.project_id, body["deployments"])
        attached = {link.deployment_id for link in experiment.deployment_links.all()}
        new_links = [ExperimentDeployment(experiment=experiment, deployment=d) for d in deployments if d.id not in attached]
        if not new_links:
            return None
        ExperimentDeployment.objects.bulk_create(new_links)
        return _record_version(_reload(experiment_id), by=by)


def experiment_deployment_remove(*, experiment_id: int, raw_deployment_id: str, by: str) -> Version:
    with transaction.atomic():
        experiment = _lock(experiment_id)
        link = None
        if v.NUMERIC_ID_RE.match(raw_deployment_id or ""):
            link = next((l for l in experiment.deployment_links.all() if l.deployment_id == int(raw_deployment_id)), None)
        if link is None:
            raise not_found(f"deployment {raw_deployment_id} is not attached to this experiment", "deploymentId")
        link.delete()
        return _record_version(_reload(experiment_id), by=by)
