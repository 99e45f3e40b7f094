from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from experiments_app import roles


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
