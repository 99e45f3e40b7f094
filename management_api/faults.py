"""Fault injection for testing clients (off unless ``MANAGEMENT_API_FAULTS`` is set).

Format: comma-separated ``NAME=PROBABILITY[:PARAM][@SCOPE]`` entries, read from settings on
every request (so tests can toggle them), e.g.::

    MANAGEMENT_API_FAULTS="429=0.1:2,503=0.05,500=0.02,latency=0.2:0.05,drop=0.05,drop_after=0.1@write"

- ``429=P[:S]``        answer 429 with ``Retry-After: S`` (default 1 second);
- ``500=P``, ``503=P`` answer that status (503 also carries ``Retry-After: 1``);
- ``drop=P``           close the connection without answering; nothing is written;
- ``drop_after=P``     run the request (a write is committed) and then close the connection
                       without answering — the ambiguous failure a client must survive;
- ``latency=P:S``      sleep S seconds (float) first; independent of the others;
- ``@read`` / ``@write`` (optional) limits an entry to GET requests / to every other method;
- ``seed=N``           draw from a dedicated ``random.Random(N)``, restarted whenever the setting
                       changes, so a test making the same requests sees the same faults.

One draw chooses among the entries that apply to the request (429/500/503/drop/drop_after, in
the order written) by their cumulative probabilities; those of one scope must not add up to
more than 1. Faults apply after authentication and before rate limiting and the handler, so a
faulted request (other than ``drop_after``) changes nothing. An invalid value makes every API
request answer 500 with a message naming the problem: a typo must not silently turn faults off.
"""

import random
import socket
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings

from .errors import ApiError

OUTCOMES = ("429", "500", "503", "drop", "drop_after")
SCOPES = ("all", "read", "write")


@dataclass(frozen=True)
class Fault:
    name: str
    probability: float
    param: float | None = None
    scope: str = "all"

    def applies_to(self, method: str) -> bool:
        return self.scope == "all" or (self.scope == "read") == (method in ("GET", "HEAD"))


@dataclass(frozen=True)
class FaultPlan:
    outcomes: list[Fault] = field(default_factory=list)
    latency: Fault | None = None
    seed: int | None = None


class FaultConfigError(ValueError):
    pass


_lock = threading.Lock()
_state: dict = {"text": None, "plan": None, "rng": random}


def parse_faults(text: str) -> FaultPlan:
    outcomes: list[Fault] = []
    latency = None
    seed = None
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = entry.partition("=")
        name = name.strip().lower()
        if not sep:
            raise FaultConfigError(f"{entry!r} is not NAME=PROBABILITY[:PARAM][@read|@write]")
        if name == "seed":
            try:
                seed = int(value)
            except ValueError:
                raise FaultConfigError(f"{entry!r}: seed must be an integer") from None
            continue
        value, _, scope = value.partition("@")
        scope = scope.strip().lower() or "all"
        if scope not in SCOPES:
            raise FaultConfigError(f"{entry!r}: scope must be @read or @write")
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
            latency = Fault(name, probability, param, scope)
        elif name in OUTCOMES:
            outcomes.append(Fault(name, probability, param, scope))
        else:
            raise FaultConfigError(f"{entry!r}: unknown fault {name!r} (known: {', '.join(OUTCOMES)}, latency, seed)")
    for method in ("GET", "POST"):
        if sum(f.probability for f in outcomes if f.applies_to(method)) > 1 + 1e-9:
            raise FaultConfigError("the probabilities of 429/500/503/drop/drop_after add up to more than 1")
    return FaultPlan(outcomes, latency, seed)


def _plan_and_rng():
    text = (getattr(settings, "MANAGEMENT_API_FAULTS", "") or "").strip()
    with _lock:
        if text != _state["text"]:
            _state["text"] = text
            _state["plan"] = _state["rng"] = None
            try:
                plan = parse_faults(text) if text else None
            except FaultConfigError as exc:
                _state["plan"] = exc
            else:
                _state["plan"] = plan
                _state["rng"] = random.Random(plan.seed) if plan and plan.seed is not None else random
        plan, rng = _state["plan"], _state["rng"]
    if isinstance(plan, FaultConfigError):
        raise ApiError(500, f"MANAGEMENT_API_FAULTS is invalid: {plan}")
    return plan, rng


def choose_fault(method: str = "GET") -> tuple[str, float | None] | None:
    """Apply latency; return the outcome to inject (or None). Raises ApiError for statuses."""
    plan, rng = _plan_and_rng()
    if plan is None:
        return None
    with _lock:
        slow = plan.latency is not None and plan.latency.applies_to(method) and rng.random() < plan.latency.probability
        draw = rng.random()
    if slow:
        time.sleep(plan.latency.param)
    threshold = 0.0
    for fault in plan.outcomes:
        if not fault.applies_to(method):
            continue
        threshold += fault.probability
        if fault.probability and draw < threshold:
            if fault.name == "429":
                seconds = fault.param if fault.param is not None else 1
                retry_after = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
                raise ApiError(429, "injected fault: rate limit exceeded", headers={"Retry-After": retry_after})
            if fault.name == "503":
                raise ApiError(503, "injected fault: service unavailable", headers={"Retry-After": "1"})
            if fault.name == "500":
                raise ApiError(500, "injected fault: internal server error")
            return fault.name, fault.param
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
