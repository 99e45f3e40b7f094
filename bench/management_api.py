"""Benchmark of the embedded Management API (management_api), in-process through the full
Django stack (middleware, auth, rate limiting, views) with django.test.Client.

    .venv/bin/python bench/management_api.py

Uses a throwaway SQLite file under a temporary directory, or — when DATABASE_URL is set — a
``test_…`` database created (and dropped) beside that one. Prints medians:

- GET /api/1/experiments?limit=1000 with 1,000 experiments        (goal < 150 ms)
- a version-creating PATCH on an experiment with 500 versions      (goal < 30 ms)
- 2,000 inclusions added in chunks of 100, then bulk-deleted in chunks of 100
  (goal: linear — the last chunk no slower than twice the first)
"""

import json
import os
import statistics
import time

from _setup import throwaway_database  # noqa: E402 - sets Django up first

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

ROUNDS = 15


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


CPU_SAMPLES: dict[str, list[float]] = {}


def timed(call, label: str = "") -> tuple[float, object]:
    """Wall time of one call; its CPU time (this process) is kept under ``label`` too, because on
    a busy machine the wall time measures the neighbours as much as the code."""
    started, cpu_started = time.perf_counter(), time.process_time()
    result = call()
    CPU_SAMPLES.setdefault(label, []).append(time.process_time() - cpu_started)
    return time.perf_counter() - started, result


def main() -> None:
    settings.ALLOWED_HOSTS = ["*"]
    settings.DEBUG = False
    settings.MANAGEMENT_API_FAULTS = ""
    settings.REDIS_URL = None
    settings.MANAGEMENT_API_RATE_PER_SECOND = 1_000_000  # counted, never reached
    settings.MANAGEMENT_API_RATE_PER_DAY = 10_000_000
    with throwaway_database():
        rows = run()
    print()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"Management API benchmark — {connection.vendor}, medians (wall clock; CPU of this process in")
    print(f"brackets), {os.cpu_count()} CPUs, load average {load}")
    print(f"{'measure':<58} {'result':>22}  {'goal':>10}  ok")
    print("-" * 100)
    for name, value, goal, passed in rows:
        print(f"{name:<58} {value:>22}  {goal:>10}  {'yes' if passed else 'NO'}")


def run() -> list[tuple]:
    from management_api import services
    from management_api.auth import api_key_create
    from management_api.models import Experiment, ExperimentDeployment, Variant

    project_id = "100001"
    services.project_ensure(project_id=project_id, name="Bench project")
    _, raw_key = api_key_create(name="bench", project_ids=[project_id])
    client = Client(headers={"Authorization": f"Bearer {raw_key}", "Accept": "application/json"})
    deployment = services.deployment_create(
        body={"projectId": project_id, "label": "web", "type": "client"}, project_ids=None
    )
    rows = []

    # 1. List 1,000 experiments (each with variants, a segment and a deployment).
    segment = {
        "name": "Segment 1",
        "conditions": [{"prop": "country", "op": "is", "type": "property", "values": ["United States"]}],
        "percentage": 50,
        "bucketingKey": "amplitude_id",
        "rolloutWeights": {"control": 1, "treatment": 1},
    }
    experiments = Experiment.objects.bulk_create(
        [
            Experiment(
                project_id=project_id,
                key=f"bench-{n:04d}",
                name=f"Bench experiment {n}",
                description="benchmark",
                bucketing_salt="abcd1234",
                rollout_weights={"control": 1, "treatment": 1},
                target_segments=[segment],
                tags=["bench"],
                created_by="bench",
            )
            for n in range(1000)
        ]
    )
    experiments = list(Experiment.objects.order_by("id"))
    Variant.objects.bulk_create(
        [Variant(experiment=e, key=key, position=i, payload={}) for e in experiments for i, key in enumerate(["control", "treatment"])]
    )
    ExperimentDeployment.objects.bulk_create([ExperimentDeployment(experiment=e, deployment=deployment) for e in experiments])
    samples = []
    for _ in range(ROUNDS):
        elapsed, response = timed(lambda: client.get("/api/1/experiments?limit=1000"), "list")
        assert response.status_code == 200 and len(response.json()["experiments"]) == 1000
        samples.append(elapsed)
    value = median_ms(samples)
    cpu = median_ms(CPU_SAMPLES["list"])
    rows.append(("GET /api/1/experiments?limit=1000 (1,000 experiments)", f"{value:.1f} ms ({cpu:.1f})", "< 150 ms", value < 150))

    # 2. PATCH an experiment that already has 500 versions.
    experiment = services.experiment_create(body={"projectId": project_id, "key": "versioned"}, by="bench", project_ids=None)
    for n in range(499):
        services.experiment_edit(experiment_id=experiment.id, body={"rolloutPercentage": n % 100, "description": f"edit {n}"}, by="bench")
    assert experiment.versions.count() == 500
    samples = []
    for n in range(ROUNDS * 2):
        body = json.dumps({"rolloutPercentage": 10 + n % 2, "name": f"rename {n}"})
        elapsed, response = timed(
            lambda: client.patch(f"/api/1/experiments/{experiment.id}", body, content_type="application/json"), "patch"
        )
        assert response.status_code == 200, response.content
        samples.append(elapsed)
    assert experiment.versions.count() == 500 + ROUNDS * 2
    value = median_ms(samples)
    cpu = median_ms(CPU_SAMPLES["patch"])
    rows.append(("PATCH /api/1/experiments/{id} (500 versions, makes one)", f"{value:.1f} ms ({cpu:.1f})", "< 30 ms", value < 30))

    # 3. 2,000 inclusions added 100 at a time, then bulk-deleted 100 at a time.
    target = services.experiment_create(body={"projectId": project_id, "key": "inclusions"}, by="bench", project_ids=None)
    users = f"/api/1/experiments/{target.id}/variants/treatment/users"
    bulk_delete = f"/api/1/experiments/{target.id}/variants/treatment/bulk-delete-users"
    add_times: list[list[float]] = [[] for _ in range(20)]
    delete_times: list[list[float]] = [[] for _ in range(20)]
    for round_number in range(5):
        ids = [f"user-{round_number}-{n:05d}@example.com" for n in range(2000)]
        for chunk in range(20):
            body = json.dumps({"inclusions": ids[chunk * 100 : (chunk + 1) * 100]})
            elapsed, response = timed(lambda: client.post(users, body, content_type="application/json"))
            assert response.status_code == 200, response.content
            add_times[chunk].append(elapsed)
        for chunk in range(20):
            body = json.dumps({"users": ids[chunk * 100 : (chunk + 1) * 100]})
            elapsed, response = timed(lambda: client.delete(bulk_delete, body, content_type="application/json"))
            assert response.status_code == 200, response.content
            delete_times[chunk].append(elapsed)
    for label, times in (("add 100 inclusions", add_times), ("bulk-delete 100 inclusions", delete_times)):
        first, last = median_ms(times[0]), median_ms(times[-1])
        ratio = last / first
        rows.append((f"{label}: first chunk", f"{first:.1f} ms", "", True))
        rows.append((f"{label}: last (20th) chunk", f"{last:.1f} ms", "", True))
        rows.append((f"{label}: last / first", f"{ratio:.2f}x", "<= 2.00x", ratio <= 2))
    return rows


if __name__ == "__main__":
    main()
