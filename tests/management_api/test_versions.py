from management_api.models import Version


def versions(api, experiment_id):
    return api.get(f"/experiments/{experiment_id}/versions").json()


def test_every_successful_write_records_exactly_one_version_with_who_and_when(api, experiment_id, deployment_id):
    base = f"/experiments/{experiment_id}"
    writes = [
        ("PATCH", base, {"enabled": True, "rolloutPercentage": 10}),
        ("POST", base + "/variants", {"key": "v3"}),
        ("PATCH", base + "/variants/v3", {"name": "Third"}),
        ("POST", base + "/variants/v3/users", {"inclusions": ["a", "b", "c"]}),
        ("DELETE", base + "/variants/v3/users/0", None),
        ("DELETE", base + "/variants/v3/bulk-delete-users", {"users": ["b"]}),
        ("DELETE", base + "/variants/v3/users", None),
        ("DELETE", base + "/variants/v3", None),
        ("POST", base + "/deployments", {"deployments": [deployment_id]}),
        ("DELETE", base + f"/deployments/{deployment_id}", None),
    ]
    assert [v["version"] for v in versions(api, experiment_id)] == [1]
    for count, (method, path, body) in enumerate(writes, start=2):
        response = api.request(method, path, body)
        assert response.status_code == 200, (method, path, response.text)
        listed = versions(api, experiment_id)
        assert [v["version"] for v in listed] == list(range(count, 0, -1)), (method, path)
        assert listed[0]["createdBy"] == "alice@example.com"
        assert listed[0]["createdAt"].endswith("Z")


def test_a_version_holds_the_full_flag_config_at_that_moment(api, experiment_id):
    api.patch(f"/experiments/{experiment_id}", {"rolloutPercentage": 25, "tags": ["q3"]})
    api.patch(f"/experiments/{experiment_id}", {"rolloutPercentage": 50})
    listed = versions(api, experiment_id)
    assert [v["flagConfig"]["rolloutPercentage"] for v in listed] == [50, 25, 0]
    config = api.get(f"/experiments/{experiment_id}/versions/2").json()["flagConfig"]
    assert config["id"] == experiment_id
    assert config["tags"] == ["q3"]
    for field in ("projectId", "deployments", "key", "name", "description", "enabled", "bucketingKey", "variants",
                  "rolloutWeights", "targetSegments", "stickyBucketing", "state", "startDate", "endDate", "experimentType"):
        assert field in config
    assert set(api.get(f"/experiments/{experiment_id}/versions/2").json()) == {"createdAt", "createdBy", "version", "flagConfig"}


def test_rejected_and_no_op_writes_record_no_version(api, experiment_id):
    base = f"/experiments/{experiment_id}"
    api.post(base + "/variants/control/users", {"inclusions": ["a"]})
    before = Version.objects.count()
    attempts = [
        ("PATCH", base, {"rolloutPercentage": 200}),
        ("PATCH", base, {}),
        ("POST", base + "/variants", {"key": "control"}),
        ("POST", base + "/variants/control/users", {"inclusions": ["a"]}),
        ("DELETE", base + "/variants/treatment/users", None),
        ("DELETE", base + "/variants/control/bulk-delete-users", {"users": ["zz"]}),
        ("DELETE", base + "/variants/control/users/5", None),
    ]
    for method, path, body in attempts:
        api.request(method, path, body)
    assert Version.objects.count() == before


def test_unknown_version_is_404(api, experiment_id):
    assert api.get(f"/experiments/{experiment_id}/versions/99").status_code == 404
    assert api.get(f"/experiments/{experiment_id}/versions/latest").status_code == 404


def test_concurrent_writes_get_distinct_consecutive_version_numbers(api, experiment_id):
    import concurrent.futures

    import pytest
    from django.db import connection

    if connection.vendor == "sqlite":
        pytest.skip("the SQLite test database is in-memory with a shared cache: writers fail instead of waiting")

    def write(n):
        from .conftest import Api

        with Api(api.base_url.removesuffix("/api/1"), api.session.headers["Authorization"].split()[1]) as client:
            return [
                client.patch(f"/experiments/{experiment_id}", {"description": f"writer {n} edit {i}"}).status_code
                for i in range(5)
            ]

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        statuses = [status for result in pool.map(write, range(6)) for status in result]
    assert statuses == [200] * 30
    assert [v["version"] for v in versions(api, experiment_id)] == list(range(31, 0, -1))
