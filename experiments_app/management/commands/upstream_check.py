"""Where is the upstream Management API, does the key work, and how much of today's budget is left.

Prints the base URL (never the key), what the key can see, and the remaining daily budget;
exits non-zero when the key is missing or rejected or the upstream does not answer.
"""

from django.core.management.base import BaseCommand, CommandError

from experiments_app import gateway


class Command(BaseCommand):
    help = "Check the connection to the upstream Experiment Management API."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=3.0,
                            help="seconds to spend retrying before giving up (default 3)")

    def handle(self, *args, **options):
        client = gateway.get_client()
        with gateway.correlation("upstream-check"):
            status = client.check(max_retry_seconds=options["timeout"])
        self.stdout.write(f"upstream:          {status.base_url}")
        self.stdout.write(f"api key:           {'set' if client.has_key else 'NOT SET'} (value not shown)")
        self.stdout.write(f"default project:   {client.project_id}")
        self.stdout.write(f"status:            {'OK' if status.ok else 'FAILING'} - {status.detail}")
        if status.ok:
            self.stdout.write(f"projects seen:     {', '.join(status.project_ids) or '(none)'}")
            if status.deployments:
                for deployment in status.deployments:
                    flag = " (deleted)" if deployment.deleted else ""
                    self.stdout.write(f"deployment:        {deployment.id} {deployment.label} "
                                      f"project={deployment.project_id}{flag}")
            else:
                self.stdout.write("deployments:       (none)")
        quota = client.budget.quota
        where = "shared via Redis" if client.budget.shared else "this process only"
        self.stdout.write(f"budget remaining:  {status.budget_remaining} of {quota} today "
                          f"for project {client.project_id} ({where})")
        if not status.ok:
            raise CommandError(f"upstream check failed: {status.detail}")
