"""The gateway: the portal's only way to the Experiment Management API.

    from experiments_app import gateway

    client = gateway.get_client()
    with gateway.correlation("cr-123"), gateway.recording() as calls:
        client.update_experiment(experiment_id, {"rolloutPercentage": 20})

See client.py for the retry table, ratelimit.py for the shared budget.
"""

from django.core.signals import setting_changed

from .client import GatewayClient, build_client_from_settings, get_client, reset_client, retry_budget
from .context import CallRecord, correlation, current_correlation_id, recording
from .errors import (
    BudgetExhausted,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    WriteOutcomeUnknown,
)
from .ratelimit import Budget, get_budget
from .types import Created, Deployment, Experiment, Page, UpstreamStatus, Variant, Version

__all__ = [
    "Budget", "BudgetExhausted", "CallRecord", "Created", "Deployment", "Experiment", "Forbidden",
    "GatewayClient", "InvalidInput", "NotFound", "Page", "RateLimited", "Unauthorized", "UpstreamError",
    "UpstreamStatus", "UpstreamTimeout", "UpstreamUnavailable", "Variant", "Version", "WriteOutcomeUnknown",
    "budget_remaining", "budget_reserve_check", "build_client_from_settings", "correlation",
    "current_correlation_id", "get_budget", "get_client", "recording", "reset_client", "retry_budget",
]


def budget_remaining(project_id: str | None = None) -> int:
    """Requests left today for ``project_id`` (default: UPSTREAM_PROJECT_ID), across all processes."""
    return get_client().budget_remaining(project_id)


def budget_reserve_check(project_id: str | None, calls: int) -> bool:
    """Whether ``calls`` more upstream requests fit in today's budget (refuse bulk work if not)."""
    return get_client().budget_reserve_check(project_id, calls)


def _reset_on_setting_change(*, setting: str, **kwargs) -> None:
    if setting.startswith("UPSTREAM_") or setting in ("REDIS_URL", "CACHES"):
        reset_client()


setting_changed.connect(_reset_on_setting_change, dispatch_uid="experiments_app.gateway.reset_client")
