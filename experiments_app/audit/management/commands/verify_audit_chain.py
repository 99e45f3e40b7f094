from django.core.management.base import BaseCommand, CommandError

from experiments_app.audit.services import audit_chain_verify


class Command(BaseCommand):
    help = "Check the audit hash chain and report the first broken link (exit status 1 if there is one)."

    def handle(self, *args, **options):
        report = audit_chain_verify()
        if report.problem:
            where = f"sequence {report.problem.sequence}" if report.problem.sequence else "unchained entries"
            raise CommandError(f"Broken link at {where}: {report.problem.message} "
                               f"({report.checked} entries verified before it)", returncode=1)
        self.stdout.write(f"OK: {report.checked} chained entries verified; {report.unprocessed} awaiting processing.")
