from management_api.models import Inclusion, Version

SEED_VARIANT = {
    "key": "new-variant-key",
    "description": "optional description for variant",
    "name": "optional name for variant",
    "payload": {"variant-payload": "example payload"},
    "rolloutWeight": 0,
}


def test_variants_list_and_detail_have_the_seed_shape(api, experiment_id):
    variants = api.get(f"/experiments/{experiment_id}/variants").json()
    assert variants == [
        {"key": "control", "name": "", "payload": {}, "description": "", "rolloutWeight": 1},
        {"key": "treatment", "name": "", "payload": {}, "description": "", "rolloutWeight": 1},
    ]
    assert api.get(f"/experiments/{experiment_id}/variants/control").json() == variants[0]


def test_create_variant_with_the_seed_example_adds_it_and_its_weight(api, experiment_id):
    response = api.post(f"/experiments/{experiment_id}/variants", SEED_VARIANT)
    assert response.status_code == 200 and response.text == "OK"
    assert api.get(f"/experiments/{experiment_id}/variants/new-variant-key").json() == SEED_VARIANT
    experiment = api.get(f"/experiments/{experiment_id}").json()
    assert experiment["rolloutWeights"] == {"control": 1, "treatment": 1, "new-variant-key": 0}
    assert experiment["variants"][-1] == {"key": "new-variant-key"}


def test_edit_variant_with_a_new_key_renames_it_everywhere(api, experiment_id):
    segment = {
        "name": "Segment 1",
        "conditions": [{"prop": "city", "op": "is", "type": "property", "values": ["Paris"]}],
        "percentage": 20,
        "bucketingKey": "amplitude_id",
        "rolloutWeights": {"control": 1, "treatment": 3},
    }
    api.patch(f"/experiments/{experiment_id}", {"targetSegments": [segment]})
    api.post(f"/experiments/{experiment_id}/variants/treatment/users", {"inclusions": ["u1", "u2"]})
    response = api.patch(
        f"/experiments/{experiment_id}/variants/treatment",
        {
            "key": "updated-variant-key",
            "description": "updated-optional description for variant",
            "name": "optional name for variant",
            "payload": {"variant-payload": "example payload"},
            "rolloutWeight": 10,
        },
    )
    assert response.status_code == 200 and response.text == "OK"
    experiment = api.get(f"/experiments/{experiment_id}").json()
    assert experiment["rolloutWeights"] == {"control": 1, "updated-variant-key": 10}
    assert experiment["targetSegments"][0]["rolloutWeights"] == {"control": 1, "updated-variant-key": 3}
    assert api.get(f"/experiments/{experiment_id}/variants/treatment").status_code == 404
    assert api.get(f"/experiments/{experiment_id}/variants/updated-variant-key/users").json() == ["u1", "u2"]


def test_remove_variant_drops_its_weights_and_inclusions(api, experiment_id):
    api.post(f"/experiments/{experiment_id}/variants/treatment/users", {"inclusions": ["u1"]})
    response = api.delete(f"/experiments/{experiment_id}/variants/treatment")
    assert response.status_code == 200 and response.text == "OK"
    experiment = api.get(f"/experiments/{experiment_id}").json()
    assert experiment["variants"] == [{"key": "control"}]
    assert experiment["rolloutWeights"] == {"control": 1}
    assert not Inclusion.objects.exists()


def test_removing_the_last_variant_is_rejected(api, experiment_id):
    api.delete(f"/experiments/{experiment_id}/variants/treatment")
    response = api.delete(f"/experiments/{experiment_id}/variants/control")
    assert response.status_code == 400
    assert response.json()["field"] == "variantKey"


def test_variant_writes_reject_bad_input_and_write_nothing(api, experiment_id):
    versions_before = Version.objects.count()
    cases = [
        ("POST", f"/experiments/{experiment_id}/variants", {"key": "control"}, "key"),
        ("POST", f"/experiments/{experiment_id}/variants", {"name": "no key"}, "key"),
        ("POST", f"/experiments/{experiment_id}/variants", {"key": "v", "rolloutWeight": -1}, "rolloutWeight"),
        ("POST", f"/experiments/{experiment_id}/variants", {"key": "v", "rolloutWeight": 2.5}, "rolloutWeight"),
        ("POST", f"/experiments/{experiment_id}/variants", {"key": "v", "rolloutWeight": "1"}, "rolloutWeight"),
        ("PATCH", f"/experiments/{experiment_id}/variants/treatment", {"key": "control"}, "key"),
        ("PATCH", f"/experiments/{experiment_id}/variants/treatment", {"rolloutWeight": -5}, "rolloutWeight"),
    ]
    for method, path, body, field in cases:
        response = api.request(method, path, body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field
    assert Version.objects.count() == versions_before
    assert [v["key"] for v in api.get(f"/experiments/{experiment_id}/variants").json()] == ["control", "treatment"]


def test_unknown_variant_is_404(api, experiment_id):
    for method in ("GET", "PATCH", "DELETE"):
        response = api.request(method, f"/experiments/{experiment_id}/variants/nope", {} if method == "PATCH" else None)
        assert response.status_code == 404
        assert response.json()["field"] == "variantKey"
    assert api.get(f"/experiments/{experiment_id}/variants/nope/users").status_code == 404
