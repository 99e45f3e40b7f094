from management_api.models import Experiment, Version

from .conftest import PROJECT_ID

SEED_CREATE = {
    "projectId": PROJECT_ID,
    "name": "Analyze button clicks experiment",
    "key": "analyze-button-clicks-experiment",
    "description": "analyze button clicks on the main page",
    "variants": [{"key": "control"}, {"key": "treatment"}],
    "rolloutWeights": {"control": 1, "treatment": 1},
    "targetSegments": [
        {
            "name": "Segment 1",
            "conditions": [{"prop": "country", "op": "is", "type": "property", "values": ["United States"]}],
            "percentage": 0,
            "bucketingKey": "amplitude_id",
            "rolloutWeights": {"control": 1, "treatment": 1},
        }
    ],
    "evaluationMode": "remote",
    "experimentType": "no-harm",
}

SEED_EDIT = {
    "name": "updated name",
    "description": "updated description",
    "bucketingKey": "amplitude_id",
    "bucketingSalt": "Ab12Cd34",
    "evaluationMode": "remote",
    "rolloutPercentage": 0,
    "enabled": True,
    "experimentType": "no-harm",
    "stickyBucketing": False,
    "startDate": "2023-07-31T10:26:00.996Z",
    "endDate": "2023-09-23T10:26:00.996Z",
    "tags": ["prod", "staging"],
    "exposureEvent": {
        "event_type": "_active",
        "filters": [
            {
                "group_type": "User",
                "subprop_key": "amplitude_day_of_week",
                "subprop_op": "is",
                "subprop_type": "day_time_prop",
                "subprop_value": ["Tuesday"],
            }
        ],
    },
}


def test_create_with_the_seed_example_answers_id_and_url_and_get_shows_it(api, deployment_id):
    response = api.post("/experiments", {**SEED_CREATE, "deployments": [deployment_id]})
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["id"], str)
    assert body["url"] == f"https://experiment.example.test/{PROJECT_ID}/config/{body['id']}"

    experiment = api.get(f"/experiments/{body['id']}").json()
    assert experiment["id"] == body["id"]
    assert experiment["projectId"] == PROJECT_ID
    assert experiment["deployments"] == [deployment_id]
    assert experiment["key"] == "analyze-button-clicks-experiment"
    assert experiment["name"] == "Analyze button clicks experiment"
    assert experiment["variants"] == [{"key": "control"}, {"key": "treatment"}]
    assert experiment["targetSegments"] == SEED_CREATE["targetSegments"]
    assert experiment["experimentType"] == "no-harm"
    assert experiment["state"] == "planning"
    assert experiment["enabled"] is False
    assert experiment["decision"] is None and experiment["rolledOutVariant"] is None
    assert experiment["createdBy"] == "alice@example.com"
    assert experiment["createdAt"].endswith("Z")
    assert experiment["archived"] is False and experiment["deleted"] is False


def test_create_with_only_project_and_key_applies_the_defaults(api):
    response = api.post("/experiments", {"projectId": PROJECT_ID, "key": "minimal"})
    experiment = api.get(f"/experiments/{response.json()['id']}").json()
    assert experiment["enabled"] is False
    assert experiment["rolloutPercentage"] == 0
    assert experiment["evaluationMode"] == "remote"
    assert experiment["bucketingKey"] == "amplitude_id"
    assert experiment["bucketingUnit"] == "User"
    assert experiment["experimentType"] == "hypothesis-testing"
    assert experiment["variants"] == [{"key": "control"}, {"key": "treatment"}]
    assert experiment["rolloutWeights"] == {"control": 1, "treatment": 1}
    assert len(experiment["bucketingSalt"]) == 8
    assert experiment["tags"] == [] and experiment["targetSegments"] == []


def test_edit_with_every_seed_field_is_applied(api, experiment_id):
    response = api.patch(f"/experiments/{experiment_id}", SEED_EDIT)
    assert response.status_code == 200
    assert response.text == "OK"
    assert response.headers["Content-Type"].startswith("text/plain")
    experiment = api.get(f"/experiments/{experiment_id}").json()
    assert experiment["name"] == "updated name"
    assert experiment["description"] == "updated description"
    assert experiment["bucketingSalt"] == "Ab12Cd34"
    assert experiment["enabled"] is True
    assert experiment["state"] == "running"
    assert experiment["experimentType"] == "no-harm"
    assert experiment["startDate"] == "2023-07-31"
    assert experiment["endDate"] == "2023-09-23"
    assert experiment["tags"] == ["prod", "staging"]
    assert experiment["exposureEvent"] == SEED_EDIT["exposureEvent"]


