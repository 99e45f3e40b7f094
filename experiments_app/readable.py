"""Experiment configuration in words and pictures: field labels, segments and conditions as
sentences, the allocation split, and field-by-field diffs of two configurations."""

import json
from dataclasses import dataclass
from typing import Any

# The order in which people read a configuration; unknown fields follow in their own order.
FIELD_LABELS: dict[str, str] = {
    "key": "Key",
    "name": "Name",
    "description": "Description",
    "enabled": "Enabled",
    "state": "State",
    "archived": "Archived",
    "experimentType": "Experiment type",
    "evaluationMode": "Evaluation mode",
    "rolloutPercentage": "Rollout (non-targeted users)",
    "rolloutWeights": "Rollout weights",
    "variants": "Variants",
    "targetSegments": "Target segments",
    "bucketingKey": "Bucketing key",
    "bucketingSalt": "Bucketing salt",
    "bucketingUnit": "Bucketing unit",
    "stickyBucketing": "Sticky bucketing",
    "startDate": "Start date",
    "endDate": "End date",
    "exposureEvent": "Exposure event",
    "deployments": "Deployments",
    "tags": "Tags",
    "rolledOutVariant": "Rolled-out variant",
    "decision": "Decision",
    "decisionReason": "Decision reason",
}
HIDDEN_FIELDS = {"id", "projectId", "deleted", "createdAt", "createdBy"}
PALETTE = ["#1c7ed6", "#f08c00", "#2f9e44", "#ae3ec9", "#e03131", "#0c8599", "#5c940d", "#d6336c"]


def prop_in_words(prop: str) -> str:
    return f"custom property “{prop[3:]}”" if prop.startswith("gp:") else prop.replace("_", " ")


def condition_in_words(condition: dict) -> str:
    values = condition.get("values") or []
    shown = " or ".join(f"“{v}”" for v in values) if values else "(no values)"
    return f"{prop_in_words(str(condition.get('prop', '?')))} {condition.get('op', '?')} {shown}"


def segment_in_words(segment: dict) -> str:
    conditions = segment.get("conditions") or []
    who = " and ".join(condition_in_words(c) for c in conditions) if conditions else "everyone"
    weights = weights_in_words(segment.get("rolloutWeights") or {})
    return f"{segment.get('name') or 'Unnamed segment'}: users whose {who} — " \
           f"{segment.get('percentage', 0)}% allocated, split {weights}"


def weights_in_words(weights: dict) -> str:
    return " · ".join(f"{key} {value}" for key, value in weights.items()) or "—"


def value_in_words(field: str, value: Any, deployment_labels: dict[str, str] | None = None) -> str:
    """One field's value as a person reads it (multi-line text where it helps)."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if field == "rolloutPercentage":
        return f"{value}%"
    if field == "rolloutWeights":
        return weights_in_words(value)
    if field == "targetSegments":
        return "\n".join(segment_in_words(s) for s in value)
    if field == "variants":
        return ", ".join(str(v.get("key")) if isinstance(v, dict) else str(v) for v in value)
    if field == "deployments" and isinstance(value, list):
        labels = deployment_labels or {}
        return ", ".join(labels.get(str(v), str(v)) for v in value)
    if field == "tags" and isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if field == "exposureEvent" and isinstance(value, dict):
        filters = value.get("filters") or []
        words = [f"{f.get('subprop_key')} {f.get('subprop_op')} {', '.join(map(str, f.get('subprop_value') or []))}"
                 for f in filters]
        return str(value.get("event_type", "?")) + (" where " + " and ".join(words) if words else "")
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2, sort_keys=True)
    return str(value)


def ordered_fields(*configs: dict) -> list[str]:
    present = {k for config in configs for k in config}
    known = [f for f in FIELD_LABELS if f in present]
    extra = sorted(k for k in present if k not in FIELD_LABELS and k not in HIDDEN_FIELDS)
    return known + extra


def field_label(field: str) -> str:
    return FIELD_LABELS.get(field, field)


@dataclass(frozen=True)
class FieldRow:
    field: str
    label: str
    text: str


@dataclass(frozen=True)
class DiffRow:
    field: str
    label: str
    old: str
    new: str
    changed: bool


def config_rows(config: dict, deployment_labels: dict[str, str] | None = None) -> list[FieldRow]:
    return [FieldRow(f, field_label(f), value_in_words(f, config.get(f), deployment_labels))
            for f in ordered_fields(config)]


def config_diff(old: dict, new: dict, deployment_labels: dict[str, str] | None = None) -> list[DiffRow]:
    """Every field of either configuration, side by side, changed ones flagged."""
    return [
        DiffRow(f, field_label(f), value_in_words(f, old.get(f), deployment_labels),
                value_in_words(f, new.get(f), deployment_labels), old.get(f) != new.get(f))
        for f in ordered_fields(old, new)
    ]


# --- Allocation ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Slice:
    label: str
    share: float  # percent of the population, 0-100
    x: float  # where it starts in the bar, 0-100
    color: str


@dataclass(frozen=True)
class AllocationBar:
    title: str
    detail: str
    slices: list[Slice]


def _bar(title: str, detail: str, percentage: float, weights: dict, variant_keys: list[str]) -> AllocationBar:
    total = sum(w for w in weights.values() if isinstance(w, int | float) and w > 0)
    slices, x = [], 0.0
    for index, key in enumerate(variant_keys):
        weight = weights.get(key, 0) or 0
        share = percentage * weight / total if total else 0.0
        slices.append(Slice(key, round(share, 2), round(x, 2), PALETTE[index % len(PALETTE)]))
        x += share
    slices.append(Slice("not in the experiment", round(100 - x, 2), round(x, 2), "#dee2e6"))
    return AllocationBar(title, detail, slices)


def allocation(experiment) -> list[AllocationBar]:
    """Who gets which variant: one bar for each target segment, then everyone else."""
    keys = [str(v.get("key")) for v in experiment.variants if isinstance(v, dict)]
    bars = [
        _bar(segment.get("name") or f"Segment {i + 1}",
             " and ".join(condition_in_words(c) for c in segment.get("conditions") or []) or "everyone",
             float(segment.get("percentage") or 0), segment.get("rolloutWeights") or experiment.rollout_weights, keys)
        for i, segment in enumerate(experiment.target_segments)
    ]
    bars.append(_bar("Everyone else" if bars else "Everyone", "users matching no target segment" if bars else "",
                     float(experiment.rollout_percentage or 0), experiment.rollout_weights, keys))
    return bars


def variant_shares(weights: dict) -> dict[str, float]:
    total = sum(w for w in weights.values() if isinstance(w, int | float) and w > 0)
    return {key: round(100 * (w or 0) / total, 1) if total else 0.0 for key, w in weights.items()}


def pretty_json(value: Any) -> str:
    if value in (None, "", {}):
        return ""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
