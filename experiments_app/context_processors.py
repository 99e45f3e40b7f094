from experiments_app import roles

# label, url name, the path prefixes that belong to the section
NAVIGATION = [
    ("Experiments", "home", ("/experiments/",)),
    ("Approvals", "approvals", ("/approvals/",)),
    ("Bulk jobs", "bulk_jobs", ("/bulk-jobs/",)),
    ("Audit", "audit", ("/audit/",)),
]


def _section(path: str) -> str:
    if path == "/":
        return "home"
    return next((name for _, name, prefixes in NAVIGATION if path.startswith(prefixes)), "")


def portal(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "navigation": [(label, name) for label, name, _ in NAVIGATION],
        "current_section": _section(request.path),
        "user_roles": roles.user_roles(user),
    }
