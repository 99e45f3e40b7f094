"""HTTP layer: one function view per path, dispatching on the method.

Every operation goes through ``api_endpoint``: 405 for a method the path does not have →
auth (401) → fault injection → experiment/deployment lookup (404, 403) → per-project rate
limit (429) → handler. Errors are JSON ``{"error": ..., "field": ...}``; successful writes
answer ``OK`` as text/plain.
"""

import functools
import json
import logging

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from . import selectors, services
from .auth import Caller, authenticate
from .errors import ApiError, bad_request, not_found
from .faults import choose_fault, drop_connection
from .models import Deployment, Experiment
from .openapi import openapi_schema, operations_for_docs
from .ratelimit import check_rate_limit
from .validation import parse_json_body

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def json_response(data, status: int = 200, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(data), content_type="application/json", status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def json_text_response(text: str) -> HttpResponse:
    return HttpResponse(text, content_type="application/json")


def ok() -> HttpResponse:
    return HttpResponse("OK", content_type="text/plain")


def _scope_project(request, caller: Caller, kwargs: dict, body_project: bool) -> str:
    """The project whose budget this request spends (and whose access it needs)."""
    if "experiment_id" in kwargs:
        experiment_id = selectors.parse_id(kwargs["experiment_id"], "id")
        project_id = Experiment.objects.filter(pk=experiment_id).values_list("project_id", flat=True).first()
        if project_id is None:
            raise not_found(f"experiment {kwargs['experiment_id']} not found", "id")
        if not caller.can_reach(project_id):
            raise ApiError(403, "this API key has no access to the experiment's project")
        kwargs["experiment_id"] = experiment_id
        return project_id
    if "deployment_id" in kwargs:
        deployment_id = selectors.parse_id(kwargs["deployment_id"], "id")
        project_id = Deployment.objects.filter(pk=deployment_id).values_list("project_id", flat=True).first()
        if project_id is None:
            raise not_found(f"deployment {kwargs['deployment_id']} not found", "id")
        if not caller.can_reach(project_id):
            raise ApiError(403, "this API key has no access to the deployment's project")
        kwargs["deployment_id"] = deployment_id
        return project_id
    if body_project and request.method == "POST":
        try:
            project_id = json.loads(request.body).get("projectId")
        except (ValueError, AttributeError):
            project_id = None
        if isinstance(project_id, (str, int)) and not isinstance(project_id, bool):
            project_id = str(project_id)
            if caller.can_reach(project_id) and len(project_id) <= 32:
                return project_id
    if request.method == "GET" and isinstance(request.GET.get("projectId"), str):
        project_id = request.GET["projectId"]
        if caller.can_reach(project_id) and len(project_id) <= 32:
            return project_id
    return caller.first_project_id or f"key-{caller.api_key_id}"


def api_endpoint(*methods: str, body_project: bool = False):
    def decorate(view):
        @login_not_required
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request, **kwargs):
            try:
                if request.method not in methods:
                    raise ApiError(405, f"method {request.method} not allowed", headers={"Allow": ", ".join(methods)})
                caller = authenticate(request)
                fault = choose_fault(request.method)
                if fault and fault[0] == "drop":
                    drop_connection(request)
                    return HttpResponse(status=503)
                check_rate_limit(_scope_project(request, caller, kwargs, body_project))
                response = view(request, caller, **kwargs)
                if fault and fault[0] == "drop_after":
                    drop_connection(request)
                return response
            except ApiError as error:
                return json_response(error.body(), status=error.status, headers=error.headers)
            except RequestDataTooBig:
                return json_response({"error": "request body is too large", "field": "body"}, status=400)
            except IntegrityError:
                logger.warning("management API write conflicted", exc_info=True)
                return json_response(
                    {"error": "the write conflicts with existing data (changed concurrently?); read and retry"}, status=400
                )
            except Exception:
                logger.exception("management API request failed: %s %s", request.method, request.path)
                return json_response({"error": "internal server error"}, status=500)

        return wrapper

    return decorate


def _limit_and_offset(request) -> tuple[int, int]:
    raw_limit = request.GET.get("limit")
    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise bad_request("must be an integer between 1 and 1000", "limit") from None
        if limit < 1:
            raise bad_request("must be an integer between 1 and 1000", "limit")
        limit = min(limit, MAX_LIMIT)
    raw_cursor = request.GET.get("cursor")
    offset = 0
    if raw_cursor not in (None, ""):
        if not raw_cursor.isdigit() or len(raw_cursor) > 12:
            raise bad_request("is not a cursor returned by this API", "cursor")
        offset = int(raw_cursor)
    return limit, offset


def _listing_projects(request, caller: Caller):
    project_id = request.GET.get("projectId")
    if project_id is None:
        return caller.project_ids
    if not caller.can_reach(project_id):
        raise ApiError(403, "this API key has no access to that project", field="projectId")
    return frozenset([project_id])


# --- Experiments -----------------------------------------------------------------------


