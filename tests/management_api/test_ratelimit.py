import datetime
import uuid

import pytest

from management_api import ratelimit
from management_api.errors import ApiError
from management_api.models import RateCounter

from .conftest import OTHER_PROJECT_ID, PROJECT_ID

REDIS_TEST_URL = "redis://127.0.0.1:6379/15"


def test_per_second_limit_answers_429_with_retry_after(api, settings):
    settings.MANAGEMENT_API_RATE_PER_SECOND = 2
    statuses = [api.get("/experiments") for _ in range(8)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert limited[0].headers["Retry-After"] == "1"
    assert "rate limit" in limited[0].json()["error"]
    assert {r.status_code for r in statuses} <= {200, 429}


def test_daily_limit_is_per_project_and_retry_after_points_to_midnight_utc(api, other_api, settings):
    settings.MANAGEMENT_API_RATE_PER_DAY = 3
    assert [api.get("/experiments").status_code for _ in range(3)] == [200, 200, 200]
    refused = api.get("/experiments")
    assert refused.status_code == 429
    now = datetime.datetime.now(datetime.UTC)
    midnight = datetime.datetime.combine(now.date() + datetime.timedelta(days=1), datetime.time(), datetime.UTC)
    assert abs(int(refused.headers["Retry-After"]) - (midnight - now).total_seconds()) < 5
    assert other_api.get("/experiments").status_code == 200


def test_the_counter_is_shared_through_the_database(api, settings):
    """Another process sees the same budget: the count lives in a table, not in memory."""
    settings.MANAGEMENT_API_RATE_PER_DAY = 2
    api.get("/experiments")
    api.get("/experiments")
    assert RateCounter.objects.filter(bucket__startswith=f"{PROJECT_ID}:d:").get().count == 2
    with pytest.raises(ApiError) as refused:
        ratelimit.check_rate_limit(PROJECT_ID)
    assert refused.value.status == 429


def test_daily_count_resets_at_midnight_utc(transactional_db, settings, monkeypatch):
    settings.MANAGEMENT_API_RATE_PER_DAY = 1
    before_midnight = datetime.datetime(2026, 3, 1, 23, 59, 59, tzinfo=datetime.UTC).timestamp()
    monkeypatch.setattr(ratelimit.time, "time", lambda: before_midnight)
    ratelimit.check_rate_limit(OTHER_PROJECT_ID)
    with pytest.raises(ApiError):
        ratelimit.check_rate_limit(OTHER_PROJECT_ID)
    monkeypatch.setattr(ratelimit.time, "time", lambda: before_midnight + 1)
    ratelimit.check_rate_limit(OTHER_PROJECT_ID)


def test_a_zero_limit_disables_it(api, settings):
    settings.MANAGEMENT_API_RATE_PER_SECOND = 0
    settings.MANAGEMENT_API_RATE_PER_DAY = 0
    assert all(api.get("/experiments").status_code == 200 for _ in range(5))
    assert not RateCounter.objects.exists()


@pytest.fixture
def redis_limiter(settings):
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    prefix = f"test-mapi-{uuid.uuid4().hex}:"
    settings.REDIS_URL = REDIS_TEST_URL
    settings.MANAGEMENT_API_RATE_REDIS_PREFIX = prefix
    yield client, prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def test_redis_counter_limits_per_project_when_redis_is_configured(api, other_api, settings, redis_limiter):
    client, prefix = redis_limiter
    settings.MANAGEMENT_API_RATE_PER_DAY = 2
    assert [api.get("/experiments").status_code for _ in range(3)] == [200, 200, 429]
    assert other_api.get("/experiments").status_code == 200
    day_key = f"{prefix}{PROJECT_ID}:d:{datetime.datetime.now(datetime.UTC).date().isoformat()}"
    assert int(client.get(day_key)) == 3
    assert 0 < client.ttl(day_key) <= 86_400 + 2
    assert not RateCounter.objects.exists()


def test_unreachable_redis_falls_back_to_the_database_counter(api, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/15"
    settings.MANAGEMENT_API_RATE_PER_DAY = 1
    assert [api.get("/experiments").status_code for _ in range(2)] == [200, 429]
    assert RateCounter.objects.filter(bucket__startswith=f"{PROJECT_ID}:d:").get().count == 2
