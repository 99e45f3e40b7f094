from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "experiments_app.audit"
    label = "audit"
    verbose_name = "Audit history"

    def ready(self) -> None:
        from experiments_app.audit import signals  # noqa: F401  (connects the auth-event receivers)
