"""What /healthz reports: can we reach the database, the broker and the upstream?"""

import time

from django.db import connection

from experiments_app import gateway

from portal.celery import app as celery_app


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # a health check reports every failure instead of raising it
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return {"ok": ok, "detail": detail, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _broker() -> str:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return conn.transport_cls if isinstance(conn.transport_cls, str) else conn.transport.driver_name


def _upstream() -> str:
    status = gateway.get_client().check()
    if not status.ok:
        raise RuntimeError(status.detail)
    return status.detail


def health_report() -> dict:
    checks = {"database": _timed(_database), "broker": _timed(_broker), "upstream": _timed(_upstream)}
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}
