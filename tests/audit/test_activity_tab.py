import pytest
from django.urls import reverse

from experiments_app.audit import actions
from experiments_app.audit.services import audit_record


@pytest.fixture
def experiment_with_history(upstream_client):
    mine = upstream_client.create_experiment(key="activity-mine", name="Mine").id
    other = upstream_client.create_experiment(key="activity-other", name="Other").id
    audit_record(action=actions.CHANGE_REQUEST_CREATED, actor="eddie", experiment_id=mine,
                 experiment_key="activity-mine", reason="turn it up")
    audit_record(action=actions.EXTERNAL_CHANGE, actor="upstream:grace", experiment_id=mine,
                 experiment_key="activity-mine", upstream_version_after=3)
    audit_record(action=actions.CHANGE_REQUEST_CREATED, actor="eddie", experiment_id=other,
                 experiment_key="activity-other", reason="not this one")
    return mine


def test_activity_tab_shows_the_experiments_own_history(client, viewer, experiment_with_history):
    client.force_login(viewer)

    response = client.get(reverse("experiment_tab", args=[experiment_with_history, "activity"]))

    content = response.content.decode()
    assert response.status_code == 200
    assert "turn it up" in content and "Changed outside the portal" in content and "v3" in content
    assert "not this one" not in content
    assert f"/audit/?experiment={experiment_with_history}" in content


def test_experiment_page_opens_on_the_activity_tab(client, viewer, experiment_with_history):
    client.force_login(viewer)

    response = client.get(reverse("experiment_detail", args=[experiment_with_history]), {"tab": "activity"})

    assert response.status_code == 200
    assert 'data-tab="activity"' in response.content.decode()
