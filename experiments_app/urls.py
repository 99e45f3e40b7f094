from django.contrib.auth import views as auth_views
from django.urls import path, register_converter

from experiments_app.views import experiments, health, pages


class UpstreamIdConverter:
    """Upstream ids and keys: letters, digits, '-', '_' and '.' only (they end up in upstream paths)."""

    regex = r"[A-Za-z0-9_.\-]{1,200}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(UpstreamIdConverter, "upstream_id")

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", health.healthz, name="healthz"),
    path("", experiments.experiment_list, name="home"),
    path("experiments/<upstream_id:experiment_id>/", experiments.experiment_detail, name="experiment_detail"),
    path("experiments/<upstream_id:experiment_id>/tabs/<slug:tab>", experiments.experiment_tab, name="experiment_tab"),
    path("experiments/<upstream_id:experiment_id>/versions/compare", experiments.version_compare,
         name="version_compare"),
    path("approvals/", pages.approvals, name="approvals"),
    path("bulk-jobs/", pages.bulk_jobs, name="bulk_jobs"),
    path("audit/", pages.audit, name="audit"),
]
