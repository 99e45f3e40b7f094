"""The Users page (admins only): add users, change a user's role, deactivate or reactivate."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from experiments_app import forms, roles, users
from experiments_app.permissions import require_permission

PAGE = "experiments_app/users.html"


def _page(request, add_form=None, status: int = 200):
    rows = [(user, (roles.user_roles(user) or ["—"])[0])
            for user in get_user_model().objects.prefetch_related("groups").order_by("username")]
    return render(request, PAGE, {"rows": rows, "roles": roles.ROLES, "add_form": add_form or forms.UserAddForm()},
                  status=status)


@require_GET
@require_permission(roles.ADMINISTER)
def user_list(request):
    return _page(request)


@require_POST
@require_permission(roles.ADMINISTER)
def user_add(request):
    form = forms.UserAddForm(request.POST)
    if form.is_valid():
        try:
            user = users.user_add(actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)  # a dict of field errors lands on those fields
        else:
            messages.success(request, f"Added {user.get_username()} as {form.cleaned_data['role']}.")
            return redirect("users")
    return _page(request, form, status=400)


@require_POST
@require_permission(roles.ADMINISTER)
def user_role(request, pk: int):
    user = get_object_or_404(get_user_model(), pk=pk)
    form = forms.UserRoleForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("Choose one of the roles.")
        users.user_set_role(actor=request.user, user=user, role=form.cleaned_data["role"])
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"{user.get_username()} is now {form.cleaned_data['role']}.")
    return redirect("users")


@require_POST
@require_permission(roles.ADMINISTER)
def user_active(request, pk: int):
    user = get_object_or_404(get_user_model(), pk=pk)
    active = request.POST.get("active") == "1"
    try:
        users.user_set_active(actor=request.user, user=user, active=active)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"{user.get_username()} is {'active again' if active else 'deactivated'}.")
    return redirect("users")
