import os
import subprocess
import sys
from pathlib import Path

from management_api.openapi import PATHS

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)


def test_openapi_describes_all_19_experiment_operations_and_deployments(api):
    schema = api.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    operations = [(method, path) for path, methods in schema["paths"].items() for method in methods]
    experiment_operations = [op for op in operations if op[1].startswith("/api/1/experiments")]
    assert len(experiment_operations) == 19
    assert ("patch", "/api/1/deployments/{id}") in operations


def test_docs_page_lists_every_operation_under_a_strict_csp(anonymous_api):
    response = anonymous_api.get("/docs")
    assert response.status_code == 200
    for path, methods in PATHS.items():
        for method in methods:
            assert f"{method.upper()} {path}" in response.text
    csp = response.headers["Content-Security-Policy"]
    script_src = next(part for part in csp.split(";") if part.strip().startswith("script-src")).split()[1:]
    assert script_src[0] == "'self'" and all(s == "'self'" or s.startswith("'nonce-") for s in script_src)
    assert "<script src=\"http" not in response.text


def test_schemathesis_finds_no_server_errors_or_schema_violations(api, experiment_id, deployment_id, api_key, live_server, tmp_path):
    api.post(f"/experiments/{experiment_id}/variants/control/users", {"inclusions": ["u1", "u2"]})
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{live_server.url}/api/1/openapi.json",
            "--header",
            f"Authorization: Bearer {api_key}",
            "--checks",
            CHECKS,
            "--max-examples",
            "8",
            # One worker: the SQLite test database is in-memory with a shared cache, where
            # concurrent writers fail with "table is locked" instead of waiting.
            "--workers",
            "1",
            "--seed",
            "20261128",
            "--no-shrink",
            "--phases",
            "examples,coverage,fuzzing",
            "--request-timeout",
            "10",
            "--suppress-health-check",
            "all",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
