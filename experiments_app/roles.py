"""Roles are Django groups holding the portal's permissions (see models.Access)."""

from django.contrib.auth.models import Group, Permission

VIEW = "experiments_app.view_portal"
REQUEST = "experiments_app.request_change"
APPROVE = "experiments_app.approve_change"
ADMINISTER = "experiments_app.administer_portal"

ROLE_PERMISSIONS: dict[str, list[str]] = {
    "Viewer": ["view_portal"],
    "Editor": ["view_portal", "request_change"],
    "Approver": ["view_portal", "request_change", "approve_change"],
    "Admin": ["view_portal", "request_change", "approve_change", "administer_portal"],
}
ROLES = list(ROLE_PERMISSIONS)


def role_group(role: str) -> Group:
    """The group for `role`, holding exactly the role's permissions (created when missing)."""
    group, _ = Group.objects.get_or_create(name=role)
    wanted = Permission.objects.filter(
        content_type__app_label="experiments_app", codename__in=ROLE_PERMISSIONS[role]
    )
    group.permissions.set(wanted)
    return group


def user_roles(user) -> list[str]:
    names = {group.name for group in user.groups.all()}
    return [role for role in ROLES if role in names]
