import re

import pytest
from django.urls import reverse

from experiments_app.models import ChangeRequest, Status


pytestmark = pytest.mark.usefixtures("celery_eager")


@pytest.fixture
def experiment_id(upstream_client):
    experiment_id = upstream_client.create_experiment(key="views-exp", name="Views").id
    upstream_client.update_experiment(experiment_id, {"enabled": True, "rolloutPercentage": 10})
    return experiment_id


def edit_form(client, experiment_id, url=None, **changes):
    url = url or reverse("experiment_edit", args=[experiment_id])
    html = client.get(url).content.decode()
    data = {}
    for name, value in re.findall(r'<input type="(?:text|number|date)" name="([^"]+)" value="([^"]*)"', html):
        data[name] = value
    for name in re.findall(r'<input type="checkbox" name="([^"]+)"[^>]*checked', html):
        data[name] = "on"
    for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        selected = re.search(r'<option value="([^"]*)" selected', body)
        data[name] = selected.group(1) if selected else ""
    for name, value in re.findall(r'<textarea name="([^"]+)"[^>]*>\n?(.*?)</textarea>', html, re.S):
        data[name] = value
    data.update(changes)
    return client.post(url, {k: v for k, v in data.items() if v is not False})


def test_editor_requests_a_rollout_change_through_the_form(client, editor, experiment_id):
    client.force_login(editor)
    response = edit_form(client, experiment_id, rollout_percentage="50", reason="ramp up")
    change_request = ChangeRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/requests/{change_request.pk}/"
    assert change_request.plan == [{"op": "update_experiment", "fields": {"rolloutPercentage": 50}}]
    assert change_request.status == Status.PENDING


def test_the_form_explains_bad_input_and_requests_nothing(client, editor, experiment_id):
    client.force_login(editor)
    response = edit_form(client, experiment_id, rollout_percentage="150", reason="")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Ensure this value is less than or equal to 100" in html and "This field is required" in html
    assert not ChangeRequest.objects.exists()


def test_viewer_cannot_open_change_forms(client, viewer, experiment_id):
    client.force_login(viewer)
    for name in ("experiment_edit", "variant_add", "inclusions_edit", "deployments_edit", "segment_add"):
        assert client.get(reverse(name, args=[experiment_id])).status_code == 403
    assert client.get(reverse("experiment_create")).status_code == 403


def test_requester_approval_is_refused_for_plain_and_htmx_posts(client, approver, experiment_id):
    client.force_login(approver)
    edit_form(client, experiment_id, rollout_percentage="30", reason="mine")
    change_request = ChangeRequest.objects.get()
    url = reverse("change_request_approve", args=[change_request.pk])
    assert client.post(url).status_code == 403
    assert client.post(url, headers={"HX-Request": "true"}).status_code == 403
    assert change_request.approvals.count() == 0
    page = client.get(reverse("change_request_detail", args=[change_request.pk])).content.decode()
    assert ">Approve</button>" not in page and "You cannot approve your own request." in page


def test_csrf_is_required_for_review_actions(editor, approver, experiment_id):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(editor)
    response = edit_form(strict, experiment_id, rollout_percentage="30", reason="x", csrfmiddlewaretoken="")
    assert response.status_code == 403
    assert not ChangeRequest.objects.exists()


def test_revising_a_request_voids_its_approvals(client, editor, approver, make_user, experiment_id):
    client.force_login(editor)
    edit_form(client, experiment_id, rollout_percentage="90", reason="big step")  # high risk: two approvals
    change_request = ChangeRequest.objects.get()
    approver_client = type(client)()
    approver_client.force_login(approver)
    approver_client.post(reverse("change_request_approve", args=[change_request.pk]),
                         {"plan_hash": change_request.plan_hash})
    assert change_request.approvals.count() == 1
    revise_url = reverse("experiment_edit", args=[experiment_id]) + f"?request={change_request.pk}"
    assert 'value="90"' in client.get(revise_url).content.decode()
    edit_form(client, experiment_id, url=revise_url, rollout_percentage="40", reason="smaller step")
    change_request.refresh_from_db()
    assert change_request.plan == [{"op": "update_experiment", "fields": {"rolloutPercentage": 40}}]
    assert change_request.required_approvals == 1
    page = client.get(reverse("change_request_detail", args=[change_request.pk])).content.decode()
    assert "1 earlier approval no longer counts" in page
    stale = approver_client.post(reverse("change_request_approve", args=[change_request.pk]),
                                 {"plan_hash": "0" * 64}, follow=True)
    assert "changed since you opened it" in stale.content.decode()


def test_reject_without_a_comment_is_explained(client, editor, approver, experiment_id):
    client.force_login(editor)
    edit_form(client, experiment_id, rollout_percentage="30", reason="x")
    change_request = ChangeRequest.objects.get()
    client.force_login(approver)
    response = client.post(reverse("change_request_reject", args=[change_request.pk]), {"comment": ""}, follow=True)
    assert "Say why you reject it." in response.content.decode()
    change_request.refresh_from_db()
    assert change_request.status == Status.PENDING


def test_waiting_for_me_lists_only_what_i_may_approve(client, editor, approver, experiment_id):
    client.force_login(editor)
    edit_form(client, experiment_id, rollout_percentage="30", reason="x")
    mine = client.get(reverse("approvals"), {"view": "mine"}).content.decode()
    waiting_for_editor = client.get(reverse("approvals")).content.decode()
    assert "views-exp: Edit rolloutPercentage" in mine
    assert "Nothing waits for your review." in waiting_for_editor
    client.force_login(approver)
    assert "views-exp: Edit rolloutPercentage" in client.get(reverse("approvals")).content.decode()


