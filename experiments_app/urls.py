from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter

from experiments_app.views import changes, experiments, health, users


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
    path("experiments/new", changes.experiment_create, name="experiment_create"),
    path("experiments/<upstream_id:experiment_id>/edit", changes.experiment_edit, name="experiment_edit"),
    path("experiments/<upstream_id:experiment_id>/segments/new", changes.segment_edit, name="segment_add"),
    path("experiments/<upstream_id:experiment_id>/segments/<int:index>/edit", changes.segment_edit, name="segment_edit"),
    path("experiments/<upstream_id:experiment_id>/segments/<int:index>/remove", changes.segment_remove,
         name="segment_remove"),
    path("experiments/<upstream_id:experiment_id>/variants/new", changes.variant_edit, name="variant_add"),
    path("experiments/<upstream_id:experiment_id>/variants/<upstream_id:variant_key>/edit", changes.variant_edit,
         name="variant_edit"),
    path("experiments/<upstream_id:experiment_id>/variants/<upstream_id:variant_key>/remove", changes.variant_remove,
         name="variant_remove"),
    path("experiments/<upstream_id:experiment_id>/inclusions/edit", changes.inclusions_edit, name="inclusions_edit"),
    path("experiments/<upstream_id:experiment_id>/deployments/edit", changes.deployments_edit,
         name="deployments_edit"),
    path("approvals/", changes.approvals, name="approvals"),
    path("requests/<int:pk>/", changes.change_request_detail, name="change_request_detail"),
    path("requests/<int:pk>/approve", changes.change_request_approve, name="change_request_approve"),
    path("requests/<int:pk>/reject", changes.change_request_reject, name="change_request_reject"),
    path("requests/<int:pk>/cancel", changes.change_request_cancel, name="change_request_cancel"),
    path("requests/<int:pk>/comment", changes.change_request_comment, name="change_request_comment"),
    path("requests/<int:pk>/rebase", changes.change_request_rebase, name="change_request_rebase"),
    path("policy/", changes.policy, name="policy"),
    path("users/", users.user_list, name="users"),
    path("users/add", users.user_add, name="user_add"),
    path("users/<int:pk>/role", users.user_role, name="user_role"),
    path("users/<int:pk>/active", users.user_active, name="user_active"),
    path("bulk-jobs/", include("experiments_app.bulk.urls")),
    path("audit/", include("experiments_app.audit.urls")),
]
