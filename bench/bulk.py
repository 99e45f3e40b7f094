"""Benchmark of bulk inclusion jobs against the embedded Management API limited to 100
requests/s per project, side by side with a naive sequential script.

    .venv/bin/python bench/bulk.py

1. A sweep over 500 experiments x 2 variants (a few ids to remove from each), worked by the
   portal's service exactly as a worker runs it (read each variant, bulk delete by value,
   read back to verify; a few targets at a time inside the gateway's shared rate budget),
   against the naive way: one ``requests.delete`` per variant, a new connection each time, no
   limiter (a 429 is waited out and sent again, or the script would lose ids). Every HTTP
   attempt is counted, retries included. Each is timed BENCH_REPEAT (3) times on fresh
   experiments and the median ratio is the figure. Goal: elapsed within 1.15x of the limit's
   lower bound (calls / 100 s) and zero 429s.
2. The peak memory of a 50,000-id job (an erasure sweep over 25 variants holding 2,000 of the
   ids each: a 50,000-item ledger): tracemalloc's peak while the job runs in this process, this
   process's peak RSS, and -- the figure the goal is about -- the peak RSS (VmHWM) of a real
   `celery worker` process (--pool solo) working a second job of the same size. Goal: under 150 MB.

Uses a throwaway SQLite file under a temporary directory, or -- when DATABASE_URL is set -- a
``test_...`` database created (and dropped) beside that one.
"""

import logging
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from _setup import ROOT, TEMP_DIR, throwaway_database  # noqa: E402 - sets Django up first

import requests  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from experiments_app.bulk.models import BulkJob  # noqa: E402

PROJECT_ID = "100001"
SWEEP_EXPERIMENTS = int(os.environ.get("BENCH_SWEEP_EXPERIMENTS", 500))
REPEAT = int(os.environ.get("BENCH_REPEAT", 3))  # sweeps timed; the median is the figure
LEAVERS = [f"leaver-{n}" for n in range(3)]
MEMORY_VARIANTS = 25
MEMORY_IDS_PER_VARIANT = 2000
UPSTREAM_LIMIT = 100
RATIO_GOAL = 1.15
MEMORY_GOAL_MB = 150
SERVER_LOG = None


class CallCounter(logging.Handler):
    """Counts the gateway's HTTP attempts by status, from its one log record per attempt."""

    def __init__(self):
        super().__init__(level=logging.INFO)
        self.statuses: Counter = Counter()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "upstream_status"):
            with self._guard:
                self.statuses[record.upstream_status] += 1

    def reset(self) -> None:
        with self._guard:
            self.statuses.clear()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    """The benchmark's own database, for the processes it starts."""
    params = connection.settings_dict
    if params["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{params['NAME']}"
    auth = params["USER"] + (f":{params['PASSWORD']}" if params.get("PASSWORD") else "")
    return f"postgres://{auth}@{params.get('HOST') or '127.0.0.1'}:{params.get('PORT') or 5432}/{params['NAME']}"


def worker_peak_rss(*, base_url: str, api_key: str, job_id_after) -> dict:
    """Start a real `celery worker` (--pool solo: the task runs in the process measured), let it
    work the job ``job_id_after()`` queues, and read the process's peak resident memory (VmHWM)."""
    from portal.celery import app

    queue = f"bench-{os.getpid()}"
    app.conf.task_default_queue = queue  # only what is queued from here on reaches this worker
    for cached in ("default_queue", "queues", "router"):
        app.amqp.__dict__.pop(cached, None)
    env = {**os.environ, "DATABASE_URL": _database_url(), "UPSTREAM_BASE_URL": base_url, "UPSTREAM_API_KEY": api_key,
           "UPSTREAM_PROJECT_ID": PROJECT_ID, "LOG_LEVEL": "WARNING"}
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", "solo", "-Q", queue,
                               "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=SERVER_LOG)

    def status(field: str) -> float:
        for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MB
        return 0.0

    try:
        time.sleep(5)  # started and idle
        idle = status("VmRSS")
        job = job_id_after()
        started = time.perf_counter()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not BulkJob.objects.get(pk=job.pk).is_finished:
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        job.refresh_from_db()
        return {"idle": idle, "peak": status("VmHWM"), "elapsed": elapsed, "status": job.status,
                "verified": job.verified, "ids": job.items.filter(status="applied").count()}
    finally:
        worker.terminate()
        worker.wait(30)


def start_upstream(limit: int = UPSTREAM_LIMIT) -> tuple[subprocess.Popen, str]:
    """The embedded API served as `make run` serves it (gunicorn, 2 processes x 8 threads), in its
    own processes: an in-thread server would share this process's GIL with the worker being
    measured, and the figure would be the server's CPU, not the worker's pacing."""
    url = _database_url()
    port = _free_port()
    global SERVER_LOG
    SERVER_LOG = open(Path(TEMP_DIR.name) / "upstream.log", "w")  # noqa: SIM115 - open while it runs
    env = {**os.environ, "DATABASE_URL": url, "MANAGEMENT_API_RATE_PER_SECOND": str(limit),
           "MANAGEMENT_API_RATE_PER_DAY": "0", "PORT": str(port), "LOG_LEVEL": "ERROR"}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}",
                               "--worker-class", "gthread", "--workers", "2", "--threads", "8", "--log-level", "error"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=SERVER_LOG)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base_url}/api/1/deployments", timeout=1)  # any answer (401) means it is up
            return server, base_url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("the embedded API did not start:\n" + (Path(TEMP_DIR.name) / "upstream.log").read_text())


