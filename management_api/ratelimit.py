"""Per-project rate limits shared by every server process.

Two fixed windows per project: the current UTC second (``MANAGEMENT_API_RATE_PER_SECOND``,
default 100) and the current UTC day (``MANAGEMENT_API_RATE_PER_DAY``, default 100,000; resets
at midnight UTC). 0 disables a limit. Counters live in Redis when ``REDIS_URL`` is set
(INCR + EXPIRE; while Redis is unreachable the database counts instead), otherwise in the ``RateCounter`` table (one atomic
``UPDATE … SET count = count + 1 … RETURNING count`` per window). Settings are read at request
time. A request refused by the per-second limit does not count against the day.
"""

import contextlib
import datetime
import logging
import time

from django.conf import settings
from django.db import connection, transaction

from .errors import ApiError
from .models import RateCounter

logger = logging.getLogger(__name__)
_redis_clients: dict[str, object] = {}


def _redis(url: str):
    client = _redis_clients.get(url)
    if client is None:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        _redis_clients[url] = client
    return client


def _redis_prefix() -> str:
    return getattr(settings, "MANAGEMENT_API_RATE_REDIS_PREFIX", "mapi:rate:")


def _increment_redis(url: str, bucket: str, ttl_seconds: int) -> int:
    pipeline = _redis(url).pipeline()
    key = _redis_prefix() + bucket
    pipeline.incr(key)
    pipeline.expire(key, ttl_seconds, nx=True)
    count, _ = pipeline.execute()
    return int(count)


def _increment_db(bucket: str, expires_at: datetime.datetime) -> int:
    table = connection.ops.quote_name(RateCounter._meta.db_table)
    sql = f"UPDATE {table} SET count = count + 1 WHERE bucket = %s RETURNING count"
    with connection.cursor() as cursor:
        cursor.execute(sql, [bucket])
        row = cursor.fetchone()
        if row is not None:
            return row[0]
    # First request of this window: create the row (racing processes: one wins, all update).
    now = datetime.datetime.now(datetime.UTC)
    RateCounter.objects.filter(expires_at__lt=now).delete()
    RateCounter.objects.bulk_create([RateCounter(bucket=bucket, count=0, expires_at=expires_at)], ignore_conflicts=True)
    with connection.cursor() as cursor:
        cursor.execute(sql, [bucket])
        return cursor.fetchone()[0]


def _increment(bucket: str, window_end: datetime.datetime) -> int:
    redis_url = getattr(settings, "REDIS_URL", None)
    if redis_url:
        import redis

        ttl = max(1, int((window_end - datetime.datetime.now(datetime.UTC)).total_seconds()) + 2)
        try:
            return _increment_redis(redis_url, bucket, ttl)
        except redis.RedisError as exc:
            # Still limit (per database) rather than fail every request or stop limiting.
            logger.warning("rate limiter: Redis unavailable (%s); counting in the database", exc)
    return _increment_db(bucket, window_end + datetime.timedelta(seconds=2))


@contextlib.contextmanager
def _counting():
    """Database counters: both windows in one transaction (one commit), and on PostgreSQL
    without waiting for the WAL flush — a counter lost in a crash costs nothing."""
    if getattr(settings, "REDIS_URL", None):
        yield
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def check_rate_limit(project_id: str) -> None:
    """Count one request for the project; raise a 429 ApiError (with Retry-After) over a limit."""
    per_second = int(getattr(settings, "MANAGEMENT_API_RATE_PER_SECOND", 100) or 0)
    per_day = int(getattr(settings, "MANAGEMENT_API_RATE_PER_DAY", 100_000) or 0)
    if per_second <= 0 and per_day <= 0:
        return
    now = time.time()
    today = datetime.datetime.fromtimestamp(now, datetime.UTC).date()
    midnight = datetime.datetime.combine(today + datetime.timedelta(days=1), datetime.time(), datetime.UTC)
    second_count = day_count = 0
    with _counting():
        if per_second > 0:
            second = int(now)
            second_count = _increment(f"{project_id}:s:{second}", datetime.datetime.fromtimestamp(second + 1, datetime.UTC))
        if per_day > 0 and not (per_second > 0 and second_count > per_second):
            day_count = _increment(f"{project_id}:d:{today.isoformat()}", midnight)
    if per_second > 0 and second_count > per_second:
        raise ApiError(
            429,
            f"rate limit exceeded: {per_second} requests per second for project {project_id}",
            headers={"Retry-After": "1"},
        )
    if per_day > 0 and day_count > per_day:
        retry_after = max(1, int((midnight - datetime.datetime.now(datetime.UTC)).total_seconds()) + 1)
        raise ApiError(
            429,
            f"daily rate limit exceeded: {per_day} requests per day for project {project_id}",
            headers={"Retry-After": str(retry_after)},
        )
