from django.shortcuts import render

from experiments_app import roles
from experiments_app.permissions import require_permission


@require_permission(roles.VIEW)
def audit(request):
    return render(request, "experiments_app/not_yet.html", {"title": "Audit"})
