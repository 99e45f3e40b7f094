from experiments_app import roles

# label, url name, the path prefixes that belong to the section, the permission it needs
NAVIGATION = [
    ("Experiments", "home", ("/experiments/",), roles.VIEW),
    ("Approvals", "approvals", ("/approvals/", "/requests/", "/policy/"), roles.VIEW),
    ("Bulk jobs", "bulk_jobs", ("/bulk-jobs/",), roles.VIEW),
    ("Audit", "audit", ("/audit/",), roles.VIEW),
    ("Users", "users", ("/users/",), roles.ADMINISTER),
]


def _section(path: str) -> str:
    if path == "/":
        return "home"
    return next((name for _, name, prefixes, _ in NAVIGATION if path.startswith(prefixes)), "")


def portal(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "navigation": [(label, name) for label, name, _, permission in NAVIGATION if user.has_perm(permission)],
        "current_section": _section(request.path),
        "user_roles": roles.user_roles(user),
    }
