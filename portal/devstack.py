"""`make run`: the web server, a Celery worker and beat side by side; Ctrl-C stops all three."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

from experiments_app.demo import DEMO_USERS


def _spawn(name: str, args: list[str]) -> subprocess.Popen:
    print(f"[devstack] starting {name}: {' '.join(args)}", flush=True)
    # A process group of its own, so Ctrl-C in the terminal reaches us first and we stop them in order.
    return subprocess.Popen(args, start_new_session=True)


def _wait_until_up(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def main() -> int:
    port = os.environ.get("PORT", "8000")
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "portal"]
    processes = {
        # gunicorn with threads: the portal calls the embedded API on this same server, so it
        # must answer several requests at once; static files come from WhiteNoise.
        "web": _spawn("web", [python, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}",
                              "--worker-class", "gthread", "--workers", "2", "--threads", "8",
                              "--access-logfile", "-", "--graceful-timeout", "5"]),
        "worker": _spawn("worker", [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"]),
        "beat": _spawn("beat", [*celery, "beat", "--loglevel", "INFO"]),
    }
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    url = f"http://127.0.0.1:{port}/"
    if _wait_until_up(f"{url}login/", 60):
        # Something to review on a fresh demo: needs the embedded API up; once only, never upstream.
        subprocess.run([python, "manage.py", "seed_demo_reviews"], check=False)
        print("\n" + "=" * 64)
        print(f"  Experiment Portal is running at {url}")
        print("  Demo logins (username / password):")
        for username, role, password in DEMO_USERS:
            print(f"    {username:<10} {password:<22} {role}")
        print(f"  Embedded Management API: {url}api/1/ (docs: {url}api/1/docs)")
        print("  Press Ctrl-C to stop the web server, the worker and beat.")
        print("=" * 64 + "\n", flush=True)
    else:
        print("[devstack] the web server did not answer within 60 s", flush=True)
        stopping = True

    exit_code = 0
    while not stopping:
        for name, proc in processes.items():
            if proc.poll() is not None:
                print(f"[devstack] {name} exited with {proc.returncode}; stopping the rest", flush=True)
                exit_code = proc.returncode or 1
                stopping = True
        time.sleep(0.5)

    for proc in processes.values():
        if proc.poll() is None:
            proc.terminate()  # the leader only: Celery then stops its own pool (warm shutdown)
    deadline = time.monotonic() + 15
    for name, proc in processes.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[devstack] {name} did not stop in time; killing it", flush=True)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print("[devstack] stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
