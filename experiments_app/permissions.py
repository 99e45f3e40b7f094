from functools import wraps

from django.core.exceptions import PermissionDenied


def require_permission(permission: str):
    """403 for a signed-in user without `permission` (LoginRequiredMiddleware handles the rest)."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.has_perm(permission):
                raise PermissionDenied(f"Your role does not allow this ({permission.split('.')[-1]}).")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
