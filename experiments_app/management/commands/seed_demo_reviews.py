from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from experiments_app import change_requests, gateway, plans
from experiments_app.bulk import services as bulk
from experiments_app.bulk.models import BulkJob, Kind
from experiments_app.models import ChangeRequest


class Command(BaseCommand):
    help = ("Leave the demo something to review: a rollout request and a bulk job in review, and a small "
            "bulk job that needs no approval (the worker runs it). Does nothing once any request exists.")

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("Demo data is only for DEBUG setups.")
        if settings.UPSTREAM_BASE_URL != f"http://127.0.0.1:{settings.PORT}":
            self.stdout.write("Demo reviews: skipped, the upstream is not the embedded one (nothing is sent to it).")
            return
        if ChangeRequest.objects.exists() or BulkJob.objects.exists():
            self.stdout.write("Demo reviews: requests exist already; nothing added.")
            return
        editor = get_user_model().objects.get(username="editor")
        running = [e for e in gateway.get_client().iter_experiments()
                   if e.enabled and (e.rollout_percentage or 0) <= 40
                   and {v["key"] for v in e.variants} == {"control", "treatment"}]
        if len(running) < 2:
            raise CommandError("The demo upstream has no two running experiments to use: run seed_demo_upstream.")
        first, second = running[:2]

        plan = [{"op": "update_experiment", "fields": {"rolloutPercentage": (first.rollout_percentage or 0) + 10}}]
        change_requests.change_request_create(
            requester=editor, kind="edit_experiment", title=f"{first.key}: {plans.describe(plan[0])}",
            reason="Metrics held steady for a week at the current rollout; widening it by ten points.",
            plan=plan, experiment_id=first.id)

        testers = [f"qa-tester-{n:03d}@example.com" for n in range(60)]
        job, _ = bulk.bulk_job_create(requester=editor, kind=Kind.ADD, ids=testers, title="",
                                      reason="The QA team tests the new checkout next sprint.",
                                      experiment_id=second.id, variant_key="treatment")
        bulk.bulk_job_submit(actor=editor, job=job)

        staff = [f"staff-{n:02d}@example.com" for n in range(12)]
        job, _ = bulk.bulk_job_create(requester=editor, kind=Kind.ADD, ids=staff, title="",
                                      reason="Internal staff keep the current experience.",
                                      experiment_id=first.id, variant_key="control")
        bulk.bulk_job_submit(actor=editor, job=job)
        self.stdout.write("Demo reviews: a rollout request and a 60-id bulk job wait for an approver; "
                          "a 12-id bulk job needs none and runs now.")
