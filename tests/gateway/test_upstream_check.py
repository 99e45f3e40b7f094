"""``manage.py upstream_check``: where the upstream is, whether the key works, budget left."""

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from experiments_app import gateway

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"


def _run(**kwargs) -> str:
    out = io.StringIO()
    call_command("upstream_check", stdout=out, **kwargs)
    return out.getvalue()


def test_upstream_check_reports_the_upstream_projects_deployments_and_budget_but_not_the_key(gateway_client,
                                                                                              upstream):
    deployment = gateway_client.create_deployment(label="web-prod")

    output = _run()

    assert upstream.base_url in output
    assert "OK" in output and upstream.project_id in output
    assert deployment.id in output and "web-prod" in output
    assert f"budget remaining:  {gateway.budget_remaining()} of 100000" in output
    assert upstream.api_key not in output and upstream.api_key[:12] not in output


def test_upstream_check_fails_when_the_key_is_rejected(upstream, settings):
    settings.UPSTREAM_API_KEY = "mapi_revoked-or-wrong"

    with pytest.raises(CommandError, match="rejected"):
        _run()


def test_upstream_check_exits_non_zero_when_the_upstream_is_down(upstream):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {**os.environ, "UPSTREAM_BASE_URL": closed, "UPSTREAM_API_KEY": upstream.api_key, "REDIS_URL": ""}

    result = subprocess.run([sys.executable, str(MANAGE), "upstream_check", "--timeout", "0.5"], env=env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    assert closed in result.stdout and "FAILING" in result.stdout
    assert upstream.api_key not in result.stdout + result.stderr


def test_upstream_check_fails_without_calling_when_no_key_is_configured(upstream, settings):
    settings.UPSTREAM_API_KEY = ""

    with gateway.recording() as calls, pytest.raises(CommandError, match="no management API key"):
        _run()

    assert calls == []
