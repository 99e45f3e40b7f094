"""A real Celery worker processes the outbox; a broker outage delays entries but loses none."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("outage_driver.py")
CELERY = Path(sys.executable).with_name("celery")
DEAD_BROKER = "redis://127.0.0.1:9/0"  # the discard port: connections are refused


@pytest.fixture
def shared_env(transactional_db, tmp_path):
    """Environment for processes that share this test's database, secret and a private broker."""
    env = {**os.environ, "PORTAL_VAR_DIR": str(tmp_path), "SECRET_KEY": settings.SECRET_KEY,
           "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "portal.settings"}
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        login = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else "")
        env["DATABASE_URL"] = f"postgres://{login}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    else:
        # The in-memory test database cannot be shared with another process: use a file.
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'outage.sqlite3'}"
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       check=True, timeout=120)
    redis_url = os.environ.get("REDIS_URL")
    env["CELERY_BROKER_URL"] = urlsplit(redis_url)._replace(path="/3").geturl() if redis_url else "filesystem://"
    if env["CELERY_BROKER_URL"].startswith("redis"):
        import redis

        redis.Redis.from_url(env["CELERY_BROKER_URL"]).flushdb()
    return env


def run_driver(env: dict, *args: str) -> dict | None:
    result = subprocess.run([sys.executable, str(DRIVER), *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(CELERY), "-A", "portal", "worker", "--pool", "solo", "-Q", "celery", "--without-heartbeat",
         "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def stop_worker(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)


def chained_count(env: dict) -> int:
    sql = "SELECT COUNT(*) FROM audit_auditentry WHERE sequence IS NOT NULL"
    if env["DATABASE_URL"].startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(env["DATABASE_URL"].removeprefix("sqlite:///")) as db:
            return db.execute(sql).fetchone()[0]
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def wait_until_chained(env: dict, count: int, timeout: float = 45.0) -> dict:
    deadline = time.monotonic() + timeout
    while chained_count(env) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return run_driver(env, "report")


def test_broker_outage_delays_entries_and_every_one_is_chained_exactly_once(shared_env, tmp_path):
    log = tmp_path / "worker.log"
    t0 = time.monotonic()
    mark = lambda what: print(f"{time.monotonic() - t0:6.1f}s {what}", file=sys.stderr)  # noqa: E731
    worker = start_worker(shared_env, log)
    mark("started")
    try:
        run_driver(shared_env, "record", "3", "before")
        mark("recorded")
        report = wait_until_chained(shared_env, 3)
        mark("chained")
        assert [e["sequence"] for e in report["entries"]] == [1, 2, 3], log.read_text()[-3000:]
    finally:
        stop_worker(worker)
    mark("stopped")

    # The outage: no worker, and the broker refuses connections. Changes still commit.
    outage_env = {**shared_env, "CELERY_BROKER_URL": DEAD_BROKER}
    started = time.monotonic()
    assert run_driver(outage_env, "record", "5", "during") == {"recorded": 5}
    assert time.monotonic() - started < 30, "a dead broker must not hold up the changes"
    mark("outage recorded")
    assert chained_count(shared_env) == 3, "the five new entries wait in the outbox"

    # The broker is back: beat's next ticks (two at once) and a worker catch up.
    worker = start_worker(shared_env, log)
    try:
        run_driver(shared_env, "tick", "+", "tick", "+", "record", "2", "after")
        mark("ticked")
        report = wait_until_chained(shared_env, 10)
        mark("chained")
    finally:
        stop_worker(worker)
    mark("stopped")

    entries = report["entries"]
    assert len(entries) == 10
    assert sorted(e["sequence"] for e in entries) == list(range(1, 11)), log.read_text()[-3000:]
    assert [e["reason"] for e in sorted(entries, key=lambda e: e["sequence"])][3:8] == \
        [f"during {n}" for n in range(5)]
    assert report["ok"] and report["checked"] == 10, report["problem"]
