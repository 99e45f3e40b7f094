from django.urls import path

from experiments_app.audit import views

urlpatterns = [
    path("", views.audit_list, name="audit"),
    path("<int:entry_id>/", views.audit_entry, name="audit_entry"),
    path("export.csv", views.audit_export_csv, name="audit_export_csv"),
    path("export.jsonl", views.audit_export_jsonl, name="audit_export_jsonl"),
]
