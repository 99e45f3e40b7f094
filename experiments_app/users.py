"""Portal users: each holds exactly one role. Admins manage them on the Users page; every
change is recorded in the audit log (role changes by the groups signal, named after the admin)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from experiments_app import roles
from experiments_app.audit import actions
from experiments_app.audit.services import audit_acting_as, audit_record


@transaction.atomic
def user_create(*, username: str, role: str, password: str, email: str = "", validate: bool = True):
    """A user holding exactly one role. Demo users skip password validation (validate=False)."""
    if role not in roles.ROLES:
        raise ValueError(f"Unknown role {role!r}; choose one of {', '.join(roles.ROLES)}")
    user_model = get_user_model()
    user = user_model(username=username, email=email, is_staff=role == "Admin")
    if validate:
        validate_password(password, user)
    user.set_password(password)
    user.save()
    user.groups.set([roles.role_group(role)])
    return user


def _require_admin(actor) -> None:
    if not actor.has_perm(roles.ADMINISTER):
        raise PermissionDenied("Only admins can manage users.")


def _other_active_admins(user) -> bool:
    return get_user_model().objects.filter(is_active=True, groups__name="Admin").exclude(pk=user.pk).exists()


def user_add(*, actor, username: str, email: str, role: str, password: str):
    """An admin adds a user (the password must pass the password validators)."""
    _require_admin(actor)
    if get_user_model().objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": f"A user named {username!r} already exists."})
    try:
        validate_password(password, get_user_model()(username=username, email=email))
    except ValidationError as error:
        raise ValidationError({"password": error.messages}) from None
    with transaction.atomic(), audit_acting_as(actor):
        user = user_create(username=username, role=role, password=password, email=email, validate=False)
        audit_record(action=actions.USER_CREATED, actor=actor, detail={"user": username, "role": role})
    return user


def user_set_role(*, actor, user, role: str):
    _require_admin(actor)
    if role not in roles.ROLES:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    if role != "Admin" and "Admin" in roles.user_roles(user) and not _other_active_admins(user):
        raise ValidationError(f"{user.get_username()} is the last active admin: make someone else admin first.")
    with transaction.atomic(), audit_acting_as(actor):
        user.groups.set([roles.role_group(role)])
        user.is_staff = role == "Admin"
        user.save(update_fields=["is_staff"])
    return user


def user_set_active(*, actor, user, active: bool):
    """Deactivate (they can no longer sign in; their open sessions stop working) or reactivate."""
    _require_admin(actor)
    if not active and user == actor:
        raise ValidationError("You cannot deactivate yourself.")
    if not active and "Admin" in roles.user_roles(user) and not _other_active_admins(user):
        raise ValidationError(f"{user.get_username()} is the last active admin.")
    with transaction.atomic():
        user.is_active = active
        user.save(update_fields=["is_active"])
        audit_record(action=actions.USER_REACTIVATED if active else actions.USER_DEACTIVATED, actor=actor,
                     detail={"user": user.get_username()})
    return user
