"""The one HTTP client through which the portal talks to the Experiment Management API.

One ``requests.Session`` (pooled keep-alive connections) per process, a (connect, read)
timeout on every call, the shared rate budget (ratelimit.py) before every attempt, a log line
and a CallRecord after every attempt, and domain errors (errors.py) instead of ``requests``
exceptions.

When a call is repeated
-----------------------
Every repeat waits an exponential backoff with jitter (base ``UPSTREAM_BACKOFF_BASE_SECONDS``,
0.2 s, doubling up to 8 s) or at least the upstream's ``Retry-After`` (429, 503), and all
attempts of one call (read-backs included) fit in ``UPSTREAM_MAX_RETRY_SECONDS``. A 429 and a failure before the request left (connect
timeout, connection refused) are always repeated: the upstream did nothing. An *ambiguous*
failure -- read timeout, connection dropped after sending, a 5xx -- is handled per endpoint:

=================================  ======  ====================  ==========================================
endpoint                           method  after ambiguous fail  why
=================================  ======  ====================  ==========================================
list / get experiment(s)           GET     repeat                reads
list / get versions                GET     repeat                reads
list / get variant(s), inclusions  GET     repeat                reads
list deployments (exp. and all)    GET     repeat                reads
edit experiment                    PATCH   repeat                sets fields to given values; a repeat
                                                                 lands in the same state (the upstream may
                                                                 record one more version)
edit variant                       PATCH   repeat                same; when it renames the key, a 404 on the
                                                                 repeat is settled by reading the new key
remove variant                     DELETE  repeat                a 404 on a repeat means the first attempt
                                                                 removed it: success
add users to variant               POST    repeat                set semantics: adding a present id is a no-op
remove all users from variant      DELETE  repeat                the end state is the same
bulk remove users (<=100)          DELETE  repeat                removal by value: same end state
add deployments                    POST    repeat                set semantics
remove deployment                  DELETE  repeat                like remove variant (404 on repeat = done)
create experiment                  POST    read back, then       a repeat would duplicate: list the project's
                                           resend only if absent experiments and look for the key
create variant                     POST    read back, then       list the variants and look for the key
                                           resend only if absent
create deployment                  POST    read back, then       list deployments, look for the label in
                                           resend only if absent the project
remove user by index               DELETE  read back, then       the index shifts after each removal: re-read
                                           resend only if still  the inclusions and look for the expected user
                                           present               (resend at its current index); without an
                                                                 expected user, WriteOutcomeUnknown. With
                                                                 one, the index is also checked before the
                                                                 first send
=================================  ======  ====================  ==========================================

For the read-back writes a 400 that follows an ambiguous attempt (e.g. "key already exists",
because the first attempt did land) triggers one more read-back before it is believed. If the
read-back itself fails, the caller gets WriteOutcomeUnknown and must look before retrying.

Rate budget: calls to existing experiments count against the client's project
(``UPSTREAM_PROJECT_ID``); creates with an explicit ``project_id`` count against that one.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
import urllib3
from urllib3.exceptions import NewConnectionError

from .context import CallRecord, current_correlation_id, emit, ensure_correlation, new_correlation_id
from .errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    WriteOutcomeUnknown,
)
from .ratelimit import Budget, get_budget
from .types import Created, Deployment, Experiment, Page, UpstreamStatus, Variant, Version

logger = logging.getLogger("experiments_app.gateway")

USER_AGENT = "experiment-portal-gateway/1.0"
BACKOFF_BASE_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 8.0
BULK_DELETE_MAX = 100
LIST_PAGE_MAX = 1000

_retry_seconds_override: ContextVar[float | None] = ContextVar("gateway_retry_seconds", default=None)


@contextmanager
def retry_budget(seconds: float) -> Iterator[None]:
    """Let the calls made inside the block spend at most ``seconds`` on retries each, instead of
    ``UPSTREAM_MAX_RETRY_SECONDS`` -- for a web request that should fail fast, say."""
    token = _retry_seconds_override.set(float(seconds))
    try:
        yield
    finally:
        _retry_seconds_override.reset(token)


class _Ambiguous(Exception):
    """Internal: a non-repeatable write failed in a way that leaves its outcome unknown."""

    def __init__(self, error: UpstreamError):
        super().__init__(error.message)
        self.error = error


@dataclass
class _Outcome:
    body: Any = None
    error: UpstreamError | None = None
    sent: bool = True  # False when the request certainly never reached the upstream
    ambiguous: bool = False  # the upstream may have acted on it


def _seg(value: Any) -> str:
    return quote(str(value), safe="")


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """Whether a ConnectionError happened before any byte of the request left."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, NewConnectionError)