def test_edit_target_segments_and_tags_replace_the_previous_ones(api, experiment_id):
    segment = {
        "name": "Segment 1",
        "conditions": [{"prop": "city", "op": "is", "type": "property", "values": ["San Francisco"]}],
        "percentage": 0,
        "bucketingKey": "amplitude_id",
        "rolloutWeights": {"control": 1, "treatment": 1},
    }
    api.patch(f"/experiments/{experiment_id}", {"targetSegments": [segment, {**segment, "name": "Segment 2"}], "tags": ["a", "b"]})
    api.patch(f"/experiments/{experiment_id}", {"targetSegments": [segment], "tags": ["c"]})
    experiment = api.get(f"/experiments/{experiment_id}").json()
    assert experiment["targetSegments"] == [segment]
    assert experiment["tags"] == ["c"]


def test_state_goes_planning_running_decision_made(api, experiment_id):
    assert api.get(f"/experiments/{experiment_id}").json()["state"] == "planning"
    api.patch(f"/experiments/{experiment_id}", {"enabled": True, "rolloutPercentage": 10})
    running = api.get(f"/experiments/{experiment_id}").json()
    assert running["state"] == "running"
    assert running["startDate"] is not None
    api.patch(f"/experiments/{experiment_id}", {"enabled": False})
    assert api.get(f"/experiments/{experiment_id}").json()["state"] == "decision-made"


def test_archived_experiment_leaves_the_default_list_but_stays_readable(api):
    kept = api.create_experiment("kept")
    archived = api.create_experiment("archived-one")
    assert api.patch(f"/experiments/{archived}", {"archive": True}).status_code == 200
    listed = [e["id"] for e in api.get("/experiments").json()["experiments"]]
    assert listed == [kept]
    with_archived = [e["id"] for e in api.get("/experiments?archived=true").json()["experiments"]]
    assert with_archived == [archived, kept]
    detail = api.get(f"/experiments/{archived}").json()
    assert detail["archived"] is True and detail["deleted"] is True


def test_list_is_newest_first_and_paginates_with_string_cursors(api):
    ids = [api.create_experiment(f"exp-{n}") for n in range(5)]
    first = api.get("/experiments?limit=2").json()
    assert [e["id"] for e in first["experiments"]] == ids[::-1][:2]
    assert isinstance(first["nextCursor"], str)
    second = api.get(f"/experiments?limit=2&cursor={first['nextCursor']}").json()
    third = api.get(f"/experiments?limit=2&cursor={second['nextCursor']}").json()
    assert [e["id"] for e in second["experiments"] + third["experiments"]] == ids[::-1][2:]
    assert third.get("nextCursor") is None


def test_list_limit_is_capped_at_1000(api, projects):
    from management_api.models import Experiment as Model

    Model.objects.bulk_create(
        [Model(project_id=PROJECT_ID, key=f"bulk-{n}", bucketing_salt="salt1234", created_by="t") for n in range(1001)]
    )
    page = api.get("/experiments?limit=5000").json()
    assert len(page["experiments"]) == 1000
    assert page["nextCursor"] == "1000"
    rest = api.get(f"/experiments?limit=1000&cursor={page['nextCursor']}").json()
    assert len(rest["experiments"]) == 1 and rest["nextCursor"] is None


def test_list_rejects_a_limit_below_one_or_not_an_integer_and_a_bad_cursor(api):
    for query, field in [("limit=0", "limit"), ("limit=ten", "limit"), ("cursor=abc", "cursor")]:
        response = api.get(f"/experiments?{query}")
        assert response.status_code == 400
        assert response.json()["field"] == field


def test_list_shows_only_projects_the_key_reaches(api, other_api):
    mine = api.create_experiment("mine")
    other_api.post("/experiments", {"projectId": "200002", "key": "theirs"})
    assert [e["id"] for e in api.get("/experiments").json()["experiments"]] == [mine]
    assert api.get("/experiments?projectId=200002").status_code == 403


