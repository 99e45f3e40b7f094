"""The shared request budget for each upstream project.

The upstream allows 100 requests/s and 100,000 requests/day *per project*, shared by every
caller. The portal stays under ``UPSTREAM_RATE_PER_SECOND`` (default 90) with a token bucket
and counts ``UPSTREAM_DAILY_QUOTA`` per project per UTC day.

* With ``REDIS_URL`` set, the bucket and the day counter live in Redis, updated by one atomic
  Lua script that reads the clock from Redis (``TIME``), so every web and worker process on
  every host draws from the same bucket. Keys: ``<prefix>:bucket:<project>`` and
  ``<prefix>:quota:<project>:<YYYYMMDD>`` (expires after two days).
* Without Redis, the bucket and the day counter are in-process (thread-safe): each process
  sees its own share only, which is all there is without a shared store. (Not the Django
  cache: without Redis that is local memory too, and its culling would silently reset the
  counter.)

The bucket holds at most ``burst`` tokens (2% of a second's rate, at least 1, by default;
``UPSTREAM_RATE_BURST`` overrides it), so any one-second window sees at most ``rate + burst``
requests: 91.8 at the default rate, leaving room under the upstream's 100 for network jitter
(the upstream counts fixed one-second windows on arrival).
If Redis stops answering, the gateway logs a warning and uses the in-process bucket and count
for the next 10 seconds (then tries Redis again) rather than stopping all upstream traffic;
what it counted meanwhile is added to the shared count it reports.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time

from .errors import BudgetExhausted, RateLimited

logger = logging.getLogger("experiments_app.gateway")

DAY_COUNTER_TTL_SECONDS = 2 * 24 * 3600
REDIS_RETRY_AFTER_SECONDS = 10

# KEYS[1] bucket hash, KEYS[2] day counter. ARGV: rate/s, burst, daily quota.
# Returns {wait_microseconds, used_today}; wait -1 means the day's quota is used up.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local quota = tonumber(ARGV[3])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if used >= quota then
  return {-1, used}
end
if rate > 0 then
  local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil or ts == nil then
    tokens = burst
    ts = now
  end
  if now > ts then
    tokens = math.min(burst, tokens + (now - ts) * rate)
    ts = now
  end
  if tokens < 1 then
    return {math.ceil((1 - tokens) / rate * 1000000), used}
  end
  tokens = tokens - 1
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', ts))
  redis.call('EXPIRE', KEYS[1], 60)
end
used = redis.call('INCR', KEYS[2])
if used == 1 then
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
end
return {0, used}
"""


