"""Every endpoint of the seed plus deployments, through the gateway, over real HTTP."""

import uuid

import pytest

from experiments_app import gateway


def test_created_experiment_reads_back_typed_with_string_ids(gateway_client, upstream):
    key = f"exp-{uuid.uuid4().hex[:8]}"
    created = gateway_client.create_experiment(key=key, name="Save button", description="colour",
                                       variants=[{"key": "control"}, {"key": "treatment"}],
                                       rolloutWeights={"control": 1, "treatment": 1})

    experiment = gateway_client.get_experiment(created.id)

    assert isinstance(created.id, str) and created.url
    assert isinstance(experiment, gateway.Experiment)
    assert experiment.id == created.id
    assert experiment.project_id == upstream.project_id
    assert (experiment.key, experiment.name, experiment.description) == (key, "Save button", "colour")
    assert [v["key"] for v in experiment.variants] == ["control", "treatment"]
    assert experiment.rollout_weights == {"control": 1, "treatment": 1}
    assert experiment.enabled is False and experiment.archived is False
    assert experiment.raw["key"] == key


def test_list_is_newest_first_and_iterator_follows_next_cursor_lazily(gateway_client):
    ids = [gateway_client.create_experiment(key=f"page-{i}-{uuid.uuid4().hex[:6]}").id for i in range(5)]

    first = gateway_client.list_experiments(limit=2)
    with gateway.recording() as calls:
        iterator = gateway_client.iter_experiments(page_size=2)
        assert calls == []  # nothing is fetched until the first item is wanted
        first_two = [next(iterator).id, next(iterator).id]
        assert len(calls) == 1
        rest = [e.id for e in iterator]

    assert [e.id for e in first.items] == ids[::-1][:2]
    assert first.next_cursor is not None and isinstance(first.next_cursor, str)
    assert first_two + rest == ids[::-1]
    assert len(calls) == 3
    assert all(call.path == "/api/1/experiments" for call in calls)


def test_archived_experiments_leave_the_default_list(gateway_client, experiment):
    gateway_client.update_experiment(experiment.id, {"archive": True})

    assert experiment.id not in [e.id for e in gateway_client.iter_experiments()]
    [archived] = [e for e in gateway_client.iter_experiments(archived=True) if e.id == experiment.id]
    assert archived.archived is True


def test_update_experiment_records_a_version_with_the_full_config(gateway_client, experiment):
    gateway_client.update_experiment(experiment.id, {"rolloutPercentage": 25, "enabled": True, "tags": ["prod"]})

    updated = gateway_client.get_experiment(experiment.id)
    versions = gateway_client.list_versions(experiment.id)
    newest = gateway_client.get_version(experiment.id, versions[0].version)

    assert (updated.rollout_percentage, updated.enabled, updated.tags) == (25, True, ["prod"])
    assert [v.version for v in versions] == sorted((v.version for v in versions), reverse=True)
    assert len(versions) == 2
    assert newest.version == versions[0].version
    assert newest.flag_config["rolloutPercentage"] == 25
    assert newest.created_by


def test_variants_can_be_created_read_edited_and_removed(gateway_client, experiment):
    gateway_client.create_variant(experiment.id, key="blue", name="Blue", description="a blue button",
                          payload={"colour": "blue"}, rollout_weight=2)
    gateway_client.update_variant(experiment.id, "blue", {"name": "Bluer", "rolloutWeight": 3})
    blue = gateway_client.get_variant(experiment.id, "blue")
    gateway_client.delete_variant(experiment.id, "treatment")

    assert isinstance(blue, gateway.Variant)
    assert (blue.key, blue.name, blue.description, blue.payload, blue.rollout_weight) == (
        "blue", "Bluer", "a blue button", {"colour": "blue"}, 3)
    assert [v.key for v in gateway_client.list_variants(experiment.id)] == ["control", "blue"]


def test_inclusions_are_added_listed_and_removed_by_index_by_value_and_all(gateway_client, experiment):
    gateway_client.add_inclusions(experiment.id, "control", ["u1", "u2", "u3", "u4", "u5"])
    gateway_client.add_inclusions(experiment.id, "control", ["u2", "u6"])  # set semantics
    gateway_client.remove_inclusion_at(experiment.id, "control", 1, expected_user="u2")
    after_index = gateway_client.list_inclusions(experiment.id, "control")
    gateway_client.bulk_remove_inclusions(experiment.id, "control", ["u1", "u5", "absent"])
    after_bulk = gateway_client.list_inclusions(experiment.id, "control")
    gateway_client.remove_all_inclusions(experiment.id, "control")

    assert after_index == ["u1", "u3", "u4", "u5", "u6"]
    assert after_bulk == ["u3", "u4", "u6"]
    assert gateway_client.list_inclusions(experiment.id, "control") == []


def test_remove_by_index_follows_the_expected_user_when_the_list_shifted(gateway_client, experiment):
    gateway_client.add_inclusions(experiment.id, "control", ["a", "b", "c"])
    seen_index_of_c = 2
    gateway_client.remove_inclusion_at(experiment.id, "control", 0, expected_user="a")  # someone else

    gateway_client.remove_inclusion_at(experiment.id, "control", seen_index_of_c, expected_user="c")
    gateway_client.remove_inclusion_at(experiment.id, "control", seen_index_of_c, expected_user="c")  # again

    assert gateway_client.list_inclusions(experiment.id, "control") == ["b"]


def test_bulk_remove_refuses_more_than_one_hundred_ids_without_calling(gateway_client, experiment):
    with gateway.recording() as calls, pytest.raises(ValueError):
        gateway_client.bulk_remove_inclusions(experiment.id, "control", [f"u{i}" for i in range(101)])
    assert calls == []


def test_deployments_are_created_listed_attached_and_detached(gateway_client, upstream, experiment):
    web = gateway_client.create_deployment(label="web-prod")
    server = gateway_client.create_deployment(label="api-prod", type="server")

    listed = {d.id: d for d in gateway_client.list_deployments(limit=1)}  # one per page: follows the cursor
    gateway_client.add_deployments(experiment.id, [web.id, server.id])
    attached = gateway_client.list_experiment_deployments(experiment.id)
    gateway_client.remove_deployment(experiment.id, web.id)

    assert {web.id, server.id} <= set(listed)
    assert listed[web.id].label == "web-prod" and listed[web.id].project_id == upstream.project_id
    assert listed[server.id].key and listed[server.id].deleted is False
    assert sorted(d.id for d in attached) == sorted([web.id, server.id])
    assert [d.id for d in gateway_client.list_experiment_deployments(experiment.id)] == [server.id]
    assert gateway_client.get_experiment(experiment.id).deployments == [server.id]