@api_endpoint("GET", "POST", body_project=True)
def experiments_collection(request, caller: Caller):
    if request.method == "POST":
        experiment = services.experiment_create(body=parse_json_body(request), by=caller.name, project_ids=caller.project_ids)
        url = f"{_public_url()}/{experiment.project_id}/config/{experiment.id}"
        return json_response({"id": str(experiment.id), "url": url})
    limit, offset = _limit_and_offset(request)
    archived = request.GET.get("archived", "false").lower()
    if archived not in ("true", "false"):
        raise bad_request("must be true or false", "archived")
    documents, next_cursor = selectors.experiment_list_page(
        project_ids=_listing_projects(request, caller), limit=limit, offset=offset, include_archived=archived == "true"
    )
    return json_text_response(f'{{"experiments": [{", ".join(documents)}], "nextCursor": {json.dumps(next_cursor)}}}')


def _public_url() -> str:
    from django.conf import settings

    return (getattr(settings, "MANAGEMENT_API_PUBLIC_URL", "") or "http://experiment.localhost").rstrip("/")


@api_endpoint("GET", "PATCH")
def experiment_detail(request, caller: Caller, experiment_id: int):
    if request.method == "PATCH":
        services.experiment_edit(experiment_id=experiment_id, body=parse_json_body(request), by=caller.name)
        return ok()
    return json_text_response(selectors.experiment_document(experiment_id))


@api_endpoint("GET")
def experiment_versions(request, caller: Caller, experiment_id: int):
    return json_response(selectors.experiment_versions(selectors.experiment_loaded(experiment_id)))


@api_endpoint("GET")
def experiment_version(request, caller: Caller, experiment_id: int, version_id: str):
    return json_response(selectors.experiment_version(selectors.experiment_loaded(experiment_id), version_id))


@api_endpoint("GET", "POST")
def variants_collection(request, caller: Caller, experiment_id: int):
    if request.method == "POST":
        services.variant_create(experiment_id=experiment_id, body=parse_json_body(request), by=caller.name)
        return ok()
    return json_response(selectors.variant_list(selectors.experiment_loaded(experiment_id)))


@api_endpoint("GET", "PATCH", "DELETE")
def variant_detail(request, caller: Caller, experiment_id: int, variant_key: str):
    if request.method == "PATCH":
        services.variant_edit(
            experiment_id=experiment_id, variant_key=variant_key, body=parse_json_body(request), by=caller.name
        )
        return ok()
    if request.method == "DELETE":
        services.variant_remove(experiment_id=experiment_id, variant_key=variant_key, by=caller.name)
        return ok()
    return json_response(selectors.variant_detail(selectors.experiment_loaded(experiment_id), variant_key))


@api_endpoint("GET", "POST", "DELETE")
def variant_users(request, caller: Caller, experiment_id: int, variant_key: str):
    if request.method == "POST":
        services.inclusions_add(
            experiment_id=experiment_id, variant_key=variant_key, body=parse_json_body(request), by=caller.name
        )
        return ok()
    if request.method == "DELETE":
        services.inclusions_remove_all(experiment_id=experiment_id, variant_key=variant_key, by=caller.name)
        return ok()
    experiment = selectors.experiment_loaded(experiment_id)
    return json_response(selectors.variant_inclusions(selectors.variant_of(experiment, variant_key)))


@api_endpoint("DELETE")
def variant_user_at(request, caller: Caller, experiment_id: int, variant_key: str, user_index: str):
    services.inclusion_remove_at(experiment_id=experiment_id, variant_key=variant_key, raw_index=user_index, by=caller.name)
    return ok()


@api_endpoint("DELETE")
def variant_bulk_delete_users(request, caller: Caller, experiment_id: int, variant_key: str):
    services.inclusions_bulk_remove(
        experiment_id=experiment_id, variant_key=variant_key, body=parse_json_body(request), by=caller.name
    )
    return ok()


@api_endpoint("GET", "POST")
def experiment_deployments(request, caller: Caller, experiment_id: int):
    if request.method == "POST":
        services.experiment_deployments_add(experiment_id=experiment_id, body=parse_json_body(request), by=caller.name)
        return ok()
    return json_response(selectors.experiment_deployments(selectors.experiment_loaded(experiment_id)))


@api_endpoint("DELETE")
def experiment_deployment(request, caller: Caller, experiment_id: int, deployment_ref: str):
    services.experiment_deployment_remove(experiment_id=experiment_id, raw_deployment_id=deployment_ref, by=caller.name)
    return ok()


# --- Deployments -----------------------------------------------------------------------


@api_endpoint("GET", "POST", body_project=True)
def deployments_collection(request, caller: Caller):
    if request.method == "POST":
        deployment = services.deployment_create(body=parse_json_body(request), project_ids=caller.project_ids)
        return json_response({"id": str(deployment.id)})
    limit, offset = _limit_and_offset(request)
    deployments, next_cursor = selectors.deployment_list_page(
        project_ids=_listing_projects(request, caller), limit=limit, offset=offset
    )
    return json_response({"deployments": deployments, "nextCursor": next_cursor})


@api_endpoint("PATCH")
def deployment_detail(request, caller: Caller, deployment_id: int):
    services.deployment_edit(deployment_id=deployment_id, body=parse_json_body(request))
    return ok()


@login_not_required
@csrf_exempt
def unknown_path(request):
    """Anything else under /api/1/ answers a JSON 404, as API clients expect."""
    return json_response({"error": f"no such endpoint: {request.path}"}, status=404)


# --- Description -----------------------------------------------------------------------


@login_not_required
def openapi_json(request):
    return json_response(openapi_schema())


@login_not_required
def docs(request):
    return render(request, "management_api/docs.html", {"operations": operations_for_docs(), "schema": openapi_schema()})
