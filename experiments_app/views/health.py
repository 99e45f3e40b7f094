from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from experiments_app import health


@login_not_required
@never_cache
@require_GET
def healthz(request):
    report = health.health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)
