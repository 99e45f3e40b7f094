from django.core.management.base import BaseCommand, CommandError

from management_api.auth import api_key_create


class Command(BaseCommand):
    help = (
        "Create a management API key for the embedded Management API. The key is printed alone on "
        "the last line of stdout (only its hash is stored). Projects named that do not exist yet are created."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="who or what uses the key (recorded as createdBy of its writes)")
        parser.add_argument("--project", action="append", default=[], dest="projects", metavar="ID",
                            help="a project the key may reach (repeatable)")
        parser.add_argument("--all-projects", action="store_true", help="the key may reach every project")

    def handle(self, *args, name, projects, all_projects, **options):
        name = name.strip()
        if not name:
            raise CommandError("NAME must not be empty")
        if not projects and not all_projects:
            raise CommandError("give at least one --project ID (or --all-projects)")
        for project_id in projects:
            if not project_id.strip() or len(project_id) > 32:
                raise CommandError(f"invalid project id {project_id!r}")
        api_key, raw_key = api_key_create(name=name, project_ids=[p.strip() for p in projects], all_projects=all_projects)
        reach = "every project" if all_projects else "project(s) " + ", ".join(projects)
        self.stdout.write(f"Created management API key {api_key.name!r} ({api_key.prefix}…) for {reach}:")
        self.stdout.write(raw_key)
