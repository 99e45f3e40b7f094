from django.db import models


class Access(models.Model):
    """Holds the portal's own permissions; roles (groups) are bundles of them.

    It has no table: the permissions belong to no single model, so they hang off this one.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_portal", "Can view experiments, requests, jobs and history"),
            ("request_change", "Can create change requests and bulk jobs"),
            ("approve_change", "Can review other people's change requests"),
            ("administer_portal", "Can manage policy, users and keys"),
        ]
