import io

import pytest
from django.core.management import CommandError, call_command

from management_api.models import ApiKey, Project

from .conftest import Api


def test_missing_or_wrong_key_is_401(anonymous_api, live_server, experiment_id):
    assert anonymous_api.get("/experiments").status_code == 401
    with Api(live_server.url, "mapi_not-a-real-key") as wrong_key:
        assert wrong_key.get("/experiments").status_code == 401
    wrong_scheme = anonymous_api.get("/experiments", headers={"Authorization": "Basic abc"})
    assert wrong_scheme.status_code == 401
    assert wrong_scheme.json()["error"]


def test_key_without_access_to_the_project_is_403_on_reads_and_writes(other_api, experiment_id):
    assert other_api.get(f"/experiments/{experiment_id}").status_code == 403
    assert other_api.patch(f"/experiments/{experiment_id}", {"name": "x"}).status_code == 403
    assert other_api.post(f"/experiments/{experiment_id}/variants/control/users", {"inclusions": ["a"]}).status_code == 403
    assert other_api.post("/experiments", {"projectId": "100001", "key": "sneaky"}).status_code == 403


def test_keys_are_stored_hashed(api_key):
    stored = ApiKey.objects.get()
    assert api_key not in (stored.key_hash, stored.prefix)
    assert len(stored.key_hash) == 64


def test_create_api_key_prints_the_key_on_the_last_line_and_it_works(live_server, transactional_db):
    out = io.StringIO()
    call_command("create_api_key", "portal", "--project", "300003", "--project", "300004", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    assert Project.objects.filter(id__in=["300003", "300004"]).count() == 2
    with Api(live_server.url, key) as api:
        response = api.post("/experiments", {"projectId": "300004", "key": "from-cli"})
        assert response.status_code == 200
        assert api.get(f"/experiments/{response.json()['id']}").json()["createdBy"] == "portal"


def test_create_api_key_needs_a_project(transactional_db):
    with pytest.raises(CommandError):
        call_command("create_api_key", "portal", stdout=io.StringIO())


def test_revoked_key_is_401_by_name_and_by_prefix(live_server, transactional_db):
    keys = []
    for name in ("first", "second"):
        out = io.StringIO()
        call_command("create_api_key", name, "--project", "100001", stdout=out)
        keys.append(out.getvalue().strip().splitlines()[-1])
    with Api(live_server.url, keys[0]) as first, Api(live_server.url, keys[1]) as second:
        assert first.get("/experiments").status_code == 200
        call_command("revoke_api_key", "first", stdout=io.StringIO())
        assert first.get("/experiments").status_code == 401
        assert second.get("/experiments").status_code == 200
        call_command("revoke_api_key", keys[1][:12], stdout=io.StringIO())
        assert second.get("/experiments").status_code == 401
    with pytest.raises(CommandError):
        call_command("revoke_api_key", "nobody", stdout=io.StringIO())