def seed(prefix: str, experiments: int, inclusions, tags=()) -> list[tuple[str, list[str]]]:
    """Experiments with variants control/treatment; ``inclusions(n, variant)`` gives the ids."""
    from management_api.models import Experiment, Inclusion, Variant

    Experiment.objects.bulk_create([
        Experiment(project_id=PROJECT_ID, key=f"{prefix}-{n:04d}", name=f"{prefix} {n}", bucketing_salt="abcd1234",
                   rollout_weights={"control": 1, "treatment": 1}, tags=list(tags), created_by="bench")
        for n in range(experiments)
    ])
    created = list(Experiment.objects.filter(key__startswith=f"{prefix}-").order_by("key"))
    Variant.objects.bulk_create([Variant(experiment=e, key=key, position=i, payload={})
                                 for e in created for i, key in enumerate(["control", "treatment"])])
    variants = {(v.experiment_id, v.key): v for v in Variant.objects.filter(experiment__in=created)}
    rows = []
    for n, experiment in enumerate(created):
        for key in ("control", "treatment"):
            rows += [Inclusion(variant=variants[(experiment.id, key)], user_id=u) for u in inclusions(n, key)]
    Inclusion.objects.bulk_create(rows, batch_size=2000)
    return [(str(e.id), [f"{prefix}-{n:04d}"]) for n, e in enumerate(created)]


