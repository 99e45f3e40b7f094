"""Benchmark of the audit history: server-side render time of filtered audit pages over
1,000,000 entries (PostgreSQL) and the memory an export takes while it streams.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/audit.py
    .venv/bin/python bench/audit.py            # SQLite: 100,000 entries

With DATABASE_URL set, a ``test_audit_bench`` database is created beside that one and dropped
afterwards; without it, a throwaway SQLite file. The 1,000,000-entry figure needs PostgreSQL.
"""

import os
import resource
import time
import tracemalloc

from _setup import median_get_ms, throwaway_database  # noqa: E402 - sets Django up first

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from experiments_app.audit import actions  # noqa: E402
from experiments_app.audit.selectors import AuditFilters, audit_page  # noqa: E402

ROUNDS = 25
GOAL_MS = 100
EXPERIMENTS = 200
ACTORS = 50
DAYS = 365


def fill_postgresql(count: int) -> None:
    """`count` entries in one INSERT … SELECT generate_series: spread over a year, 200
    experiments, 50 actors, every action; chained-looking hash columns. The secondary indexes
    are dropped for the load and built again after it (much faster than maintaining them)."""
    action_list = "ARRAY[" + ",".join(f"'{a}'" for a in actions.ALL) + "]"
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_auditentry' "
                       "AND indexdef NOT LIKE 'CREATE UNIQUE%%'")
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(f"""
            INSERT INTO audit_auditentry (created_at, action, actor_label, actor_user_id, experiment_id,
                experiment_key, change_request_id, bulk_job_id, before, after, reason, correlation_id,
                upstream_calls, upstream_version_before, upstream_version_after, detail, seal,
                sequence, content_hash, chain_hash, processed_at)
            SELECT now() - make_interval(secs => ({DAYS} * 86400.0) * (%(n)s - i) / %(n)s),
                   ({action_list})[1 + i %% {len(actions.ALL)}],
                   'user-' || (i / 3 %% {ACTORS}), NULL,
                   'exp-' || (i %% {EXPERIMENTS}), 'experiment-key-' || (i %% {EXPERIMENTS}),
                   i / 3, NULL,
                   jsonb_build_object('rolloutPercentage', i %% 100),
                   jsonb_build_object('rolloutPercentage', (i + 10) %% 100),
                   'ramp ' || (i %% 100) || '%% because of ticket OPS-' || i,
                   'cr-' || (i / 3),
                   '[]'::jsonb, i %% 50, i %% 50 + 1,
                   jsonb_build_object('note', 'bench entry ' || i),
                   md5(i::text) || md5((i + 1)::text), i, md5(i::text) || md5(i::text),
                   md5((i + 2)::text) || md5(i::text), now()
            FROM generate_series(1, %(n)s) AS i
        """, {"n": count})
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute("ANALYZE audit_auditentry")


def fill_sqlite(count: int) -> None:
    action_list = ",".join(f"('{a}', {n})" for n, a in enumerate(actions.ALL))
    with connection.cursor() as cursor:
        cursor.execute(f"""
            WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < %s),
                 act(name, n) AS (VALUES {action_list})
            INSERT INTO audit_auditentry (created_at, action, actor_label, actor_user_id, experiment_id,
                experiment_key, change_request_id, bulk_job_id, before, after, reason, correlation_id,
                upstream_calls, upstream_version_before, upstream_version_after, detail, seal,
                sequence, content_hash, chain_hash, processed_at)
            SELECT strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || ({DAYS} * 86400.0 * (%s - i) / %s) || ' seconds'),
                   (SELECT name FROM act WHERE n = i %% {len(actions.ALL)}),
                   'user-' || (i / 3 %% {ACTORS}), NULL,
                   'exp-' || (i %% {EXPERIMENTS}), 'experiment-key-' || (i %% {EXPERIMENTS}), i / 3, NULL,
                   json_object('rolloutPercentage', i %% 100), json_object('rolloutPercentage', (i + 10) %% 100),
                   'ramp ' || (i %% 100) || '%% because of ticket OPS-' || i, 'cr-' || (i / 3),
                   '[]', i %% 50, i %% 50 + 1, json_object('note', 'bench entry ' || i),
                   printf('%%064d', i), i, printf('%%064d', i), printf('%%064d', i), CURRENT_TIMESTAMP
            FROM seq
        """, [count, count, count])
        cursor.execute("ANALYZE")


