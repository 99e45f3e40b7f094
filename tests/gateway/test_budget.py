"""The shared request budget: per-project rate across processes, and the daily quota."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from experiments_app import gateway
from experiments_app.gateway.ratelimit import Budget

WORKER = Path(__file__).with_name("hammer_worker.py")


def _redis_url(settings) -> str:
    """The configured Redis (or a local one), database 15: other suites running at the same time
    clear the cache database (FLUSHDB), which would reset these tests' counters mid-test."""
    url = getattr(settings, "REDIS_URL", None) or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    url = urlsplit(url)._replace(path="/15").geturl()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url}")
    return url


@pytest.fixture(params=["in-process", "redis"])
def budget_backend(request, upstream, settings):
    settings.REDIS_URL = _redis_url(settings) if request.param == "redis" else None
    return request.param


def test_every_upstream_attempt_counts_against_the_daily_budget(budget_backend, upstream, settings):
    settings.UPSTREAM_DAILY_QUOTA = 1000
    client = gateway.get_client()

    client.list_experiments()
    list(client.list_deployments())
    with pytest.raises(gateway.NotFound):
        client.get_experiment("31337")

    assert client.budget.shared is (budget_backend == "redis")
    assert gateway.budget_remaining() == 1000 - 3
    assert gateway.budget_remaining(upstream.project_id) == 1000 - 3
    assert gateway.budget_remaining("some-other-project") == 1000


def test_exhausted_daily_budget_refuses_calls_without_sending_them(budget_backend, upstream, settings):
    settings.UPSTREAM_DAILY_QUOTA = 3
    client = gateway.get_client()

    with gateway.recording() as calls:
        for _ in range(3):
            client.list_experiments()
        with pytest.raises(gateway.BudgetExhausted) as caught:
            client.list_experiments()

    assert len(calls) == 3
    assert isinstance(caught.value, gateway.RateLimited) and 0 < caught.value.retry_after <= 86400
    assert gateway.budget_remaining() == 0


def test_bulk_work_that_would_exhaust_the_budget_is_refused_up_front(budget_backend, upstream, settings):
    settings.UPSTREAM_DAILY_QUOTA = 10
    client = gateway.get_client()
    for _ in range(4):
        client.list_experiments()

    assert gateway.budget_reserve_check(upstream.project_id, 6) is True
    assert gateway.budget_reserve_check(upstream.project_id, 7) is False
    assert gateway.budget_reserve_check(None, 7) is False


def test_in_process_bucket_paces_threads_to_the_configured_rate():
    budget = Budget(rate=200.0, quota=10_000, prefix=f"test:pace:{time.time_ns()}")
    started = time.monotonic()

    def take(n):
        for _ in range(n):
            budget.acquire("p1", deadline=time.monotonic() + 10)

    threads = [threading.Thread(target=take, args=(30,)) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert time.monotonic() - started >= (150 - budget.burst) / 200 * 0.98
    assert budget.remaining("p1") == 10_000 - 150


def test_two_worker_processes_share_one_rate_budget_and_never_see_a_429(upstream, settings, capsys):
    redis_url = _redis_url(settings)
    settings.REDIS_URL = redis_url  # the embedded API counts its per-second windows in Redis too
    settings.MANAGEMENT_API_RATE_PER_SECOND = 100
    calls_each, rate = 300, 90.0
    env = {**os.environ, "UPSTREAM_BASE_URL": upstream.base_url, "UPSTREAM_API_KEY": upstream.api_key,
           "UPSTREAM_PROJECT_ID": upstream.project_id, "REDIS_URL": redis_url,
           "UPSTREAM_RATE_PER_SECOND": str(rate), "UPSTREAM_MAX_RETRY_SECONDS": "30", "LOG_LEVEL": "WARNING"}
    options = {"calls": calls_each, "threads": 6, "start_at": time.time() + 1.5, "prefix": upstream.budget_prefix}
    workers = [subprocess.Popen([sys.executable, str(WORKER), json.dumps(options)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=120) for worker in workers]

    assert all(worker.returncode == 0 for worker in workers), [err[-2000:] for _, err in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    statuses = {}
    for result in results:
        for status, count in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    elapsed = max(r["finished"] for r in results) - min(r["started"] for r in results)
    with capsys.disabled():
        print(f"\n  two processes, {2 * calls_each} calls at {rate}/s shared: {elapsed:.2f}s, statuses {statuses}")

    seen = f"elapsed {elapsed:.2f}s, statuses {statuses}, errors {[r['errors'] for r in results]}"
    assert all(r["budget_shared"] for r in results)
    assert all(r["errors"] == {} for r in results), seen
    assert statuses.get("429", 0) == 0, seen
    assert statuses.get("200", 0) == 2 * calls_each, seen
    assert elapsed >= (2 * calls_each - 2) / rate * 0.98
    assert gateway.budget_remaining(upstream.project_id) == settings.UPSTREAM_DAILY_QUOTA - 2 * calls_each


def test_budget_keeps_working_in_process_when_redis_is_down(upstream, caplog):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    budget = Budget(rate=1000.0, quota=100, redis_url=f"redis://127.0.0.1:{port}/0",
                    prefix=f"{upstream.budget_prefix}:down")

    for _ in range(3):
        budget.acquire("p1", deadline=time.monotonic() + 5)

    assert budget.remaining("p1") == 97
    assert caplog.text.count("Redis unavailable") == 1  # then it stops trying for a while
