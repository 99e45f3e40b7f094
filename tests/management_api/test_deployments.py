from management_api.models import Version

from .conftest import OTHER_PROJECT_ID, PROJECT_ID


def test_create_list_and_edit_deployments(api):
    created = api.post("/deployments", {"projectId": PROJECT_ID, "label": "backend", "type": "server"})
    assert created.status_code == 200
    deployment_id = created.json()["id"]
    assert isinstance(deployment_id, str)
    listed = api.get("/deployments").json()
    assert listed["deployments"] == [
        {"id": deployment_id, "projectId": PROJECT_ID, "label": "backend", "key": listed["deployments"][0]["key"], "deleted": False}
    ]
    assert listed["deployments"][0]["key"].startswith("server-")
    assert api.patch(f"/deployments/{deployment_id}", {"label": "backend-eu", "archive": True}).text == "OK"
    assert api.get("/deployments").json()["deployments"][0] | {"key": None} == {
        "id": deployment_id, "projectId": PROJECT_ID, "label": "backend-eu", "key": None, "deleted": True
    }


def test_deployment_input_is_validated(api, deployment_id):
    cases = [
        ({"projectId": PROJECT_ID, "label": "has space", "type": "client"}, "label"),
        ({"projectId": PROJECT_ID, "label": "web-client", "type": "client"}, "label"),
        ({"projectId": PROJECT_ID, "label": "ok", "type": "edge"}, "type"),
        ({"label": "ok", "type": "client"}, "projectId"),
    ]
    for body, field in cases:
        response = api.post("/deployments", body)
        assert response.status_code == 400
        assert response.json()["field"] == field
    assert api.post("/deployments", {"projectId": OTHER_PROJECT_ID, "label": "x", "type": "client"}).status_code == 403
    assert api.patch("/deployments/999999", {"label": "x"}).status_code == 404


def test_add_list_and_remove_deployments_of_an_experiment(api, experiment_id, deployment_id):
    response = api.post(f"/experiments/{experiment_id}/deployments", {"deployments": [deployment_id]})
    assert response.status_code == 200 and response.text == "OK"
    listed = api.get(f"/experiments/{experiment_id}/deployments").json()
    assert [d["id"] for d in listed] == [deployment_id]
    assert set(listed[0]) == {"id", "projectId", "label", "key", "deleted"}
    assert api.get(f"/experiments/{experiment_id}").json()["deployments"] == [deployment_id]
    assert api.delete(f"/experiments/{experiment_id}/deployments/{deployment_id}").text == "OK"
    assert api.get(f"/experiments/{experiment_id}/deployments").json() == []
    assert api.delete(f"/experiments/{experiment_id}/deployments/{deployment_id}").status_code == 404


def test_adding_an_unknown_or_foreign_deployment_is_rejected_and_writes_nothing(api, other_api, experiment_id):
    foreign = other_api.post("/deployments", {"projectId": OTHER_PROJECT_ID, "label": "theirs", "type": "client"}).json()["id"]
    versions = Version.objects.count()
    unknown = api.post(f"/experiments/{experiment_id}/deployments", {"deployments": ["999999"]})
    assert unknown.status_code == 404 and unknown.json()["field"] == "deployments[0]"
    foreign_response = api.post(f"/experiments/{experiment_id}/deployments", {"deployments": [foreign]})
    assert foreign_response.status_code == 400 and foreign_response.json()["field"] == "deployments[0]"
    wrong_type = api.post(f"/experiments/{experiment_id}/deployments", {"deployments": "1"})
    assert wrong_type.status_code == 400 and wrong_type.json()["field"] == "deployments"
    assert Version.objects.count() == versions


def test_add_deployment_like_the_seed_curl_without_a_content_type(api, experiment_id, deployment_id):
    response = api.request(
        "POST",
        f"/experiments/{experiment_id}/deployments",
        data=f'{{"deployments":["{deployment_id}"]}}',
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200 and response.text == "OK"
    assert api.get(f"/experiments/{experiment_id}").json()["deployments"] == [deployment_id]


def test_archived_deployment_cannot_be_added_to_an_experiment(api, experiment_id, deployment_id):
    api.patch(f"/deployments/{deployment_id}", {"archive": True})
    response = api.post(f"/experiments/{experiment_id}/deployments", {"deployments": [deployment_id]})
    assert response.status_code == 400
    assert response.json()["field"] == "deployments[0]"
