"""Typed results of the gateway.

Built with ``from_api(dict)``: unknown keys are ignored (and kept in ``.raw``), missing keys
get defaults, and ids arrive as strings whether the upstream sent strings or numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _ids(values: Any) -> list[str]:
    return [str(_id(v)) for v in (values or []) if _id(v) is not None]


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _as_dict(raw: Any, what: str) -> dict:
    if not isinstance(raw, dict):
        raise ValueError(f"expected a JSON object for {what}, got {type(raw).__name__}")
    return raw


@dataclass(frozen=True)
class Experiment:
    id: str
    project_id: str | None
    key: str
    name: str
    description: str
    enabled: bool
    evaluation_mode: str | None
    bucketing_key: str | None
    bucketing_salt: str | None
    bucketing_unit: str | None
    variants: list[dict]
    rolled_out_variant: str | None
    rollout_percentage: float | int | None
    rollout_weights: dict
    target_segments: list[dict]
    sticky_bucketing: bool
    state: str | None
    start_date: str | None
    end_date: str | None
    experiment_type: str | None
    deployments: list[str]
    tags: list[str]
    created_by: str | None
    created_at: str | None
    archived: bool
    deleted: bool
    decision: str | None
    decision_reason: str | None
    exposure_event: dict | None
    raw: dict = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, raw: dict) -> Experiment:
        raw = _as_dict(raw, "an experiment")
        return cls(
            id=str(_id(raw.get("id"))),
            project_id=_id(raw.get("projectId")),
            key=str(raw.get("key") or ""),
            name=str(raw.get("name") or ""),
            description=str(raw.get("description") or ""),
            enabled=bool(raw.get("enabled", False)),
            evaluation_mode=raw.get("evaluationMode"),
            bucketing_key=raw.get("bucketingKey"),
            bucketing_salt=_str_or_none(raw.get("bucketingSalt")),
            bucketing_unit=raw.get("bucketingUnit"),
            variants=list(raw.get("variants") or []),
            rolled_out_variant=raw.get("rolledOutVariant"),
            rollout_percentage=raw.get("rolloutPercentage"),
            rollout_weights=dict(raw.get("rolloutWeights") or {}),
            target_segments=list(raw.get("targetSegments") or []),
            sticky_bucketing=bool(raw.get("stickyBucketing", False)),
            state=raw.get("state"),
            start_date=raw.get("startDate"),
            end_date=raw.get("endDate"),
            experiment_type=raw.get("experimentType"),
            deployments=_ids(raw.get("deployments")),
            tags=[str(t) for t in raw.get("tags") or []],
            created_by=_str_or_none(raw.get("createdBy")),
            created_at=_str_or_none(raw.get("createdAt")),
            archived=bool(raw.get("archived", False)),
            deleted=bool(raw.get("deleted", False)),
            decision=raw.get("decision"),
            decision_reason=raw.get("decisionReason"),
            exposure_event=raw.get("exposureEvent"),
            raw=raw,
        )


@dataclass(frozen=True)
class Version:
    version: int
    created_at: str | None
    created_by: str | None
    flag_config: dict
    raw: dict = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, raw: dict) -> Version:
        raw = _as_dict(raw, "a version")
        return cls(
            version=int(raw.get("version") or 0),
            created_at=_str_or_none(raw.get("createdAt")),
            created_by=_str_or_none(raw.get("createdBy")),
            flag_config=dict(raw.get("flagConfig") or {}),
            raw=raw,
        )


@dataclass(frozen=True)
class Variant:
    key: str
    name: str
    description: str
    payload: Any
    rollout_weight: float | int | None
    raw: dict = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, raw: dict) -> Variant:
        raw = _as_dict(raw, "a variant")
        return cls(
            key=str(raw.get("key") or ""),
            name=str(raw.get("name") or ""),
            description=str(raw.get("description") or ""),
            payload=raw.get("payload"),
            rollout_weight=raw.get("rolloutWeight"),
            raw=raw,
        )


@dataclass(frozen=True)
class Deployment:
    id: str
    project_id: str | None
    label: str
    key: str | None
    deleted: bool
    raw: dict = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, raw: dict) -> Deployment:
        raw = _as_dict(raw, "a deployment")
        return cls(
            id=str(_id(raw.get("id"))),
            project_id=_id(raw.get("projectId")),
            label=str(raw.get("label") or ""),
            key=_str_or_none(raw.get("key")),
            deleted=bool(raw.get("deleted", False)),
            raw=raw,
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class Created:
    id: str
    url: str | None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, raw: dict) -> Created:
        raw = _as_dict(raw, "a create response")
        return cls(id=str(_id(raw.get("id"))), url=_str_or_none(raw.get("url")), raw=raw)


@dataclass(frozen=True)
class UpstreamStatus:
    base_url: str
    ok: bool
    detail: str
    project_ids: list[str]
    deployments: list[Deployment]
    budget_remaining: int
