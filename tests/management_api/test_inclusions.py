from management_api.models import Inclusion, Version


def users_path(experiment_id, variant="treatment"):
    return f"/experiments/{experiment_id}/variants/{variant}/users"


def test_add_users_keeps_order_and_set_semantics(api, experiment_id):
    response = api.post(users_path(experiment_id), {"inclusions": ["a@example.com", "b@example.com", "42"]})
    assert response.status_code == 200 and response.text == "OK"
    api.post(users_path(experiment_id), {"inclusions": ["b@example.com", "c", "c"]})
    assert api.get(users_path(experiment_id)).json() == ["a@example.com", "b@example.com", "42", "c"]


def test_adding_only_present_ids_is_a_no_op_without_a_version(api, experiment_id):
    api.post(users_path(experiment_id), {"inclusions": ["a"]})
    versions = Version.objects.count()
    assert api.post(users_path(experiment_id), {"inclusions": ["a"]}).status_code == 200
    assert Version.objects.count() == versions


def test_remove_by_index_removes_that_position_and_later_indexes_shift(api, experiment_id):
    api.post(users_path(experiment_id), {"inclusions": ["u0", "u1", "u2", "u3"]})
    assert api.delete(users_path(experiment_id) + "/1").text == "OK"
    assert api.get(users_path(experiment_id)).json() == ["u0", "u2", "u3"]
    api.delete(users_path(experiment_id) + "/1")
    assert api.get(users_path(experiment_id)).json() == ["u0", "u3"]


def test_remove_by_index_out_of_range_or_not_an_integer_is_rejected(api, experiment_id):
    api.post(users_path(experiment_id), {"inclusions": ["u0"]})
    for index in ("1", "-1", "x"):
        response = api.delete(users_path(experiment_id) + f"/{index}")
        assert response.status_code == 400
        assert response.json()["field"] == "userIndex"
    assert api.get(users_path(experiment_id)).json() == ["u0"]


def test_remove_all_users_empties_only_that_variant(api, experiment_id):
    api.post(users_path(experiment_id), {"inclusions": ["u0", "u1"]})
    api.post(users_path(experiment_id, "control"), {"inclusions": ["c0"]})
    assert api.delete(users_path(experiment_id)).text == "OK"
    assert api.get(users_path(experiment_id)).json() == []
    assert api.get(users_path(experiment_id, "control")).json() == ["c0"]


def test_bulk_delete_users_with_a_json_body_removes_those_ids(api, experiment_id):
    api.post(users_path(experiment_id), {"inclusions": ["u0", "u1", "u2", "u3"]})
    response = api.delete(f"/experiments/{experiment_id}/variants/treatment/bulk-delete-users", {"users": ["u1", "u3", "absent"]})
    assert response.status_code == 200 and response.text == "OK"
    assert api.get(users_path(experiment_id)).json() == ["u0", "u2"]


def test_bulk_delete_over_100_ids_is_rejected_and_changes_nothing(api, experiment_id):
    ids = [f"u{n}" for n in range(101)]
    api.post(users_path(experiment_id), {"inclusions": ids})
    versions = Version.objects.count()
    response = api.delete(f"/experiments/{experiment_id}/variants/treatment/bulk-delete-users", {"users": ids})
    assert response.status_code == 400
    assert response.json()["field"] == "users"
    assert len(api.get(users_path(experiment_id)).json()) == 101
    assert Version.objects.count() == versions


def test_more_than_2000_inclusions_in_a_variant_is_rejected_and_changes_nothing(api, experiment_id):
    assert api.post(users_path(experiment_id), {"inclusions": [f"u{n}" for n in range(1990)]}).status_code == 200
    response = api.post(users_path(experiment_id), {"inclusions": [f"v{n}" for n in range(11)]})
    assert response.status_code == 400
    assert response.json()["field"] == "inclusions"
    assert Inclusion.objects.count() == 1990
    assert api.post(users_path(experiment_id), {"inclusions": [f"v{n}" for n in range(10)] + ["u0"]}).status_code == 200
    assert Inclusion.objects.count() == 2000


def test_bad_inclusion_ids_are_rejected_naming_the_position(api, experiment_id):
    cases = [
        ({"inclusions": "u1"}, "inclusions"),
        ({"inclusions": ["ok", ""]}, "inclusions[1]"),
        ({"inclusions": ["ok", 7]}, "inclusions[1]"),
        ({"inclusions": ["x" * 257]}, "inclusions[0]"),
        ({}, "inclusions"),
    ]
    for body, field in cases:
        response = api.post(users_path(experiment_id), body)
        assert response.status_code == 400
        assert response.json()["field"] == field
    assert not Inclusion.objects.exists()


def test_adding_ids_inserts_rows_without_rewriting_existing_ones(api, experiment_id):
    api.post(users_path(experiment_id), {"inclusions": ["u0", "u1"]})
    first_rows = dict(Inclusion.objects.values_list("user_id", "id"))
    api.post(users_path(experiment_id), {"inclusions": ["u2"]})
    api.delete(f"/experiments/{experiment_id}/variants/treatment/bulk-delete-users", {"users": ["u0"]})
    rows = dict(Inclusion.objects.values_list("user_id", "id"))
    assert rows["u1"] == first_rows["u1"]
    assert set(rows) == {"u1", "u2"}


def test_an_oversized_body_is_a_400(api, experiment_id):
    huge = {"inclusions": ["x" * 200] * 15_000}
    response = api.post(users_path(experiment_id), huge)
    assert response.status_code == 400
    assert response.json()["field"] == "body"
    assert not Inclusion.objects.exists()