def utc_day(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d")


def seconds_until_utc_midnight() -> float:
    now = dt.datetime.now(dt.UTC)
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


# Without Redis: this process's request count per "<prefix>:quota:<project>:<day>" key. Kept at
# module level so that rebuilding the client (reset_client) does not forget today's count.
_day_counts: dict[str, int] = {}
_day_counts_lock = threading.Lock()


def default_burst(rate: float) -> float:
    return max(1.0, rate / 50)


class _LocalBucket:
    """A thread-safe in-process token bucket per project."""

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}

    def try_take(self, project_id: str) -> float:
        """Take a token and return 0, or return the seconds to wait for one."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = time.monotonic()
            tokens, ts = self._state.get(project_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - ts) * self.rate)
            if tokens < 1:
                self._state[project_id] = (tokens, now)
                return (1 - tokens) / self.rate
            self._state[project_id] = (tokens - 1, now)
            return 0.0


class Budget:
    """Rate and daily quota for the upstream projects; one per process (see get_budget)."""

    def __init__(self, *, rate: float, quota: int, burst: float | None = None, redis_url: str | None = None,
                 prefix: str = "portal:gateway", sleep=time.sleep):
        self.rate = float(rate)
        self.burst = float(burst) if burst else default_burst(self.rate)
        self.quota = int(quota)
        self.prefix = prefix
        self.redis_url = redis_url
        self._sleep = sleep
        self._local = _LocalBucket(self.rate, self.burst)
        self._redis = None
        self._script = None
        self._redis_down_until = 0.0  # after a Redis failure, stay in-process for a while
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
            self._script = self._redis.register_script(_ACQUIRE_LUA)

    def __repr__(self) -> str:
        where = "redis" if self._redis is not None else "local"
        return f"<Budget {where} rate={self.rate}/s burst={self.burst} quota={self.quota}/day>"

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def _keys(self, project_id: str) -> tuple[str, str]:
        return f"{self.prefix}:bucket:{project_id}", f"{self.prefix}:quota:{project_id}:{utc_day()}"

    # --- taking a token -------------------------------------------------------------------
    def acquire(self, project_id: str, *, deadline: float) -> None:
        """Block until a request to ``project_id`` may be sent.

        Raises BudgetExhausted when the day's quota is used up, RateLimited when the wait for a
        token would pass ``deadline`` (a time.monotonic() value).
        """
        project_id = str(project_id)
        while True:
            wait = self._try_take(project_id)
            if wait <= 0:
                return
            if time.monotonic() + wait > deadline:
                raise RateLimited("The portal's request rate to the experiment service is saturated; try again shortly.",
                                  retry_after=round(wait, 3))
            # A little jitter so processes waiting on the same bucket do not wake in lockstep.
            self._sleep(wait + random.uniform(0, min(0.005, 1 / max(self.rate, 1))))

    def _redis_usable(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: Exception) -> None:
        logger.warning("rate budget: Redis unavailable (%s); using this process's own bucket and count for %ds",
                       type(exc).__name__, REDIS_RETRY_AFTER_SECONDS)
        self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_SECONDS

    def _try_take(self, project_id: str) -> float:
        if self._redis_usable():
            try:
                bucket_key, day_key = self._keys(project_id)
                wait_us, _used = self._script(keys=[bucket_key, day_key],
                                              args=[self.rate, self.burst, self.quota, DAY_COUNTER_TTL_SECONDS])
            except Exception as exc:  # Redis down: keep serving with the in-process bucket
                self._redis_failed(exc)
            else:
                if wait_us < 0:
                    raise self._exhausted(project_id)
                return wait_us / 1_000_000
        if self._local_used(project_id) >= self.quota:
            raise self._exhausted(project_id)
        wait = self._local.try_take(project_id)
        if wait <= 0:
            self._local_count(project_id)
        return wait

    def _exhausted(self, project_id: str) -> BudgetExhausted:
        return BudgetExhausted(f"The daily request budget ({self.quota}) for project {project_id} is used up.",
                               status=None, retry_after=round(seconds_until_utc_midnight(), 1))

    # --- the day's counter ----------------------------------------------------------------
    def _local_count(self, project_id: str) -> None:
        global _day_counts
        key = self._keys(project_id)[1]
        with _day_counts_lock:
            if key not in _day_counts:  # a new day (or project): forget the days before
                today = utc_day()
                _day_counts = {k: v for k, v in _day_counts.items() if k.endswith(today)}
            _day_counts[key] = _day_counts.get(key, 0) + 1

    def _local_used(self, project_id: str) -> int:
        with _day_counts_lock:
            return _day_counts.get(self._keys(project_id)[1], 0)

    def used_today(self, project_id: str) -> int:
        project_id = str(project_id)
        if self._redis_usable():
            try:
                return int(self._redis.get(self._keys(project_id)[1]) or 0) + self._local_used(project_id)
            except Exception as exc:
                self._redis_failed(exc)
        return self._local_used(project_id)

    def remaining(self, project_id: str) -> int:
        return max(0, self.quota - self.used_today(project_id))

    def reserve_check(self, project_id: str, calls: int) -> bool:
        """Whether ``calls`` more requests fit in what is left of today's quota."""
        return self.remaining(project_id) >= calls


_budget: Budget | None = None
_budget_lock = threading.Lock()


def get_budget() -> Budget:
    """The process-wide budget built from settings."""
    global _budget
    with _budget_lock:
        if _budget is None:
            from django.conf import settings

            _budget = Budget(
                rate=float(getattr(settings, "UPSTREAM_RATE_PER_SECOND", 90.0)),
                quota=int(getattr(settings, "UPSTREAM_DAILY_QUOTA", 100_000)),
                burst=getattr(settings, "UPSTREAM_RATE_BURST", None),
                redis_url=getattr(settings, "REDIS_URL", None),
                prefix=getattr(settings, "UPSTREAM_BUDGET_KEY_PREFIX", "portal:gateway"),
            )
        return _budget


def _forget_after_fork() -> None:
    global _budget, _budget_lock, _day_counts_lock
    _budget = None
    _budget_lock = threading.Lock()
    _day_counts_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def reset_budget() -> None:
    global _budget
    with _budget_lock:
        _budget = None
