from django.contrib.auth import views as auth_views
from django.urls import path

from experiments_app.views import health, pages

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", health.healthz, name="healthz"),
    path("", pages.home, name="home"),
    path("approvals/", pages.approvals, name="approvals"),
    path("bulk-jobs/", pages.bulk_jobs, name="bulk_jobs"),
    path("audit/", pages.audit, name="audit"),
]
