import io

from django.core.management import call_command

from management_api.models import Deployment, Experiment, Inclusion, Project, Version
from management_api.selectors import experiment_state


def test_seed_demo_upstream_creates_a_realistic_project_once(transactional_db):
    call_command("seed_demo_upstream", stdout=io.StringIO())
    counts = (Experiment.objects.count(), Version.objects.count(), Inclusion.objects.count(), Deployment.objects.count())
    assert Project.objects.get(id="100001").name == "Demo project"
    assert counts[0] >= 30 and counts[3] == 4
    assert Version.objects.count() > 3 * counts[0]
    states = {experiment_state(e) for e in Experiment.objects.all()}
    assert states == {"planning", "running", "decision-made"}
    assert Experiment.objects.filter(archived=True).exists()
    assert {e.experiment_type for e in Experiment.objects.all()} == {"hypothesis-testing", "no-harm", "multi-arm-bandit"}
    assert max(Inclusion.objects.values_list("variant_id", flat=True).order_by().distinct().count(), 0) > 10
    assert set(Version.objects.values_list("created_by", flat=True)) >= {"ci-bot"}

    out = io.StringIO()
    call_command("seed_demo_upstream", stdout=out)
    assert "nothing to do" in out.getvalue()
    assert (Experiment.objects.count(), Version.objects.count(), Inclusion.objects.count(), Deployment.objects.count()) == counts
