from experiments_app import roles

NAVIGATION = [
    ("Experiments", "home"),
    ("Approvals", "approvals"),
    ("Bulk jobs", "bulk_jobs"),
    ("Audit", "audit"),
]


def portal(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "navigation": NAVIGATION,
        "user_roles": roles.user_roles(user),
    }
