from django.urls import path

from experiments_app.bulk import views

urlpatterns = [
    path("", views.job_list, name="bulk_jobs"),
    path("new/", views.job_new, name="bulk_job_new"),
    path("<int:job_id>/", views.job_detail, name="bulk_job_detail"),
    path("<int:job_id>/progress", views.job_progress, name="bulk_job_progress"),
    path("<int:job_id>/submit", views.job_submit, name="bulk_job_submit"),
    path("<int:job_id>/revise", views.job_revise, name="bulk_job_revise"),
    path("<int:job_id>/cancel", views.job_cancel, name="bulk_job_cancel"),
    path("<int:job_id>/undo", views.job_undo, name="bulk_job_undo"),
    path("<int:job_id>/report.csv", views.job_report, name="bulk_job_report"),
]
