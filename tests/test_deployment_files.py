import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_describes_the_production_like_stack_with_health_checks():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)
    for name in ("postgres", "redis", "web", "worker", "beat"):
        assert "healthcheck" in services[name], f"{name} has no health check"
    assert services["worker"]["command"][:4] == ["celery", "-A", "portal", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "portal", "beat"]
    web_env = services["web"]["environment"]
    assert web_env["DATABASE_URL"].startswith("postgres://")
    assert web_env["REDIS_URL"].startswith("redis://redis")
    assert "gunicorn" in (ROOT / "Dockerfile").read_text()


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="the docker compose client is not installed here",
)
def test_docker_compose_accepts_the_file():
    env = {"SECRET_KEY": "x" * 50, "UPSTREAM_API_KEY": "k", "UPSTREAM_PROJECT_ID": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(["docker", "compose", "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
