"""A separate worker process for the shared-budget test: builds its own gateway client from
settings (environment) and calls the upstream as fast as its budget lets it.

    python tests/gateway/hammer_worker.py '{"calls": 300, "threads": 6, "start_at": ..., "prefix": ...}'

Prints one JSON line: the statuses it saw (every attempt, retries included) and its timings.
"""

import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")


def main() -> None:
    import django

    django.setup()
    from django.conf import settings

    from experiments_app import gateway

    options = json.loads(sys.argv[1])
    settings.UPSTREAM_BUDGET_KEY_PREFIX = options["prefix"]
    client = gateway.get_client()
    remaining = [options["calls"]]
    lock = threading.Lock()
    statuses: Counter = Counter()
    errors: Counter = Counter()

    def work() -> None:
        with gateway.correlation(f"hammer-{os.getpid()}"), gateway.recording() as calls:
            while True:
                with lock:
                    if remaining[0] == 0:
                        break
                    remaining[0] -= 1
                try:
                    client.list_experiments(limit=1)
                except gateway.UpstreamError as exc:
                    with lock:
                        errors[type(exc).__name__] += 1
        with lock:
            statuses.update(str(c.status) for c in calls)

    threads = [threading.Thread(target=work) for _ in range(options["threads"])]
    time.sleep(max(0.0, options["start_at"] - time.time()))
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"statuses": statuses, "errors": errors, "started": started, "finished": time.time(),
                      "budget_shared": client.budget.shared}))


if __name__ == "__main__":
    main()
