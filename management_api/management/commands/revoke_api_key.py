from django.core.management.base import BaseCommand, CommandError

from management_api.auth import api_key_revoke


class Command(BaseCommand):
    help = "Revoke management API keys: every active key with that NAME, or the one key with that prefix."

    def add_arguments(self, parser):
        parser.add_argument("name_or_prefix")

    def handle(self, *args, name_or_prefix, **options):
        count = api_key_revoke(name_or_prefix=name_or_prefix.strip())
        if not count:
            raise CommandError(f"no active key named {name_or_prefix!r} or starting with it")
        self.stdout.write(f"Revoked {count} key(s).")
