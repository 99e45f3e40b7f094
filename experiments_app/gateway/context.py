"""Correlation ids and call recording for upstream calls.

``with correlation("cr-123"):`` tags every upstream call made inside the block (in this
thread or task) with that id; without one, each gateway operation gets a generated id so its
retries and read-backs still group together. ``with recording() as calls:`` collects a
:class:`CallRecord` for every upstream HTTP attempt made inside the block, for the audit trail.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

_correlation_id: ContextVar[str | None] = ContextVar("gateway_correlation_id", default=None)
_recorders: ContextVar[tuple[list, ...]] = ContextVar("gateway_recorders", default=())


@dataclass(frozen=True, slots=True)
class CallRecord:
    method: str
    path: str
    status: int | None  # None when no response came back (timeout, dropped connection)
    latency_ms: float
    attempt: int
    correlation_id: str
    error: str | None = None  # the transport failure's kind, e.g. "ReadTimeout"


def new_correlation_id() -> str:
    return f"gw-{uuid.uuid4().hex[:16]}"


def current_correlation_id() -> str | None:
    return _correlation_id.get()


@contextmanager
def correlation(correlation_id: str | None = None) -> Iterator[str]:
    """Tag the upstream calls made inside the block with ``correlation_id`` (generated if None)."""
    cid = str(correlation_id) if correlation_id else new_correlation_id()
    token = _correlation_id.set(cid)
    try:
        yield cid
    finally:
        _correlation_id.reset(token)


@contextmanager
def ensure_correlation() -> Iterator[str]:
    """Keep the caller's correlation id, or open a fresh one for this operation."""
    cid = _correlation_id.get()
    if cid:
        yield cid
    else:
        with correlation() as cid:
            yield cid


@contextmanager
def recording() -> Iterator[list[CallRecord]]:
    """Collect the CallRecords of every upstream attempt made inside the block."""
    calls: list[CallRecord] = []
    token = _recorders.set(_recorders.get() + (calls,))
    try:
        yield calls
    finally:
        _recorders.reset(token)


def emit(record: CallRecord) -> None:
    for calls in _recorders.get():
        calls.append(record)
