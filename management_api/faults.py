"""Fault injection for testing clients (off unless ``MANAGEMENT_API_FAULTS`` is set).

Format: comma-separated ``NAME=PROBABILITY[:PARAM]`` entries, read from settings on every
request (so tests can toggle them), e.g.::

    MANAGEMENT_API_FAULTS="429=0.1:2,503=0.05,500=0.02,latency=0.2:0.05,drop=0.05,drop_after=0.1"

- ``429=P[:S]``        answer 429 with ``Retry-After: S`` (default 1 second);
- ``500=P``, ``503=P`` answer that status (503 also carries ``Retry-After: 1``);
- ``drop=P``           close the connection without answering; nothing is written;
- ``drop_after=P``     run the request (a write is committed) and then close the connection
                       without answering — the ambiguous failure a client must survive;
- ``latency=P:S``      sleep S seconds (float) first; independent of the others.

One draw of ``random.random()`` chooses among 429/500/503/drop/drop_after, in that order, by
their cumulative probabilities (their sum must not exceed 1). Faults apply after
authentication and before rate limiting and the handler, so a faulted request (other than
``drop_after``) changes nothing. An invalid value makes every API request answer 500 with a
message naming the problem: a typo must not silently turn faults off.
"""

import random
import socket
import time
from dataclasses import dataclass, field

from django.conf import settings

from .errors import ApiError

OUTCOMES = ("429", "500", "503", "drop", "drop_after")


@dataclass(frozen=True)
class FaultPlan:
    outcomes: list[tuple[str, float, float | None]] = field(default_factory=list)
    latency_probability: float = 0.0
    latency_seconds: float = 0.0


class FaultConfigError(ValueError):
    pass


_cache: dict[str, FaultPlan] = {}


def parse_faults(text: str) -> FaultPlan:
    if text in _cache:
        return _cache[text]
    outcomes: list[tuple[str, float, float | None]] = []
    latency_probability = latency_seconds = 0.0
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = entry.partition("=")
        name = name.strip().lower()
        if not sep:
            raise FaultConfigError(f"{entry!r} is not NAME=PROBABILITY[:PARAM]")
        probability_text, _, param_text = value.partition(":")
        try:
            probability = float(probability_text)
            param = float(param_text) if param_text else None
        except ValueError:
            raise FaultConfigError(f"{entry!r}: probability and parameter must be numbers") from None
        if not 0 <= probability <= 1:
            raise FaultConfigError(f"{entry!r}: probability must be between 0 and 1")
        if param is not None and param < 0:
            raise FaultConfigError(f"{entry!r}: parameter must not be negative")
        if name == "latency":
            if param is None:
                raise FaultConfigError(f"{entry!r}: latency needs seconds, e.g. latency=0.2:0.05")
            latency_probability, latency_seconds = probability, param
        elif name in OUTCOMES:
            outcomes.append((name, probability, param))
        else:
            raise FaultConfigError(f"{entry!r}: unknown fault {name!r} (known: {', '.join(OUTCOMES)}, latency)")
    if sum(p for _, p, _ in outcomes) > 1 + 1e-9:
        raise FaultConfigError("the probabilities of 429/500/503/drop/drop_after add up to more than 1")
    plan = FaultPlan(outcomes, latency_probability, latency_seconds)
    _cache[text] = plan
    return plan


def current_plan() -> FaultPlan | None:
    text = (getattr(settings, "MANAGEMENT_API_FAULTS", "") or "").strip()
    if not text:
        return None
    try:
        return parse_faults(text)
    except FaultConfigError as exc:
        raise ApiError(500, f"MANAGEMENT_API_FAULTS is invalid: {exc}") from None


def choose_fault() -> tuple[str, float | None] | None:
    """Apply latency; return the outcome to inject (or None). Raises ApiError for statuses."""
    plan = current_plan()
    if plan is None:
        return None
    if plan.latency_probability and random.random() < plan.latency_probability:
        time.sleep(plan.latency_seconds)
    draw = random.random()
    threshold = 0.0
    for name, probability, param in plan.outcomes:
        threshold += probability
        if probability and draw < threshold:
            if name == "429":
                retry_after = str(int(param) if param is not None and float(param).is_integer() else (param or 1))
                raise ApiError(429, "injected fault: rate limit exceeded", headers={"Retry-After": retry_after})
            if name == "503":
                raise ApiError(503, "injected fault: service unavailable", headers={"Retry-After": "1"})
            if name == "500":
                raise ApiError(500, "injected fault: internal server error")
            return name, param
    return None


def _find_socket(obj, depth: int = 0):
    if isinstance(obj, socket.socket):
        return obj
    if obj is None or depth > 6:
        return None
    for attribute in ("_sock", "raw", "stream", "_stream", "rfile", "_rfile", "connection", "sock"):
        found = _find_socket(getattr(obj, attribute, None), depth + 1)
        if found is not None:
            return found
    # Django's LimitedStream keeps only the wrapped stream's bound read method.
    bound_read = getattr(obj, "_read", None)
    return _find_socket(getattr(bound_read, "__self__", None), depth + 1)


def drop_connection(request) -> None:
    """Shut the client's socket down so it sees the connection close with no response.

    Works under Django's runserver/live server (the socket sits under ``wsgi.input``) and
    gunicorn (``gunicorn.socket``)."""
    environ = request.environ
    sock = environ.get("gunicorn.socket") or _find_socket(environ.get("wsgi.input")) or _find_socket(request)
    if sock is None:
        raise ApiError(500, "injected fault: drop requested but the connection's socket is not reachable")
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
