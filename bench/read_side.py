"""Benchmark of the portal's read side: server-side render time of the experiments list (1,000
upstream experiments) and of the experiment page and its tabs, with the upstream answering from
the portal's read cache, and the number of database queries each page makes.

    .venv/bin/python bench/read_side.py

The embedded Management API runs on a real HTTP server in a thread; the portal reaches it through
the gateway. Uses a throwaway SQLite file under a temporary directory, or — when DATABASE_URL is
set — a ``test_…`` database created (and dropped) beside that one.
"""

import threading

from _setup import median_get_ms, throwaway_database  # noqa: E402 - sets Django up first

from django.conf import settings  # noqa: E402
from django.core.servers.basehttp import WSGIRequestHandler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from portal.servers import NoDelayThreadedWSGIServer  # noqa: E402

ROUNDS = 25
GOAL_MS = 150


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def seed_upstream(project_id: str) -> str:
    """1,000 experiments, and one with segments, variants, inclusions and 12 versions."""
    from management_api import services
    from management_api.models import Experiment, Variant

    services.project_ensure(project_id=project_id, name="Bench project")
    segment = {"name": "Segment 1", "percentage": 50, "bucketingKey": "amplitude_id",
               "conditions": [{"prop": "country", "op": "is", "type": "property", "values": ["Canada"]}],
               "rolloutWeights": {"control": 1, "treatment": 1}}
    Experiment.objects.bulk_create([
        Experiment(project_id=project_id, key=f"bench-{n:04d}", name=f"Bench experiment {n}",
                   description="benchmark", bucketing_salt="abcd1234", rollout_weights={"control": 1, "treatment": 1},
                   target_segments=[segment], tags=["bench", f"team-{n % 7}"], created_by="bench")
        for n in range(999)
    ])
    Variant.objects.bulk_create([
        Variant(experiment=e, key=key, position=i, payload={})
        for e in Experiment.objects.all() for i, key in enumerate(["control", "treatment"])
    ])
    detailed = services.experiment_create(body={"projectId": project_id, "key": "detailed", "name": "Detailed"},
                                          by="bench", project_ids=None)
    for n in range(11):
        services.experiment_edit(experiment_id=detailed.id, by="bench",
                                 body={"rolloutPercentage": n * 5, "targetSegments": [segment], "tags": [f"t{n}"]})
    return str(detailed.id)


def measure(client: Client, url: str, **headers) -> tuple[float, int]:
    value = median_get_ms(client, url, ROUNDS, **headers)
    with CaptureQueriesContext(connection) as queries:
        client.get(url, headers=headers)
    return value, len(queries.captured_queries)


def run() -> list[tuple]:
    from management_api.auth import api_key_create

    from experiments_app import gateway
    from experiments_app.users import user_create

    project_id = "100001"
    experiment_id = seed_upstream(project_id)
    _, raw_key = api_key_create(name="bench", project_ids=[project_id])

    server = NoDelayThreadedWSGIServer(("127.0.0.1", 0), QuietHandler)
    server.set_app(get_wsgi_application())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.UPSTREAM_BASE_URL = f"http://127.0.0.1:{server.server_port}"
    settings.UPSTREAM_API_KEY = raw_key
    settings.UPSTREAM_PROJECT_ID = project_id
    gateway.reset_client()

    viewer = user_create(username="bench-viewer", role="Viewer", password="x", validate=False)
    client = Client()
    client.force_login(viewer)
    htmx = {"HX-Request": "true"}
    rows = []
    pages = [
        ("experiments list, 1,000 upstream experiments", "/", {}),
        ("experiments list filtered (tag, search)", "/?tag=team-3&q=bench-00", {}),
        ("experiment page (overview)", f"/experiments/{experiment_id}/", {}),
        ("versions tab fragment (12 versions)", f"/experiments/{experiment_id}/tabs/versions", htmx),
        ("version diff fragment", f"/experiments/{experiment_id}/versions/compare?a=1&b=12", htmx),
    ]
    for name, url, headers in pages:
        value, queries = measure(client, url, **headers)
        rows.append((name, f"{value:.1f} ms", f"{queries}", f"< {GOAL_MS} ms", value < GOAL_MS))
    server.shutdown()
    return rows


def main() -> None:
    settings.ALLOWED_HOSTS = ["*"]
    settings.DEBUG = False
    settings.MANAGEMENT_API_RATE_PER_SECOND = 0
    settings.MANAGEMENT_API_RATE_PER_DAY = 0
    settings.UPSTREAM_RATE_PER_SECOND = 0
    with throwaway_database():
        rows = run()
    print()
    print(f"Read side benchmark — {connection.vendor}, server-side medians of {ROUNDS} requests, warm read cache")
    print(f"{'page':<48} {'median':>10} {'queries':>8}  {'goal':>10}  ok")
    print("-" * 86)
    for name, value, queries, goal, passed in rows:
        print(f"{name:<48} {value:>10} {queries:>8}  {goal:>10}  {'yes' if passed else 'NO'}")


if __name__ == "__main__":
    main()
