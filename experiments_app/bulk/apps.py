from django.apps import AppConfig


class BulkConfig(AppConfig):
    name = "experiments_app.bulk"
    label = "bulk"
    verbose_name = "Bulk inclusion jobs"

    def ready(self) -> None:
        from experiments_app.bulk.services import bulk_job_review_closed, start_bulk_job
        from experiments_app.change_requests import register_executor

        register_executor("bulk_job", start_bulk_job, closer=bulk_job_review_closed)
