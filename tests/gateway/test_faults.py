"""The gateway against the embedded API with fault injection on: 429s with Retry-After, 5xx,
slow responses, connections dropped before and after the write happened."""

import time
import uuid

import pytest

from experiments_app import gateway

pytestmark = pytest.mark.usefixtures("seeded_random")

MIXED_FAULTS = "429=0.15:0.1,500=0.15,drop=0.1,drop_after=0.1,latency=0.1:0.05"


def _statuses(calls):
    return [c.status for c in calls]


def _ambiguous(call):
    """No answer (dropped, timed out) or a 5xx: the upstream may or may not have acted."""
    return call.status is None or call.status >= 500


def _settled_by_read_back(calls, method):
    """Whether a write of ``method`` failed ambiguously and the gateway read back next."""
    for before, after in zip(calls, calls[1:]):
        if before.method == method and _ambiguous(before) and after.method == "GET":
            return True
    return False


def test_reads_succeed_under_injected_faults(gateway_client, experiment, settings):
    gateway_client.add_inclusions(experiment.id, "control", ["a", "b"])
    settings.MANAGEMENT_API_FAULTS = MIXED_FAULTS

    with gateway.recording() as calls:
        for _ in range(6):
            assert gateway_client.get_experiment(experiment.id).key == experiment.key
            assert [v.key for v in gateway_client.list_variants(experiment.id)] == ["control", "treatment"]
            assert gateway_client.list_inclusions(experiment.id, "control") == ["a", "b"]

    statuses = _statuses(calls)
    # faults happened (rate limits, 5xx, dropped connections) and were ridden out
    assert 429 in statuses and None in statuses and any(s and s >= 500 for s in statuses)
    assert statuses.count(200) == 18


def test_retry_after_is_honoured_before_repeating(gateway_client, experiment, settings):
    settings.MANAGEMENT_API_FAULTS = "429=1.0:0.3"  # every answer: 429 with Retry-After: 0.3
    settings.UPSTREAM_MAX_RETRY_SECONDS = 1.0
    started = time.monotonic()

    with gateway.recording() as calls, pytest.raises(gateway.RateLimited) as caught:
        gateway.get_client().get_experiment(experiment.id)

    assert caught.value.retry_after == 0.3
    assert len(calls) >= 2 and _statuses(calls) == [429] * len(calls)
    # the backoff alone would have repeated after ~0.02 s; each repeat waited Retry-After
    assert time.monotonic() - started >= 0.3 * (len(calls) - 1)


def test_idempotent_writes_take_effect_exactly_once_under_faults(gateway_client, experiment, settings):
    deployment = gateway_client.create_deployment(label="web")
    other = gateway_client.create_deployment(label="ios")
    versions_before = len(gateway_client.list_versions(experiment.id))
    settings.MANAGEMENT_API_FAULTS = MIXED_FAULTS

    with gateway.recording() as calls:
        for batch in range(5):
            gateway_client.add_inclusions(experiment.id, "control", [f"u{batch}-{i}" for i in range(10)])
        for percentage in (10, 20, 30):
            gateway_client.update_experiment(experiment.id, {"rolloutPercentage": percentage})
        gateway_client.bulk_remove_inclusions(experiment.id, "control", [f"u0-{i}" for i in range(10)])
        gateway_client.add_deployments(experiment.id, [deployment.id, other.id])
        gateway_client.remove_deployment(experiment.id, deployment.id)
        gateway_client.update_variant(experiment.id, "treatment", {"name": "Treatment", "rolloutWeight": 2})
        gateway_client.create_variant(experiment.id, key="spare")
        gateway_client.delete_variant(experiment.id, "spare")
        gateway_client.remove_all_inclusions(experiment.id, "treatment")  # already empty: no version

    settings.MANAGEMENT_API_FAULTS = ""
    assert 429 in _statuses(calls) and any(map(_ambiguous, calls))
    final = gateway_client.get_experiment(experiment.id)
    assert final.rollout_percentage == 30
    assert final.deployments == [other.id]
    assert gateway_client.get_variant(experiment.id, "treatment").name == "Treatment"
    assert [v.key for v in gateway_client.list_variants(experiment.id)] == ["control", "treatment"]
    assert gateway_client.list_inclusions(experiment.id, "control") == [f"u{b}-{i}" for b in range(1, 5) for i in range(10)]
    # The upstream records a version only for a write that changed something: a repeated
    # write that had already landed adds none, so one version per intended change.
    assert len(gateway_client.list_versions(experiment.id)) == versions_before + 5 + 3 + 1 + 1 + 1 + 1 + 1 + 1


def test_create_experiment_is_not_duplicated_after_dropped_connection(gateway_client, upstream, settings):
    keys = [f"drop-{i}-{uuid.uuid4().hex[:6]}" for i in range(12)]
    settings.MANAGEMENT_API_FAULTS = "drop_after=0.35,drop=0.05"

    with gateway.recording() as calls:
        created = {key: gateway_client.create_experiment(key=key, name=key) for key in keys}

    settings.MANAGEMENT_API_FAULTS = ""
    listed = [e for e in gateway_client.iter_experiments() if e.key in created]
    assert sorted(e.key for e in listed) == sorted(keys)  # each exactly once
    assert {e.key: e.id for e in listed} == {key: c.id for key, c in created.items()}
    assert _settled_by_read_back(calls, "POST")