def export_memory(client: Client, url: str) -> tuple[int, float, float]:
    """Rows streamed, tracemalloc peak (MiB) and growth of the process's peak RSS (MiB) while
    streaming the whole export."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    lines = sum(chunk.count(b"\n") for chunk in client.get(url).streaming_content)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return lines, peak / 2**20, rss_after - rss_before


def export_rate(client: Client, url: str) -> float:
    started = time.perf_counter()
    lines = sum(chunk.count(b"\n") for chunk in client.get(url).streaming_content)
    return lines / (time.perf_counter() - started)


def run(count: int) -> None:
    from experiments_app.users import user_create

    started = time.perf_counter()
    (fill_postgresql if connection.vendor == "postgresql" else fill_sqlite)(count)
    print(f"Inserted {count:,} entries in {time.perf_counter() - started:.1f} s")

    viewer = user_create(username="bench-viewer", role="Viewer", password="x", validate=False)
    client = Client()
    client.force_login(viewer)
    deep_cursor = None
    for _ in range(20):  # 20 pages in
        deep_cursor = audit_page(filters=AuditFilters(action=actions.CHANGE_REQUEST_APPROVED),
                                 cursor=deep_cursor).next_cursor
    pages = [
        ("no filter, first page", "/audit/", {}),
        ("experiment (key)", "/audit/?experiment=experiment-key-42", {}),
        ("experiment + action", f"/audit/?experiment=exp-42&action={actions.CHANGE_REQUEST_APPLIED}", {}),
        ("actor + action", f"/audit/?actor=user-7&action={actions.BULK_JOB_QUEUED}", {}),
        ("date range (one week)", "/audit/?date_from=2026-03-01&date_to=2026-03-07", {}),
        ("free text (common word)", "/audit/?q=ramp", {}),
        ("free text (one entry)", f"/audit/?q=OPS-{count // 2}", {}),
        ("action, 21 pages deep (cursor)", f"/audit/?action={actions.CHANGE_REQUEST_APPROVED}&cursor={deep_cursor}", {}),
        ("htmx results fragment (actor)", "/audit/?actor=user-3", {"HX-Request": "true"}),
    ]
    print()
    print(f"Audit page — {connection.vendor}, {count:,} entries, server-side medians of {ROUNDS} requests")
    print(f"{'page':<40} {'median':>10}  {'goal':>9}  ok")
    print("-" * 68)
    for name, url, headers in pages:
        value = median_get_ms(client, url, ROUNDS, **headers)
        print(f"{name:<40} {value:>7.1f} ms  {'< ' + str(GOAL_MS) + ' ms':>9}  {'yes' if value < GOAL_MS else 'NO'}")

    print()
    print("Export memory while streaming (flat: the peak does not grow with the number of rows)")
    print(f"{'export':<40} {'rows':>10} {'py peak':>10} {'RSS growth':>11}")
    print("-" * 76)
    for name, url in [
        ("JSON Lines, one experiment", "/audit/export.jsonl?experiment=exp-7"),
        ("JSON Lines, one action", f"/audit/export.jsonl?action={actions.CHANGE_REQUEST_CREATED}"),
        ("CSV, one action", f"/audit/export.csv?action={actions.CHANGE_REQUEST_CREATED}"),
        ("JSON Lines, everything", "/audit/export.jsonl"),
    ]:
        lines, peak, rss = export_memory(client, url)
        rows = lines - (1 if url.startswith("/audit/export.csv") else 0)
        print(f"{name:<40} {rows:>10,} {peak:>6.1f} MiB {rss:>7.1f} MiB")
    rate = export_rate(client, f"/audit/export.jsonl?action={actions.CHANGE_REQUEST_CREATED}")
    print(f"Export speed without memory tracing: {rate:,.0f} rows/s (JSON Lines, one action)")


def main() -> None:
    settings.ALLOWED_HOSTS = ["*"]
    settings.DEBUG = False
    postgres = connection.vendor == "postgresql"
    count = int(os.environ.get("AUDIT_BENCH_ENTRIES", 1_000_000 if postgres else 100_000))
    if not postgres:
        print("The 1,000,000-entry figure needs PostgreSQL (set DATABASE_URL); running with "
              f"{count:,} entries on SQLite.")
    with throwaway_database("test_audit_bench"):
        run(count)


if __name__ == "__main__":
    main()
