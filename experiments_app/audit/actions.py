"""The actions an audit entry can record: "<subject>.<verb>" strings, stable once written."""

CHANGE_REQUEST_CREATED = "change_request.created"
CHANGE_REQUEST_EDITED = "change_request.edited"
CHANGE_REQUEST_APPROVED = "change_request.approved"
CHANGE_REQUEST_REJECTED = "change_request.rejected"
CHANGE_REQUEST_CANCELLED = "change_request.cancelled"
CHANGE_REQUEST_EXPIRED = "change_request.expired"
CHANGE_REQUEST_CONFLICTED = "change_request.conflicted"
CHANGE_REQUEST_APPLIED = "change_request.applied"
CHANGE_REQUEST_FAILED = "change_request.failed"
CHANGE_REQUEST_COMMENTED = "change_request.commented"

BULK_JOB_QUEUED = "bulk_job.queued"
BULK_JOB_PROGRESSED = "bulk_job.progressed"
BULK_JOB_FINISHED = "bulk_job.finished"
BULK_JOB_CANCELLED = "bulk_job.cancelled"
BULK_JOB_UNDONE = "bulk_job.undone"

POLICY_CHANGED = "policy.changed"
ROLE_CHANGED = "role.changed"
USER_CREATED = "user.created"
USER_DEACTIVATED = "user.deactivated"
USER_REACTIVATED = "user.reactivated"
API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"
LOGIN = "auth.login"
LOGIN_FAILED = "auth.login_failed"

EXTERNAL_CHANGE = "upstream.external_change"

LABELS: dict[str, str] = {
    CHANGE_REQUEST_CREATED: "Change request created",
    CHANGE_REQUEST_EDITED: "Change request edited",
    CHANGE_REQUEST_APPROVED: "Change request approved",
    CHANGE_REQUEST_REJECTED: "Change request rejected",
    CHANGE_REQUEST_CANCELLED: "Change request cancelled",
    CHANGE_REQUEST_EXPIRED: "Change request expired",
    CHANGE_REQUEST_CONFLICTED: "Change request conflicted",
    CHANGE_REQUEST_APPLIED: "Change request applied",
    CHANGE_REQUEST_FAILED: "Change request failed",
    CHANGE_REQUEST_COMMENTED: "Change request commented",
    BULK_JOB_QUEUED: "Bulk job queued",
    BULK_JOB_PROGRESSED: "Bulk job progressed",
    BULK_JOB_FINISHED: "Bulk job finished",
    BULK_JOB_CANCELLED: "Bulk job cancelled",
    BULK_JOB_UNDONE: "Bulk job undone",
    POLICY_CHANGED: "Policy changed",
    ROLE_CHANGED: "Role changed",
    USER_CREATED: "User created",
    USER_DEACTIVATED: "User deactivated",
    USER_REACTIVATED: "User reactivated",
    API_KEY_CREATED: "API key created",
    API_KEY_REVOKED: "API key revoked",
    LOGIN: "Signed in",
    LOGIN_FAILED: "Failed sign-in",
    EXTERNAL_CHANGE: "Changed outside the portal",
}
ALL = list(LABELS)


def label(action: str) -> str:
    return LABELS.get(action, action)
