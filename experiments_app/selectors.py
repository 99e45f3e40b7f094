"""Reads from the upstream, through the gateway, briefly cached.

Every cached read sits under a generation number; `upstream_cache_clear()` (called after the
portal pushes a change) moves to the next generation, so nothing stale outlives a push.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache

from experiments_app import gateway

CACHE_SECONDS = 30
GENERATION_KEY = "upstream-reads:generation"
UPSTREAM_PAGE_SIZE = 1000  # the upstream's cap: one call covers most projects
LIST_PAGE_SIZE = 50


def upstream_cache_clear() -> None:
    """Forget every cached upstream read (after a push, or when someone asks for fresh data)."""
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:
        cache.set(GENERATION_KEY, 2, None)


def _cached(name: str, *args: Any, fetch: Callable[[], Any]) -> Any:
    generation = cache.get_or_set(GENERATION_KEY, 1, None)
    key = f"upstream-reads:{generation}:{name}:" + ":".join(str(a) for a in args)
    value = cache.get(key)
    if value is None:
        value = fetch()
        cache.set(key, value, CACHE_SECONDS)
    return value


def experiments_upstream_page(*, cursor: str | None, archived: bool) -> gateway.Page:
    client = gateway.get_client()
    return _cached("experiments", cursor or "", archived,
                   fetch=lambda: client.list_experiments(limit=UPSTREAM_PAGE_SIZE, cursor=cursor, archived=archived))


def experiment_get(experiment_id: str) -> gateway.Experiment:
    return _cached("experiment", experiment_id, fetch=lambda: gateway.get_client().get_experiment(experiment_id))


def experiment_versions(experiment_id: str) -> list[gateway.Version]:
    return _cached("versions", experiment_id, fetch=lambda: gateway.get_client().list_versions(experiment_id))


def experiment_variants(experiment_id: str) -> list[gateway.Variant]:
    return _cached("variants", experiment_id, fetch=lambda: gateway.get_client().list_variants(experiment_id))


def variant_inclusions(experiment_id: str, variant_key: str) -> list[str]:
    return _cached("inclusions", experiment_id, variant_key,
                   fetch=lambda: gateway.get_client().list_inclusions(experiment_id, variant_key))


def experiment_deployments(experiment_id: str) -> list[gateway.Deployment]:
    return _cached("experiment-deployments", experiment_id,
                   fetch=lambda: gateway.get_client().list_experiment_deployments(experiment_id))


def deployments_by_id() -> dict[str, gateway.Deployment]:
    return _cached("deployments", fetch=lambda: {d.id: d for d in gateway.get_client().list_deployments()})


# --- The experiments list ------------------------------------------------------------------

@dataclass(frozen=True)
class ExperimentFilters:
    q: str = ""
    state: str = ""
    enabled: str = ""  # "", "yes", "no"
    tag: str = ""
    deployment: str = ""
    evaluation_mode: str = ""
    experiment_type: str = ""
    archived: bool = False

    def matches(self, experiment: gateway.Experiment) -> bool:
        q = self.q.casefold()
        return (
            (not q or q in experiment.key.casefold() or q in experiment.name.casefold())
            and (not self.state or experiment.state == self.state)
            and (not self.enabled or experiment.enabled == (self.enabled == "yes"))
            and (not self.tag or self.tag in experiment.tags)
            and (not self.deployment or self.deployment in experiment.deployments)
            and (not self.evaluation_mode or experiment.evaluation_mode == self.evaluation_mode)
            and (not self.experiment_type or experiment.experiment_type == self.experiment_type)
            and experiment.archived == self.archived
        )


@dataclass
class ExperimentListing:
    experiments: list[gateway.Experiment]
    next_cursor: str | None
    scanned: int
    tags: list[str] = field(default_factory=list)


def _split_cursor(cursor: str | None) -> tuple[str | None, int]:
    """The portal's cursor is "<upstream cursor>~<offset into that upstream page>"."""
    if not cursor or "~" not in cursor:
        return None, 0
    upstream, _, offset = cursor.rpartition("~")
    return (upstream or None), (int(offset) if offset.isdigit() else 0)


def experiment_list(*, filters: ExperimentFilters, cursor: str | None = None,
                    page_size: int | None = None) -> ExperimentListing:
    """Up to `page_size` experiments matching `filters`, newest first, and where to go on.

    The upstream cannot filter, so this walks its pages (1,000 at a time, cached) and filters
    here; the cursor remembers both the upstream page and the position inside it.
    """
    page_size = page_size or LIST_PAGE_SIZE
    upstream_cursor, offset = _split_cursor(cursor)
    found: list[gateway.Experiment] = []
    scanned = 0
    tags: set[str] = set()
    while True:
        page = experiments_upstream_page(cursor=upstream_cursor, archived=filters.archived)
        for experiment in page.items:
            tags.update(experiment.tags)
        for position in range(offset, len(page.items)):
            scanned += 1
            experiment = page.items[position]
            if filters.matches(experiment):
                found.append(experiment)
                if len(found) == page_size:
                    more = position + 1 < len(page.items) or page.next_cursor
                    resume = f"{upstream_cursor or ''}~{position + 1}" if position + 1 < len(page.items) \
                        else f"{page.next_cursor}~0"
                    return ExperimentListing(found, resume if more else None, scanned, sorted(tags))
        if not page.next_cursor:
            return ExperimentListing(found, None, scanned, sorted(tags))
        upstream_cursor, offset = page.next_cursor, 0
