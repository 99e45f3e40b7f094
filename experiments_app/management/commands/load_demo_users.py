from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from experiments_app.demo import DEMO_USERS
from experiments_app.users import user_create


class Command(BaseCommand):
    help = "Create the demo users (one per role); users that already exist are left alone."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("Demo users have well-known passwords: they are only for DEBUG setups.")
        users = get_user_model().objects
        created = 0
        for username, role, password in DEMO_USERS:
            if not users.filter(username=username).exists():
                user_create(username=username, role=role, password=password,
                            email=f"{username}@example.com", validate=False)
                created += 1
        self.stdout.write(f"Demo users: {created} created, {len(DEMO_USERS) - created} already there.")
