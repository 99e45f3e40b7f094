"""Demo logins for the embedded default (`make run`). Never used when DEBUG is off."""

DEMO_USERS = [
    # username, role, password
    ("viewer", "Viewer", "viewer-demo-pass"),
    ("editor", "Editor", "editor-demo-pass"),
    ("approver", "Approver", "approver-demo-pass"),
    ("approver2", "Approver", "approver2-demo-pass"),
    ("admin", "Admin", "admin-demo-pass"),
]
