from django.urls import re_path

from . import views

app_name = "management_api"

EXPERIMENT = r"^experiments/(?P<experiment_id>[^/]+)"
VARIANT = EXPERIMENT + r"/variants/(?P<variant_key>[^/]+)"

urlpatterns = [
    re_path(r"^openapi\.json$", views.openapi_json, name="openapi"),
    re_path(r"^docs/?$", views.docs, name="docs"),
    re_path(r"^experiments/?$", views.experiments_collection, name="experiments"),
    re_path(EXPERIMENT + r"/?$", views.experiment_detail, name="experiment"),
    re_path(EXPERIMENT + r"/versions/?$", views.experiment_versions, name="versions"),
    re_path(EXPERIMENT + r"/versions/(?P<version_id>[^/]+)/?$", views.experiment_version, name="version"),
    re_path(EXPERIMENT + r"/variants/?$", views.variants_collection, name="variants"),
    re_path(VARIANT + r"/?$", views.variant_detail, name="variant"),
    re_path(VARIANT + r"/users/?$", views.variant_users, name="variant-users"),
    re_path(VARIANT + r"/users/(?P<user_index>[^/]+)/?$", views.variant_user_at, name="variant-user"),
    re_path(VARIANT + r"/bulk-delete-users/?$", views.variant_bulk_delete_users, name="variant-bulk-delete"),
    re_path(EXPERIMENT + r"/deployments/?$", views.experiment_deployments, name="experiment-deployments"),
    re_path(
        EXPERIMENT + r"/deployments/(?P<deployment_ref>[^/]+)/?$",
        views.experiment_deployment,
        name="experiment-deployment",
    ),
    re_path(r"^deployments/?$", views.deployments_collection, name="deployments"),
    re_path(r"^deployments/(?P<deployment_id>[^/]+)/?$", views.deployment_detail, name="deployment"),
    re_path(r"^", views.unknown_path),
]