def test_create_experiment_is_not_duplicated_after_a_read_timeout(gateway_client, upstream, settings):
    keys = [f"slow-{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]
    settings.UPSTREAM_READ_TIMEOUT = 0.25
    settings.MANAGEMENT_API_FAULTS = "latency=0.5:0.4"
    slow_client = gateway.get_client()

    with gateway.recording() as calls:
        created = {key: slow_client.create_experiment(key=key) for key in keys}

    settings.MANAGEMENT_API_FAULTS = ""
    listed = [e for e in gateway.get_client().iter_experiments() if e.key in created]
    assert sorted(e.key for e in listed) == sorted(keys)
    assert {e.key: e.id for e in listed} == {key: c.id for key, c in created.items()}
    assert any(c.method == "POST" and c.error == "ReadTimeout" for c in calls)


def test_create_variant_is_not_duplicated_after_dropped_connection(gateway_client, experiment, settings):
    keys = [f"v{i}" for i in range(1, 13)]
    settings.MANAGEMENT_API_FAULTS = "drop_after=0.4"

    with gateway.recording() as calls:
        for key in keys:
            gateway_client.create_variant(experiment.id, key=key, name=key.upper())

    settings.MANAGEMENT_API_FAULTS = ""
    assert [v.key for v in gateway_client.list_variants(experiment.id)] == ["control", "treatment", *keys]
    assert _settled_by_read_back(calls, "POST")


def test_remove_by_index_after_dropped_connection_removes_only_the_expected_user(gateway_client, experiment, settings):
    users = [f"user-{i}" for i in range(14)]
    gateway_client.add_inclusions(experiment.id, "control", users)
    to_remove = ["user-3", "user-5", "user-0", "user-11", "user-7", "user-1", "user-8", "user-4", "user-13", "user-12"]
    settings.MANAGEMENT_API_FAULTS = "drop_after=0.4"

    with gateway.recording() as calls:
        for user in to_remove:
            gateway_client.remove_inclusion_at(experiment.id, "control", users.index(user), expected_user=user)
            users.remove(user)

    settings.MANAGEMENT_API_FAULTS = ""
    assert gateway_client.list_inclusions(experiment.id, "control") == ["user-2", "user-6", "user-9", "user-10"]
    assert _settled_by_read_back(calls, "DELETE")


def test_remove_by_index_without_expected_user_is_never_repeated_blindly(gateway_client, experiment, settings):
    gateway_client.add_inclusions(experiment.id, "control", ["a", "b", "c"])
    settings.MANAGEMENT_API_FAULTS = "drop_after=1.0"

    with gateway.recording() as calls, pytest.raises(gateway.WriteOutcomeUnknown):
        gateway_client.remove_inclusion_at(experiment.id, "control", 0)

    settings.MANAGEMENT_API_FAULTS = ""
    assert [c.method for c in calls] == ["DELETE"] and _ambiguous(calls[0])
    assert gateway_client.list_inclusions(experiment.id, "control") == ["b", "c"]


def test_removing_variants_and_deployments_survives_dropped_connections(gateway_client, experiment, settings):
    for key in ("x1", "x2", "x3", "x4"):
        gateway_client.create_variant(experiment.id, key=key)
    deployments = [gateway_client.create_deployment(label=f"d{i}").id for i in range(4)]
    gateway_client.add_deployments(experiment.id, deployments)
    settings.MANAGEMENT_API_FAULTS = "drop_after=0.4"

    for key in ("x1", "x2", "x3", "x4"):
        gateway_client.delete_variant(experiment.id, key)
    for deployment_id in deployments:
        gateway_client.remove_deployment(experiment.id, deployment_id)

    settings.MANAGEMENT_API_FAULTS = ""
    assert [v.key for v in gateway_client.list_variants(experiment.id)] == ["control", "treatment"]
    assert gateway_client.list_experiment_deployments(experiment.id) == []


def test_renaming_a_variant_survives_dropped_connections(gateway_client, experiment, settings):
    keys = ["treatment"] + [f"t{i}" for i in range(1, 13)]
    settings.MANAGEMENT_API_FAULTS = "drop_after=0.4"

    with gateway.recording() as calls:
        for old, new in zip(keys, keys[1:]):
            gateway_client.update_variant(experiment.id, old, {"key": new, "name": new.upper()})

    settings.MANAGEMENT_API_FAULTS = ""
    assert [v.key for v in gateway_client.list_variants(experiment.id)] == ["control", "t12"]
    assert gateway_client.get_variant(experiment.id, "t12").name == "T12"
    # a repeat that found the old key gone was settled by reading the new key
    assert any(c.method == "PATCH" and c.status == 404 for c in calls)


def test_create_deployment_is_not_duplicated_after_dropped_connection(gateway_client, upstream, settings):
    settings.MANAGEMENT_API_FAULTS = "drop_after=0.4"

    with gateway.recording() as calls:
        created = {label: gateway_client.create_deployment(label=label) for label in "abcdefghijkl"}

    settings.MANAGEMENT_API_FAULTS = ""
    listed = {d.label: d.id for d in gateway_client.list_deployments()}
    assert listed == {label: c.id for label, c in created.items()}
    assert _settled_by_read_back(calls, "POST")