class GatewayClient:
    """A client for one upstream (base URL + management API key + default project)."""

    def __init__(self, *, base_url: str, api_key: str, project_id: str, connect_timeout: float = 3.05,
                 read_timeout: float = 15.0, max_retry_seconds: float = 30.0, budget: Budget | None = None,
                 backoff_base: float = BACKOFF_BASE_SECONDS, pool_maxsize: int = 16,
                 sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.project_id = str(project_id)
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.max_retry_seconds = float(max_retry_seconds)
        self.backoff_base = float(backoff_base)
        self.budget = budget or get_budget()
        self._api_key = api_key or ""
        self._sleep = sleep
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            "Authorization": f"Bearer {self._api_key}",
        })

    def __repr__(self) -> str:
        return f"<GatewayClient {self.base_url} project={self.project_id}>"

    @property
    def has_key(self) -> bool:
        return bool(self._api_key)

    def close(self) -> None:
        self._session.close()

    # ======================================================================================
    # Experiments
    # ======================================================================================
    def list_experiments(self, *, limit: int = 100, cursor: str | None = None,
                         archived: bool = False) -> Page[Experiment]:
        params: dict[str, Any] = {"limit": max(1, min(int(limit), LIST_PAGE_MAX))}
        if cursor:
            params["cursor"] = cursor
        if archived:  # the upstream leaves archived experiments out unless asked
            params["archived"] = "true"
        body = self._call("GET", "/api/1/experiments", params=params)
        return self._parse(lambda: self._page(body, "experiments", Experiment.from_api))

    def iter_experiments(self, *, page_size: int = LIST_PAGE_MAX, archived: bool = False) -> Iterator[Experiment]:
        cursor = None
        while True:
            page = self.list_experiments(limit=page_size, cursor=cursor, archived=archived)
            yield from page.items
            if not page.next_cursor or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    def get_experiment(self, experiment_id: str) -> Experiment:
        body = self._call("GET", f"/api/1/experiments/{_seg(experiment_id)}")
        return self._parse(lambda: Experiment.from_api(body))

    def create_experiment(self, *, key: str, project_id: str | None = None, **fields: Any) -> Created:
        """Create an experiment; ``fields`` are passed through in the API's camelCase."""
        project = str(project_id or self.project_id)
        payload = {**fields, "projectId": project, "key": key}

        def find() -> Created | None:
            for experiment in self.iter_experiments():
                if experiment.key == key and experiment.project_id == project:
                    return Created(id=experiment.id, url=None, raw=experiment.raw)
            return None

        with ensure_correlation():
            body, found = self._write_once("POST", "/api/1/experiments", json=payload, project_id=project,
                                           find=find, what=f"create experiment {key!r}")
        return found if found is not None else self._parse(lambda: Created.from_api(body))

    def update_experiment(self, experiment_id: str, fields: dict) -> None:
        """PATCH the experiment with ``fields`` (camelCase, as the API's Edit body)."""
        self._call("PATCH", f"/api/1/experiments/{_seg(experiment_id)}", json=dict(fields))

    # --- versions -------------------------------------------------------------------------
    def list_versions(self, experiment_id: str) -> list[Version]:
        body = self._call("GET", f"/api/1/experiments/{_seg(experiment_id)}/versions")
        return self._parse(lambda: [Version.from_api(v) for v in self._items(body, "versions")])

    def get_version(self, experiment_id: str, version: int | str) -> Version:
        body = self._call("GET", f"/api/1/experiments/{_seg(experiment_id)}/versions/{_seg(version)}")
        return self._parse(lambda: Version.from_api(body))

    # --- variants -------------------------------------------------------------------------
    def _variants_path(self, experiment_id: str, variant_key: str | None = None) -> str:
        path = f"/api/1/experiments/{_seg(experiment_id)}/variants"
        return path if variant_key is None else f"{path}/{_seg(variant_key)}"

    def list_variants(self, experiment_id: str) -> list[Variant]:
        body = self._call("GET", self._variants_path(experiment_id))
        return self._parse(lambda: [Variant.from_api(v) for v in self._items(body, "variants")])

    def get_variant(self, experiment_id: str, variant_key: str) -> Variant:
        body = self._call("GET", self._variants_path(experiment_id, variant_key))
        return self._parse(lambda: Variant.from_api(body))

    def create_variant(self, experiment_id: str, *, key: str, name: str | None = None,
                       description: str | None = None, payload: Any = None,
                       rollout_weight: float | int | None = None) -> None:
        body: dict[str, Any] = {"key": key}
        for name_, value in (("name", name), ("description", description), ("payload", payload),
                             ("rolloutWeight", rollout_weight)):
            if value is not None:
                body[name_] = value

        def find() -> bool | None:
            return True if any(v.key == key for v in self.list_variants(experiment_id)) else None

        with ensure_correlation():
            self._write_once("POST", self._variants_path(experiment_id), json=body, find=find,
                             what=f"create variant {key!r}")

    def update_variant(self, experiment_id: str, variant_key: str, fields: dict) -> None:
        new_key = fields.get("key")
        renamed = new_key is not None and str(new_key) != str(variant_key)

        def renamed_already() -> bool:
            try:
                self.get_variant(experiment_id, new_key)
            except NotFound:
                return False
            return True

        with ensure_correlation():
            self._call("PATCH", self._variants_path(experiment_id, variant_key), json=dict(fields),
                       settled_by_404_on_repeat=renamed_already if renamed else None)

    def delete_variant(self, experiment_id: str, variant_key: str) -> None:
        self._call("DELETE", self._variants_path(experiment_id, variant_key),
                   settled_by_404_on_repeat=lambda: True)

    # --- inclusions -----------------------------------------------------------------------
    def list_inclusions(self, experiment_id: str, variant_key: str) -> list[str]:
        body = self._call("GET", f"{self._variants_path(experiment_id, variant_key)}/users")
        return self._parse(lambda: [str(u) for u in self._items(body, "inclusions")])

    def add_inclusions(self, experiment_id: str, variant_key: str, ids: list[str]) -> None:
        self._call("POST", f"{self._variants_path(experiment_id, variant_key)}/users",
                   json={"inclusions": [str(i) for i in ids]})

    def remove_inclusion_at(self, experiment_id: str, variant_key: str, index: int, *,
                            expected_user: str | None = None) -> None:
        """Remove the inclusion at ``index``.

        Pass ``expected_user`` (the id you saw at that index): the gateway then first checks that
        the user is still there (indexes shift when others edit the list) and removes it at its
        current index, does nothing if it is already gone, and settles an ambiguous failure by
        reading back. Without it, an ambiguous failure raises WriteOutcomeUnknown.
        """
        index = int(index)
        path_of = lambda i: f"{self._variants_path(experiment_id, variant_key)}/users/{int(i)}"  # noqa: E731
        if expected_user is None:
            with ensure_correlation():
                self._write_once("DELETE", path_of(index), json=None, find=None, what=f"remove user #{index}")
            return
        expected = str(expected_user)
        current = {"index": index}

        def gone() -> bool | None:
            users = self.list_inclusions(experiment_id, variant_key)
            if expected not in users:
                return True
            current["index"] = index if index < len(users) and users[index] == expected else users.index(expected)
            return None

        with ensure_correlation():
            if gone():
                logger.info("upstream: %r is no longer included in variant %r; nothing to remove",
                            expected, variant_key)
                return
            self._write_once("DELETE", lambda: path_of(current["index"]), json=None, find=gone,
                             what=f"remove user {expected!r}")

    def remove_all_inclusions(self, experiment_id: str, variant_key: str) -> None:
        self._call("DELETE", f"{self._variants_path(experiment_id, variant_key)}/users")

    def bulk_remove_inclusions(self, experiment_id: str, variant_key: str, ids: list[str]) -> None:
        if len(ids) > BULK_DELETE_MAX:
            raise ValueError(f"bulk remove takes at most {BULK_DELETE_MAX} ids per call, got {len(ids)}")
        if not ids:
            return
        self._call("DELETE", f"{self._variants_path(experiment_id, variant_key)}/bulk-delete-users",
                   json={"users": [str(i) for i in ids]})

    # --- an experiment's deployments ------------------------------------------------------
    def list_experiment_deployments(self, experiment_id: str) -> list[Deployment]:
        body = self._call("GET", f"/api/1/experiments/{_seg(experiment_id)}/deployments")
        return self._parse(lambda: [Deployment.from_api(d) for d in self._items(body, "deployments")])

    def add_deployments(self, experiment_id: str, deployment_ids: list[str]) -> None:
        self._call("POST", f"/api/1/experiments/{_seg(experiment_id)}/deployments",
                   json={"deployments": [str(d) for d in deployment_ids]})

    def remove_deployment(self, experiment_id: str, deployment_id: str) -> None:
        self._call("DELETE", f"/api/1/experiments/{_seg(experiment_id)}/deployments/{_seg(deployment_id)}",
                   settled_by_404_on_repeat=lambda: True)

    # ======================================================================================
    # Deployments
    # ======================================================================================
    def list_deployments(self, *, limit: int = LIST_PAGE_MAX) -> Iterator[Deployment]:
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": max(1, min(int(limit), LIST_PAGE_MAX))}
            if cursor:
                params["cursor"] = cursor
            body = self._call("GET", "/api/1/deployments", params=params)
            page = self._parse(lambda: self._page(body, "deployments", Deployment.from_api))
            yield from page.items
            if not page.next_cursor or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    def create_deployment(self, *, label: str, type: str = "client", project_id: str | None = None) -> Created:
        project = str(project_id or self.project_id)

        def find() -> Created | None:
            for deployment in self.list_deployments():
                if deployment.label == label and deployment.project_id == project and not deployment.deleted:
                    return Created(id=deployment.id, url=None, raw=deployment.raw)
            return None

        with ensure_correlation():
            body, found = self._write_once("POST", "/api/1/deployments",
                                           json={"projectId": project, "label": label, "type": type},
                                           project_id=project, find=find, what=f"create deployment {label!r}")
        return found if found is not None else self._parse(lambda: Created.from_api(body))

    # ======================================================================================
    # Health and budget
    # ======================================================================================
    def budget_remaining(self, project_id: str | None = None) -> int:
        return self.budget.remaining(str(project_id or self.project_id))

    def budget_reserve_check(self, project_id: str | None, calls: int) -> bool:
        return self.budget.reserve_check(str(project_id or self.project_id), calls)

    def check(self, *, max_retry_seconds: float = 3.0) -> UpstreamStatus:
        """Whether the upstream answers and accepts the key; what it lets the key see."""
        deployments: list[Deployment] = []
        project_ids: set[str] = set()
        if not self._api_key:
            ok, detail = False, "no management API key is configured (UPSTREAM_API_KEY)"
        else:
            try:
                with retry_budget(max_retry_seconds), ensure_correlation():
                    deployments = list(self.list_deployments())
                    experiments = self.list_experiments(limit=LIST_PAGE_MAX)
                project_ids = {d.project_id for d in deployments if d.project_id}
                project_ids |= {e.project_id for e in experiments.items if e.project_id}
                ok = True
                detail = (f"the key works: {len(deployments)} deployment(s), "
                          f"{len(experiments.items)}{'+' if experiments.next_cursor else ''} experiment(s) visible")
            except Unauthorized:
                ok, detail = False, "the management API key was rejected (401)"
            except Forbidden:
                ok, detail = False, "the management API key has no access (403)"
            except UpstreamError as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc.message}"
        return UpstreamStatus(base_url=self.base_url, ok=ok, detail=detail, project_ids=sorted(project_ids),
                              deployments=deployments, budget_remaining=self.budget_remaining())

    # ======================================================================================
    # The machinery
    # ======================================================================================
    def _deadline(self) -> float:
        seconds = _retry_seconds_override.get()
        return time.monotonic() + (self.max_retry_seconds if seconds is None else seconds)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(BACKOFF_CAP_SECONDS, self.backoff_base * 2 ** max(0, attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _call(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
              repeatable: bool = True, project_id: str | None = None, deadline: float | None = None,
              settled_by_404_on_repeat: Callable[[], bool] | None = None) -> Any:
        """Send one logical request, repeating it as the retry table allows; return its body.

        With ``repeatable=False`` an ambiguous failure raises _Ambiguous for the caller to settle.
        """
        project = str(project_id or self.project_id)
        deadline = deadline or self._deadline()
        attempt = 0
        maybe_applied = False  # an earlier attempt may have reached the upstream and acted
        with ensure_correlation():
            while True:
                attempt += 1
                outcome = self._attempt(method, path, params=params, json=json, attempt=attempt,
                                        project=project, deadline=deadline)
                error = outcome.error
                if error is None:
                    return outcome.body
                if isinstance(error, NotFound) and maybe_applied and settled_by_404_on_repeat is not None:
                    if settled_by_404_on_repeat():
                        return None
                if isinstance(error, RateLimited) or not outcome.sent:
                    wait = error.retry_after if error.retry_after is not None else self._backoff(attempt)
                    wait += random.uniform(0, 0.05)
                elif outcome.ambiguous:
                    if not repeatable:
                        raise _Ambiguous(error)
                    maybe_applied = True
                    wait = max(self._backoff(attempt), error.retry_after or 0.0)
                else:
                    raise error
                if time.monotonic() + wait > deadline:
                    raise error
                self._sleep(wait)

    def _write_once(self, method: str, path: str | Callable[[], str], *, json: Any,
                    find: Callable[[], Any] | None, what: str, project_id: str | None = None) -> tuple[Any, Any]:
        """A write that must not be blindly repeated. Returns (body, None) when the upstream
        answered, or (None, found) when a read-back (``find``) showed that it had happened."""
        deadline = self._deadline()
        rounds = 0
        maybe_applied = False
        while True:
            rounds += 1
            current_path = path() if callable(path) else path
            error: UpstreamError | None = None
            try:
                return self._call(method, current_path, json=json, repeatable=False, project_id=project_id,
                                  deadline=deadline), None
            except _Ambiguous as ambiguous:
                error = ambiguous.error
            except InvalidInput as invalid:
                if not maybe_applied or find is None:
                    raise
                error = invalid  # e.g. "already exists" because the earlier attempt landed after all
            maybe_applied = True
            if find is None:
                raise WriteOutcomeUnknown(f"Could not confirm whether '{what}' happened ({error.message}); "
                                          "check before trying again.", status=error.status)
            # Give an attempt that is still in flight upstream a moment to land before looking.
            pause = max(self._backoff(rounds), error.retry_after or 0.0)
            if time.monotonic() + pause < deadline:
                self._sleep(pause)
            found = None
            lookup_failed: UpstreamError | None = None
            try:
                found = find()
            except UpstreamError as exc:
                lookup_failed = exc
            if lookup_failed is not None:
                raise WriteOutcomeUnknown(f"Could not confirm whether '{what}' happened: reading back failed "
                                          f"({lookup_failed.message}).", status=error.status)
            if found is not None:
                logger.info("upstream write settled by read-back: %s happened (correlation_id=%s)",
                            what, current_correlation_id())
                return None, found
            if isinstance(error, InvalidInput):
                raise error
            if time.monotonic() >= deadline:
                raise error
            logger.info("upstream write settled by read-back: %s did not happen; sending again (correlation_id=%s)",
                        what, current_correlation_id())

    def _attempt(self, method: str, path: str, *, params: dict | None, json: Any, attempt: int,
                 project: str, deadline: float) -> _Outcome:
        self.budget.acquire(project, deadline=deadline)
        cid = current_correlation_id() or new_correlation_id()
        url = self.base_url + path
        failure: str | None = None
        sent = True
        response: requests.Response | None = None
        started = time.perf_counter()
        try:
            response = self._session.request(method, url, params=params, json=json, timeout=self.timeout,
                                             allow_redirects=False)
        except requests.exceptions.ConnectionError as exc:  # includes ConnectTimeout
            failure, sent = type(exc).__name__, not _never_sent(exc)
        except requests.exceptions.Timeout as exc:
            failure = type(exc).__name__
        except requests.exceptions.RequestException as exc:  # e.g. the body broke off mid-way
            failure = type(exc).__name__
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:  # leaked past requests
            failure = type(exc).__name__
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        status = response.status_code if response is not None else None
        self._log(CallRecord(method=method, path=path, status=status, latency_ms=latency_ms, attempt=attempt,
                             correlation_id=cid, error=failure))

        if response is None:
            if failure in ("ConnectTimeout", "ReadTimeout", "Timeout"):
                err: UpstreamError = UpstreamTimeout(
                    f"The experiment service did not answer within {self.timeout[0] if not sent else self.timeout[1]}s "
                    f"({method} {path}).")
            elif failure in ("InvalidURL", "MissingSchema", "InvalidSchema", "InvalidHeader", "URLRequired"):
                return _Outcome(error=UpstreamUnavailable(f"The upstream URL is not usable ({failure})."))
            else:
                err = UpstreamUnavailable(f"Could not reach the experiment service ({failure}, {method} {path}).")
            return _Outcome(error=err, sent=sent, ambiguous=sent)
        return self._interpret(response, method, path)

    def _interpret(self, response: requests.Response, method: str, path: str) -> _Outcome:
        status = response.status_code
        if 200 <= status < 300:
            body = self._body(response)
            return _Outcome(body=body)
        message, field = self._error_message(response)
        retry_after = _parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            return _Outcome(error=RateLimited(message or None, status=status, retry_after=retry_after))
        if status >= 500:
            return _Outcome(error=UpstreamUnavailable(message or f"The experiment service failed ({status}).",
                                                      status=status, retry_after=retry_after), ambiguous=True)
        error_class = {401: Unauthorized, 403: Forbidden, 404: NotFound}.get(status)
        if error_class is not None:
            return _Outcome(error=error_class(message or None, status=status))
        if status in (400, 409, 413, 422):
            return _Outcome(error=InvalidInput(message or None, field=field, status=status))
        return _Outcome(error=UpstreamError(message or f"Unexpected answer {status} to {method} {path}.",
                                            status=status))

    def _body(self, response: requests.Response) -> Any:
        content_type = response.headers.get("Content-Type", "")
        if "json" in content_type:
            try:
                return response.json()
            except ValueError:
                pass
        text = response.text
        if text.strip().startswith(("{", "[")):
            try:
                return response.json()
            except ValueError:
                pass
        return text

    def _error_message(self, response: requests.Response) -> tuple[str, str | None]:
        field = None
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if isinstance(body, dict):
            field = body.get("field") or body.get("param")
            message = body.get("message") or body.get("error") or body.get("detail") or body.get("errors") or ""
            if isinstance(message, dict):
                if field is None and len(message) == 1:
                    field = next(iter(message))
                message = "; ".join(f"{k}: {v}" for k, v in message.items())
            elif isinstance(message, list):
                message = "; ".join(str(m) for m in message)
        else:  # plain text is worth showing; an HTML error page from a proxy is not
            text = str(body or "").strip()
            message = text if len(text) <= 300 and "<" not in text else ""
        message = str(message).strip()[:500]
        if field and str(field) not in message:
            message = f"{field}: {message}"  # the upstream says "is required" and names the field apart
        return self._redact(message), (str(field) if field else None)

    def _redact(self, text: str) -> str:
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "[redacted]")
        return text

    def _log(self, record: CallRecord) -> None:
        emit(record)
        level = logging.INFO if record.status is not None and record.status < 400 else logging.WARNING
        logger.log(level, "upstream %s %s status=%s latency_ms=%s attempt=%d correlation_id=%s%s",
                   record.method, record.path, record.status if record.status is not None else "-",
                   record.latency_ms, record.attempt, record.correlation_id,
                   f" error={record.error}" if record.error else "",
                   extra={"upstream_method": record.method, "upstream_path": record.path,
                          "upstream_status": record.status, "latency_ms": record.latency_ms,
                          "attempt": record.attempt, "correlation_id": record.correlation_id})

    @staticmethod
    def _items(body: Any, name: str) -> list:
        if isinstance(body, dict):
            body = body.get(name, [])
        if not isinstance(body, list):
            raise ValueError(f"expected a list of {name}")
        return body

    @classmethod
    def _page(cls, body: Any, name: str, build: Callable[[dict], Any]) -> Page:
        items = [build(item) for item in cls._items(body, name)]
        cursor = body.get("nextCursor") if isinstance(body, dict) else None
        return Page(items=items, next_cursor=None if cursor in (None, "") else str(cursor))

    @staticmethod
    def _parse(build: Callable[[], Any]) -> Any:
        problem = None
        try:
            return build()
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            problem = str(exc)[:200]
        raise UpstreamUnavailable(f"The experiment service sent an answer the portal cannot read ({problem}).")


_client: GatewayClient | None = None
_client_lock = threading.Lock()


def build_client_from_settings() -> GatewayClient:
    from django.conf import settings

    return GatewayClient(
        base_url=settings.UPSTREAM_BASE_URL,
        api_key=getattr(settings, "UPSTREAM_API_KEY", ""),
        project_id=str(getattr(settings, "UPSTREAM_PROJECT_ID", "100001")),
        connect_timeout=float(getattr(settings, "UPSTREAM_CONNECT_TIMEOUT", 3.05)),
        read_timeout=float(getattr(settings, "UPSTREAM_READ_TIMEOUT", 15.0)),
        max_retry_seconds=float(getattr(settings, "UPSTREAM_MAX_RETRY_SECONDS", 30.0)),
        backoff_base=float(getattr(settings, "UPSTREAM_BACKOFF_BASE_SECONDS", BACKOFF_BASE_SECONDS)),
        budget=get_budget(),
    )


def get_client() -> GatewayClient:
    """The process-wide client built from settings."""
    global _client
    with _client_lock:
        if _client is None:
            _client = build_client_from_settings()
        return _client


def _forget_after_fork() -> None:
    """A forked child (a prefork Celery worker, a gunicorn worker) must not share the parent's
    pooled sockets or a lock the parent held: it builds its own client on first use."""
    global _client, _client_lock
    _client = None
    _client_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def reset_client() -> None:
    """Forget the process-wide client and budget (after settings change, in tests)."""
    global _client
    from .ratelimit import reset_budget

    with _client_lock:
        if _client is not None:
            _client.close()
        _client = None
    reset_budget()
