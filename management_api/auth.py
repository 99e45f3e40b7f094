"""Management API keys: ``Authorization: Bearer <key>``.

Keys are 43 random url-safe characters after a ``mapi_`` marker; only their sha256 is stored
(high-entropy keys need no slow hash), with the first 12 characters kept as a prefix so that a
person can name a key without knowing it. A key reaches the projects it lists, or every
project when ``all_projects`` is set.
"""

import hashlib
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .errors import ApiError
from .models import ApiKey, Project

KEY_MARKER = "mapi_"
PREFIX_LENGTH = 12


@dataclass(frozen=True)
class Caller:
    api_key_id: int
    name: str
    project_ids: frozenset[str] | None  # None: every project
    first_project_id: str | None

    def can_reach(self, project_id: str) -> bool:
        return self.project_ids is None or project_id in self.project_ids


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(*, name: str, project_ids: list[str] = (), all_projects: bool = False) -> tuple[ApiKey, str]:
    """Create a key; projects named that do not exist yet are created. Returns (row, raw key)."""
    raw_key = KEY_MARKER + secrets.token_urlsafe(32)
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            name=name, prefix=raw_key[:PREFIX_LENGTH], key_hash=hash_key(raw_key), all_projects=all_projects
        )
        projects = [Project.objects.get_or_create(id=pid, defaults={"name": f"Project {pid}"})[0] for pid in project_ids]
        api_key.projects.set(projects)
    return api_key, raw_key


def api_key_revoke(*, name_or_prefix: str) -> int:
    """Revoke every active key with that name, or the key with that prefix; returns how many."""
    active = ApiKey.objects.filter(revoked_at__isnull=True)
    by_name = active.filter(name=name_or_prefix)
    if by_name.exists():
        return by_name.update(revoked_at=timezone.now())
    if len(name_or_prefix) >= 8:
        by_prefix = active.filter(prefix__startswith=name_or_prefix[:PREFIX_LENGTH])
        if len(name_or_prefix) > PREFIX_LENGTH:
            by_prefix = by_prefix.filter(key_hash=hash_key(name_or_prefix))
        if by_prefix.count() == 1:
            return by_prefix.update(revoked_at=timezone.now())
    return 0


def authenticate(request) -> Caller:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "missing management API key (Authorization: Bearer <key>)", headers={"WWW-Authenticate": "Bearer"})
    api_key = ApiKey.objects.filter(key_hash=hash_key(token), revoked_at__isnull=True).first()
    if api_key is None:
        raise ApiError(401, "invalid or revoked management API key", headers={"WWW-Authenticate": "Bearer"})
    if api_key.all_projects:
        project_ids = None
        first = Project.objects.order_by("id").values_list("id", flat=True).first()
    else:
        ordered = list(api_key.projects.order_by("id").values_list("id", flat=True))
        project_ids = frozenset(ordered)
        first = ordered[0] if ordered else None
    return Caller(api_key_id=api_key.id, name=api_key.name, project_ids=project_ids, first_project_id=first)