def test_admin_edits_the_policy_and_others_cannot(client, admin_user, approver):
    client.force_login(approver)
    assert client.get(reverse("policy")).status_code == 403
    client.force_login(admin_user)
    assert client.get(reverse("policy")).status_code == 200
    from experiments_app.models import Policy

    policy = Policy.objects.get(tier="standard")
    client.post(reverse("policy"), {"policy": policy.pk, "required_approvals": 2, "approver_group": ""})
    policy.refresh_from_db()
    assert policy.required_approvals == 2


def _only_request(**filters) -> ChangeRequest:
    return ChangeRequest.objects.filter(**filters).get()


def test_segment_form_builds_the_whole_segment_list(client, editor, experiment_id, upstream_client):
    client.force_login(editor)
    response = client.post(reverse("segment_add", args=[experiment_id]), {
        "name": "Canada beta", "percentage": "40", "weight__control": "1", "weight__treatment": "3",
        "prop_0": "country", "op_0": "is", "values_0": "Canada, Mexico",
        "prop_1": "gp:beta", "op_1": "set contains", "values_1": "yes",
        **{f"op_{n}": "is" for n in range(2, 5)}, "reason": "beta in North America"})
    assert response.status_code == 302
    segments = _only_request().plan[0]["fields"]["targetSegments"]
    assert segments == [{"name": "Canada beta", "percentage": 40, "bucketingKey": "amplitude_id",
                         "rolloutWeights": {"control": 1, "treatment": 3},
                         "conditions": [{"type": "property", "prop": "country", "op": "is", "values": ["Canada", "Mexico"]},
                                        {"type": "property", "prop": "gp:beta", "op": "set contains", "values": ["yes"]}]}]


def test_segment_condition_needs_property_and_values(client, editor, experiment_id):
    client.force_login(editor)
    response = client.post(reverse("segment_add", args=[experiment_id]), {
        "name": "Half", "percentage": "10", "weight__control": "1", "weight__treatment": "1",
        "prop_0": "country", "op_0": "is", "values_0": "", **{f"op_{n}": "is" for n in range(1, 5)}, "reason": "r"})
    assert "A condition needs a property and values." in response.content.decode()
    assert not ChangeRequest.objects.exists()


def test_variant_forms_make_create_edit_and_remove_operations(client, editor, experiment_id):
    client.force_login(editor)
    client.post(reverse("variant_add", args=[experiment_id]), {
        "key": "bold", "name": "Bold", "payload": '{"color": "red"}', "rollout_weight": "2", "reason": "try bold"})
    client.post(reverse("variant_edit", args=[experiment_id, "treatment"]), {
        "key": "treatment", "name": "Renamed", "payload": "", "reason": "clearer name"})
    client.post(reverse("variant_remove", args=[experiment_id, "control"]), {"reason": "no longer needed"})
    plans = [cr.plan[0] for cr in ChangeRequest.objects.order_by("pk")]
    assert plans == [
        {"op": "create_variant", "key": "bold", "name": "Bold", "payload": {"color": "red"}, "rolloutWeight": 2},
        {"op": "update_variant", "key": "treatment", "fields": {"name": "Renamed"}},
        {"op": "delete_variant", "key": "control"},
    ]
    assert ChangeRequest.objects.order_by("pk").last().tier == "high"  # a variant of a running experiment


def test_variant_payload_must_be_json(client, editor, experiment_id):
    client.force_login(editor)
    response = client.post(reverse("variant_add", args=[experiment_id]),
                           {"key": "x", "payload": "{not json", "reason": "r"})
    assert "Not valid JSON" in response.content.decode()


def test_inclusions_and_deployments_forms(client, editor, experiment_id, upstream_client):
    deployment = upstream_client.create_deployment(label="ios-views", type="client").id
    client.force_login(editor)
    client.post(reverse("inclusions_edit", args=[experiment_id]), {
        "action": "add", "variant": "treatment", "ids": "qa-1@example.com\n qa-2@example.com \nqa-1@example.com\n",
        "reason": "QA"})
    client.post(reverse("deployments_edit", args=[experiment_id]), {"action": "add", "deployment": deployment,
                                                                    "reason": "ship to iOS"})
    plans = [cr.plan[0] for cr in ChangeRequest.objects.order_by("pk")]
    assert plans == [{"op": "add_inclusions", "variant": "treatment", "ids": ["qa-1@example.com", "qa-2@example.com"]},
                     {"op": "add_deployments", "deployments": [deployment]}]
    refused = client.post(reverse("deployments_edit", args=[experiment_id]),
                          {"action": "remove", "deployment": deployment, "reason": "x"})
    assert "does not have this deployment" in refused.content.decode()


def test_new_experiment_form(client, editor, embedded_upstream):
    client.force_login(editor)
    client.post(reverse("experiment_create"), {
        "key": "fresh-idea", "name": "Fresh idea", "variants": "control, a, b", "evaluation_mode": "remote",
        "experiment_type": "multi-arm-bandit", "reason": "new test"})
    body = _only_request().plan[0]["body"]
    assert body["key"] == "fresh-idea" and [v["key"] for v in body["variants"]] == ["control", "a", "b"]
    assert body["experimentType"] == "multi-arm-bandit"