def test_create_rejects_bad_input_naming_the_field_and_writes_nothing(api):
    cases = [
        ({"key": "x"}, "projectId"),
        ({"projectId": PROJECT_ID}, "key"),
        ({"projectId": PROJECT_ID, "key": "bad key!"}, "key"),
        ({"projectId": PROJECT_ID, "key": "x", "experimentType": "a-b"}, "experimentType"),
        ({"projectId": PROJECT_ID, "key": "x", "evaluationMode": "edge"}, "evaluationMode"),
        ({"projectId": PROJECT_ID, "key": "x", "variants": [{"key": "a"}, {"key": "a"}]}, "variants[1].key"),
        ({"projectId": PROJECT_ID, "key": "x", "rolloutWeights": {"control": -1}}, "rolloutWeights.control"),
        ({"projectId": PROJECT_ID, "key": "x", "rolloutWeights": {"control": 1.5}}, "rolloutWeights.control"),
        ({"projectId": PROJECT_ID, "key": "x", "rolloutWeights": {"nope": 1}}, "rolloutWeights.nope"),
        (
            {
                "projectId": PROJECT_ID,
                "key": "x",
                "targetSegments": [
                    {"name": "s", "conditions": [{"prop": "p", "op": "roughly", "type": "property", "values": []}], "percentage": 5, "rolloutWeights": {}}
                ],
            },
            "targetSegments[0].conditions[0].op",
        ),
        (
            {
                "projectId": PROJECT_ID,
                "key": "x",
                "targetSegments": [
                    {"name": "s", "conditions": [{"prop": "p", "op": "is", "type": "cohort", "values": []}], "percentage": 5, "rolloutWeights": {}}
                ],
            },
            "targetSegments[0].conditions[0].type",
        ),
        ({"projectId": PROJECT_ID, "key": "x", "unknownField": 1}, "unknownField"),
    ]
    for body, field in cases:
        response = api.post("/experiments", body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field, body
        assert response.json()["error"]
    assert not Experiment.objects.exists()
    assert not Version.objects.exists()


def test_create_with_a_duplicate_key_is_rejected(api, experiment_id):
    response = api.post("/experiments", {"projectId": PROJECT_ID, "key": "checkout-button-color"})
    assert response.status_code == 400
    assert response.json()["field"] == "key"


def test_malformed_json_is_a_400_naming_the_body(api, experiment_id):
    for raw in [b"{not json", b"[1, 2]", b'{"rolloutPercentage": NaN}']:
        response = api.request("PATCH", f"/experiments/{experiment_id}", data=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, raw
        assert response.json()["field"] == "body"


def test_edit_rejects_bad_values_naming_the_field_and_changes_nothing(api, experiment_id):
    before = api.get(f"/experiments/{experiment_id}").json()
    cases = [
        ({"rolloutPercentage": 101}, "rolloutPercentage"),
        ({"rolloutPercentage": -1}, "rolloutPercentage"),
        ({"rolloutPercentage": "10"}, "rolloutPercentage"),
        ({"enabled": "yes"}, "enabled"),
        ({"name": "ok", "startDate": "31/07/2023"}, "startDate"),
        ({"startDate": "2023-08-01", "endDate": "2023-07-01"}, "endDate"),
        ({"experimentType": "bandit"}, "experimentType"),
        ({"evaluationMode": "hybrid"}, "evaluationMode"),
        ({"tags": "prod"}, "tags"),
        ({"archive": 1}, "archive"),
        ({"exposureEvent": {"event_type": "_active", "filters": [{"subprop_key": "k", "subprop_op": "nearly", "subprop_type": "user", "subprop_value": []}]}}, "exposureEvent.filters[0].subprop_op"),
        ({"targetSegments": [{"name": "s", "conditions": [], "percentage": 150, "rolloutWeights": {}}]}, "targetSegments[0].percentage"),
    ]
    for body, field in cases:
        response = api.patch(f"/experiments/{experiment_id}", body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field
    assert api.get(f"/experiments/{experiment_id}").json() == before


def test_unknown_experiment_is_404_and_unknown_method_is_405(api, experiment_id):
    assert api.get("/experiments/999999").status_code == 404
    assert api.get("/experiments/not-a-number").status_code == 404
    assert api.patch("/experiments/999999", {"name": "x"}).status_code == 404
    response = api.delete(f"/experiments/{experiment_id}")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "PATCH"}


def test_unknown_path_under_the_api_is_a_json_404(api):
    response = api.get("/flags-that-do-not-exist")
    assert response.status_code == 404
    assert response.json()["error"]
