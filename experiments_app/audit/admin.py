from django.contrib import admin

from experiments_app.audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: audit entries are never added, changed or deleted by hand."""

    list_display = ("id", "created_at", "action", "actor_label", "experiment_key", "sequence")
    list_filter = ("action",)
    search_fields = ("experiment_id", "experiment_key", "actor_label", "correlation_id")
    show_full_result_count = False
    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