def server_capacity(api_key: str, experiment_ids: list[str], clients: int = 8) -> float:
    """Requests/s the embedded API itself answers on this machine with no rate limit: 8 clients
    on keep-alive connections reading inclusion lists. The sweep cannot go faster than this."""
    server, base_url = start_upstream(limit=0)
    headers = {"Authorization": f"Bearer {api_key}"}

    def read(offset: int) -> None:
        with requests.Session() as session:
            for experiment_id in experiment_ids[offset::clients]:
                session.get(f"{base_url}/api/1/experiments/{experiment_id}/variants/control/users", headers=headers,
                            timeout=15).raise_for_status()

    threads = [threading.Thread(target=read, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    server.terminate()
    server.wait(15)
    return len(experiment_ids) / elapsed


def naive_sweep(base_url: str, api_key: str, experiment_ids: list[str]) -> Counter:
    """What a hurried script does: one DELETE per variant, a new connection each, no limiter."""
    statuses: Counter = Counter()
    headers = {"Authorization": f"Bearer {api_key}"}
    for experiment_id in experiment_ids:
        for variant in ("control", "treatment"):
            url = f"{base_url}/api/1/experiments/{experiment_id}/variants/{variant}/bulk-delete-users"
            while True:
                response = requests.delete(url, json={"users": LEAVERS}, headers=headers, timeout=15)
                statuses[response.status_code] += 1
                if response.status_code != 429:
                    response.raise_for_status()
                    break
                time.sleep(float(response.headers.get("Retry-After", "1")))
    return statuses


def portal_job(*, requester, approvers, kind: str, ids: list[str], **target):
    """Create, submit and approve a job as people would, and queue it (the apply step): the caller
    works it in-process, or a worker takes the queued message."""
    from experiments_app import change_requests
    from experiments_app.bulk import services

    job, preview = services.bulk_job_create(requester=requester, kind=kind, ids=ids, title="", reason="bench",
                                            **target)
    assert job is not None, preview.as_dict()
    change_request = services.bulk_job_submit(actor=requester, job=job)
    for approver in approvers:
        change_request.refresh_from_db()
        if change_request.status == "pending":
            change_requests.change_request_approve(approver=approver, change_request=change_request)
    change_requests.change_request_apply(change_request_id=change_request.pk)
    return job


def run() -> dict:
    from management_api.auth import api_key_create
    from management_api.services import project_ensure

    from experiments_app import gateway
    from experiments_app.bulk import services
    from experiments_app.bulk.models import ItemStatus
    from experiments_app.users import user_create

    project_ensure(project_id=PROJECT_ID, name="Bench project")
    _, raw_key = api_key_create(name="bench", project_ids=[PROJECT_ID])
    counter = CallCounter()
    gateway_log = logging.getLogger("experiments_app.gateway")
    gateway_log.addHandler(counter)
    gateway_log.setLevel(logging.INFO)
    gateway_log.propagate = False
    server, base_url = start_upstream()
    settings.UPSTREAM_BASE_URL = base_url
    settings.UPSTREAM_API_KEY = raw_key
    settings.UPSTREAM_PROJECT_ID = PROJECT_ID
    gateway.reset_client()

    editor = user_create(username="bench-editor", role="Editor", password="x", validate=False)
    approvers = [user_create(username=f"bench-approver-{n}", role="Approver", password="x", validate=False)
                 for n in range(2)]
    results = {}

    # --- 1. The sweep, the portal's way, then naively; REPEAT times, on fresh experiments -----
    results["capacity"] = None
    results["portal"], results["naive"] = [], []
    for run_number in range(REPEAT):
        tag = f"sweep-{run_number}"
        swept = seed(tag, SWEEP_EXPERIMENTS, lambda n, key: LEAVERS + [f"stay-{n}-{key}"], tags=[tag])
        if results["capacity"] is None:
            results["capacity"] = server_capacity(raw_key, [experiment_id for experiment_id, _ in swept])
        job = portal_job(requester=editor, approvers=approvers, kind="sweep", ids=LEAVERS, sweep_filter="tag",
                         sweep_value=tag)
        time.sleep(1.1)  # a fresh one-second window upstream
        counter.reset()
        started, cpu_started = time.perf_counter(), time.process_time()
        outcome = services.bulk_job_run(job_id=job.pk)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        job.refresh_from_db()
        results["portal"].append({
            "calls": sum(counter.statuses.values()), "elapsed": elapsed, "cpu": cpu, "s429": counter.statuses[429],
            "outcome": outcome, "verified": job.verified,
            "applied": job.items.filter(status=ItemStatus.APPLIED).count()})

        naive_targets = seed(f"naive-{run_number}", SWEEP_EXPERIMENTS, lambda n, key: LEAVERS + [f"stay-{n}-{key}"])
        time.sleep(1.1)
        started = time.perf_counter()
        statuses = naive_sweep(base_url, raw_key, [experiment_id for experiment_id, _ in naive_targets])
        elapsed = time.perf_counter() - started
        results["naive"].append({"calls": sum(statuses.values()), "elapsed": elapsed, "s429": statuses[429]})

    # --- 2. Memory of a 50,000-id job -----------------------------------------------------
    # A sweep of 50,000 ids (say, an erasure request) over 25 experiments whose control
    # variants hold 2,000 of them each: a 50,000-item ledger, 500 bulk deletes.
    everyone = [f"erase-{i:05d}" for i in range(MEMORY_VARIANTS * MEMORY_IDS_PER_VARIANT)]
    seed("memory", MEMORY_VARIANTS, lambda n, key: everyone[n * MEMORY_IDS_PER_VARIANT:(n + 1) * MEMORY_IDS_PER_VARIANT]
         if key == "control" else [], tags=["erasure"])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    job = portal_job(requester=editor, approvers=approvers, kind="sweep", ids=everyone, sweep_filter="tag",
                     sweep_value="erasure")
    _, create_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    started = time.perf_counter()
    outcome = services.bulk_job_run(job_id=job.pk)
    elapsed = time.perf_counter() - started
    _, run_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    job.refresh_from_db()
    results["memory"] = {"ids": job.items.filter(status=ItemStatus.APPLIED).count(), "elapsed": elapsed,
                         "create_peak_mb": create_peak / 1024 / 1024, "peak_mb": run_peak / 1024 / 1024,
                         "rss_before": rss_before, "rss_after": rss_after, "outcome": outcome,
                         "verified": job.verified}

    # --- 2b. The same size of job worked by a real Celery worker process ------------------
    seed("worker", MEMORY_VARIANTS, lambda n, key: everyone[n * MEMORY_IDS_PER_VARIANT:(n + 1) * MEMORY_IDS_PER_VARIANT]
         if key == "control" else [], tags=["erasure-worker"])
    results["worker"] = worker_peak_rss(
        base_url=base_url, api_key=raw_key,
        job_id_after=lambda: portal_job(requester=editor, approvers=approvers, kind="sweep", ids=everyone,
                                        sweep_filter="tag", sweep_value="erasure-worker"))
    server.terminate()
    server.wait(15)
    return results


def main() -> None:
    settings.ALLOWED_HOSTS = ["*"]
    settings.DEBUG = False
    settings.MANAGEMENT_API_RATE_PER_SECOND = UPSTREAM_LIMIT
    settings.MANAGEMENT_API_RATE_PER_DAY = 0
    with throwaway_database():
        results = run()
    print()
    print(f"Bulk jobs benchmark — {connection.vendor}; embedded API limited to {UPSTREAM_LIMIT} requests/s; "
          f"portal limiter {settings.UPSTREAM_RATE_PER_SECOND:g}/s, {settings.BULK_WORKER_THREADS} threads")
    print(f"Sweep: {SWEEP_EXPERIMENTS} experiments x 2 variants, {len(LEAVERS)} ids to remove from each variant")
    print(f"The embedded API alone answers {results['capacity']:.0f} requests/s on this machine (8 keep-alive "
          "clients, no limit): the sweep cannot beat that.")
    print(f"The portal's own limiter alone makes the best possible ratio {UPSTREAM_LIMIT / settings.UPSTREAM_RATE_PER_SECOND:.3f} "
          "(UPSTREAM_RATE_PER_SECOND leaves room under the upstream's limit for other callers).")
    print(f"Each sweep ran {REPEAT} times on fresh experiments; ratio = elapsed / (calls / {UPSTREAM_LIMIT}); "
          "the median is the figure, min and max beside it.")
    print(f"{'run':<40} {'calls':>6} {'median':>8} {'bound':>7} {'ratio':>6} {'min':>6} {'max':>6} {'429s':>5}  ok")
    print("-" * 96)
    for name, key, goal in (("portal sweep (read, bulk delete, verify)", "portal", True),
                            ("naive script (delete per variant)", "naive", False)):
        runs = results[key]
        ratios = sorted(run["elapsed"] / (run["calls"] / UPSTREAM_LIMIT) for run in runs)
        ratio = statistics.median(ratios)
        calls = statistics.median(run["calls"] for run in runs)
        elapsed = statistics.median(run["elapsed"] for run in runs)
        s429 = sum(run["s429"] for run in runs)
        verdict = ("yes" if ratio <= RATIO_GOAL and s429 == 0 else "NO") if goal else "-"
        print(f"{name:<40} {calls:>6.0f} {elapsed:>7.2f}s {calls / UPSTREAM_LIMIT:>6.2f}s {ratio:>6.3f} "
              f"{ratios[0]:>6.3f} {ratios[-1]:>6.3f} {s429:>5}  {verdict}")
    for portal in results["portal"]:
        print(f"  portal sweep: job {portal['outcome']}, verified={portal['verified']}, {portal['applied']} ids removed "
              f"in {portal['elapsed']:.2f}s, worker CPU {portal['cpu']:.1f}s "
              f"({1000 * portal['cpu'] / max(portal['calls'], 1):.1f} ms a call)")
    memory = results["memory"]
    print()
    print(f"Memory: a {len(LEAVERS) and MEMORY_VARIANTS * MEMORY_IDS_PER_VARIANT:,}-id sweep over {MEMORY_VARIANTS} "
          f"variants holding {MEMORY_IDS_PER_VARIANT:,} of them each: {memory['ids']:,} removed in "
          f"{memory['elapsed']:.1f}s, job {memory['outcome']}, verified={memory['verified']}")
    print(f"  tracemalloc peak, drafting the job (parse-free preview + ledger): {memory['create_peak_mb']:.1f} MB")
    print(f"  tracemalloc peak, working the ledger (the worker's part): {memory['peak_mb']:.1f} MB "
          f"(goal < {MEMORY_GOAL_MB} MB: {'yes' if memory['peak_mb'] < MEMORY_GOAL_MB else 'NO'})")
    print(f"  process peak RSS (the bench process: web side + worker side): {memory['rss_before']:.0f} MB before, "
          f"{memory['rss_after']:.0f} MB after (goal < {MEMORY_GOAL_MB} MB: "
          f"{'yes' if memory['rss_after'] < MEMORY_GOAL_MB else 'NO'})")
    worker = results["worker"]
    print(f"  a real Celery worker process (--pool solo) working the same job: {worker['ids']:,} removed in "
          f"{worker['elapsed']:.1f}s, job {worker['status']}, verified={worker['verified']}; resident memory "
          f"{worker['idle']:.0f} MB idle, peak {worker['peak']:.0f} MB (goal < {MEMORY_GOAL_MB} MB: "
          f"{'yes' if worker['peak'] < MEMORY_GOAL_MB else 'NO'})")


if __name__ == "__main__":
    main()
