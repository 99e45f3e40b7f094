"""Typed results tolerate unknown fields and ids given as strings or numbers."""

import dataclasses

import pytest

from experiments_app import gateway


def test_experiment_from_api_stringifies_ids_and_keeps_unknown_fields_in_raw():
    raw = {"id": 42, "projectId": 100001, "deployments": [7, "8"], "key": "k", "name": "N", "enabled": True,
           "bucketingSalt": 1234, "rolloutPercentage": 10, "rolloutWeights": {"control": 1},
           "variants": [{"key": "control"}], "createdBy": 99, "brandNewField": {"x": 1}}

    experiment = gateway.Experiment.from_api(raw)

    assert (experiment.id, experiment.project_id, experiment.deployments) == ("42", "100001", ["7", "8"])
    assert experiment.bucketing_salt == "1234" and experiment.created_by == "99"
    assert experiment.enabled is True and experiment.rollout_percentage == 10
    assert experiment.tags == [] and experiment.target_segments == [] and experiment.archived is False
    assert experiment.raw["brandNewField"] == {"x": 1}
    with pytest.raises(dataclasses.FrozenInstanceError):
        experiment.key = "other"


def test_version_variant_deployment_and_created_from_api():
    version = gateway.Version.from_api({"version": "3", "createdAt": "2023-07-29T03:30:18.427Z", "createdBy": 5,
                                        "flagConfig": {"id": 1}, "extra": True})
    variant = gateway.Variant.from_api({"key": "treatment", "payload": {"a": 1}, "rolloutWeight": 2, "new": 1})
    deployment = gateway.Deployment.from_api({"id": 9, "projectId": "100001", "label": "web", "key": "client-x"})
    created = gateway.Created.from_api({"id": 12, "url": "http://x/12"})

    assert (version.version, version.created_by, version.flag_config) == (3, "5", {"id": 1})
    assert (variant.key, variant.name, variant.payload, variant.rollout_weight) == ("treatment", "", {"a": 1}, 2)
    assert (deployment.id, deployment.project_id, deployment.deleted) == ("9", "100001", False)
    assert (created.id, created.url) == ("12", "http://x/12")
