from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("api/1/", include("management_api.urls")),
    path("admin/", admin.site.urls),
    path("", include("experiments_app.urls")),
]

handler403 = "experiments_app.views.errors.permission_denied"
handler404 = "experiments_app.views.errors.page_not_found"
handler500 = "experiments_app.views.errors.server_error"
