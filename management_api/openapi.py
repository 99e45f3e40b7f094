"""OpenAPI 3.1 description of the embedded Management API (served at /api/1/openapi.json)."""

import copy
import functools

from .validation import CONDITION_OPS, DEPLOYMENT_TYPES, EVALUATION_MODES, EXPERIMENT_TYPES, FILTER_OPS

STR = {"type": "string"}
NULLABLE_STR = {"type": ["string", "null"]}
WEIGHTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": STR, "field": STR},
    },
    "Condition": {
        "type": "object",
        "required": ["type", "prop", "op", "values"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "enum": ["property"]},
            "prop": {"type": "string", "minLength": 1, "description": "Prefix custom properties with gp:"},
            "op": {"type": "string", "enum": list(CONDITION_OPS)},
            "values": {"type": "array", "items": STR},
        },
    },
    "Segment": {
        "type": "object",
        "required": ["name", "conditions", "percentage", "rolloutWeights"],
        "additionalProperties": False,
        "properties": {
            "name": STR,
            "conditions": {"type": "array", "items": _ref("Condition")},
            "percentage": {"type": "number", "minimum": 0, "maximum": 100},
            "bucketingKey": {"type": "string", "minLength": 1},
            "rolloutWeights": WEIGHTS,
        },
    },
    "ExposureFilter": {
        "type": "object",
        "required": ["subprop_key", "subprop_op", "subprop_type", "subprop_value"],
        "additionalProperties": False,
        "properties": {
            "group_type": NULLABLE_STR,
            "subprop_key": NULLABLE_STR,
            "subprop_op": {"type": "string", "enum": list(FILTER_OPS)},
            "subprop_type": {"type": "string", "minLength": 1},
            "subprop_value": {"type": "array", "items": STR},
        },
    },
    "ExposureEvent": {
        "type": "object",
        "required": ["event_type"],
        "additionalProperties": False,
        "properties": {
            "event_type": {"type": "string", "minLength": 1},
            "filters": {"type": "array", "items": _ref("ExposureFilter")},
        },
    },
    "Experiment": {
        "type": "object",
        "required": [
            "id", "projectId", "deployments", "key", "name", "decision", "decisionReason", "description",
            "enabled", "evaluationMode", "bucketingKey", "bucketingSalt", "bucketingUnit", "variants",
            "rolledOutVariant", "rolloutPercentage", "rolloutWeights", "targetSegments", "stickyBucketing",
            "state", "startDate", "endDate", "experimentType", "deleted", "tags", "createdBy", "createdAt",
            "archived",
        ],
        "properties": {
            "id": STR,
            "projectId": STR,
            "deployments": {"type": "array", "items": STR},
            "key": STR,
            "name": STR,
            "decision": NULLABLE_STR,
            "decisionReason": NULLABLE_STR,
            "description": STR,
            "enabled": {"type": "boolean"},
            "evaluationMode": {"type": "string", "enum": list(EVALUATION_MODES)},
            "bucketingKey": STR,
            "bucketingSalt": STR,
            "bucketingUnit": STR,
            "variants": {
                "type": "array",
                "items": {"type": "object", "required": ["key"], "properties": {"key": STR}},
            },
            "rolledOutVariant": NULLABLE_STR,
            "rolloutPercentage": {"type": "number", "minimum": 0, "maximum": 100},
            "rolloutWeights": WEIGHTS,
            "targetSegments": {"type": "array", "items": _ref("Segment")},
            "stickyBucketing": {"type": "boolean"},
            "state": {"type": "string", "enum": ["planning", "running", "decision-made"]},
            "startDate": {"type": ["string", "null"], "description": "YYYY-MM-DD"},
            "endDate": {"type": ["string", "null"], "description": "YYYY-MM-DD"},
            "experimentType": {"type": "string", "enum": list(EXPERIMENT_TYPES)},
            "deleted": {"type": "boolean"},
            "archived": {"type": "boolean"},
            "tags": {"type": "array", "items": STR},
            "createdBy": STR,
            "createdAt": {"type": "string", "description": "ISO 8601, UTC"},
            "exposureEvent": {"oneOf": [{"type": "null"}, _ref("ExposureEvent")]},
        },
    },
    "ExperimentList": {
        "type": "object",
        "required": ["experiments"],
        "properties": {
            "experiments": {"type": "array", "items": _ref("Experiment")},
            "nextCursor": {"type": ["string", "null"], "description": "Absent or null on the last page"},
        },
    },
    "Version": {
        "type": "object",
        "required": ["createdAt", "createdBy", "version", "flagConfig"],
        "properties": {
            "createdAt": STR,
            "createdBy": STR,
            "version": {"type": "integer", "minimum": 1},
            "flagConfig": {"type": "object"},
        },
    },
    "Variant": {
        "type": "object",
        "required": ["key", "name", "payload", "description", "rolloutWeight"],
        "properties": {
            "key": STR,
            "name": STR,
            "payload": {"description": "Any JSON value"},
            "description": STR,
            "rolloutWeight": {"type": "integer", "minimum": 0},
        },
    },
    "Deployment": {
        "type": "object",
        "required": ["id", "projectId", "label", "key", "deleted"],
        "properties": {"id": STR, "projectId": STR, "label": STR, "key": STR, "deleted": {"type": "boolean"}},
    },
    "DeploymentList": {
        "type": "object",
        "required": ["deployments"],
        "properties": {
            "deployments": {"type": "array", "items": _ref("Deployment")},
            "nextCursor": {"type": ["string", "null"]},
        },
    },
    "VariantInput": {
        "type": "object",
        "required": ["key"],
        "additionalProperties": False,
        "properties": {
            "key": {"type": "string", "minLength": 1},
            "name": STR,
            "description": STR,
            "payload": {"description": "Any JSON value"},
        },
    },
    "ExperimentCreate": {
        "type": "object",
        "required": ["projectId", "key"],
        "additionalProperties": False,
        "properties": {
            "projectId": STR,
            "key": {"type": "string", "minLength": 1},
            "name": STR,
            "description": STR,
            "variants": {"type": "array", "minItems": 1, "items": _ref("VariantInput")},
            "bucketingKey": {"type": "string", "minLength": 1},
            "rolloutWeights": WEIGHTS,
            "targetSegments": {"type": "array", "items": _ref("Segment")},
            "deployments": {"type": "array", "items": STR},
            "evaluationMode": {"type": "string", "enum": list(EVALUATION_MODES)},
            "experimentType": {"type": "string", "enum": list(EXPERIMENT_TYPES)},
        },
    },
    "ExperimentEdit": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": STR,
            "description": STR,
            "bucketingKey": {"type": "string", "minLength": 1},
            "bucketingSalt": {"type": "string", "minLength": 1},
            "bucketingUnit": {"type": "string", "minLength": 1},
            "evaluationMode": {"type": "string", "enum": list(EVALUATION_MODES)},
            "rolloutPercentage": {"type": "number", "minimum": 0, "maximum": 100},
            "rolloutWeights": {**WEIGHTS, "description": "Extension: merge weights for existing variants"},
            "targetSegments": {"type": "array", "items": _ref("Segment"), "description": "Replaces all segments"},
            "enabled": {"type": "boolean"},
            "archive": {"type": "boolean"},
            "experimentType": {"type": "string", "enum": list(EXPERIMENT_TYPES)},
            "stickyBucketing": {"type": "boolean"},
            "startDate": {"type": ["string", "null"], "description": "ISO 8601 date or date-time"},
            "endDate": {"type": ["string", "null"], "description": "ISO 8601 date or date-time"},
            "exposureEvent": {"oneOf": [{"type": "null"}, _ref("ExposureEvent")]},
            "tags": {"type": "array", "items": STR, "description": "Replaces all tags"},
        },
    },
    "VariantCreate": {
        "type": "object",
        "required": ["key"],
        "additionalProperties": False,
        "properties": {
            "key": {"type": "string", "minLength": 1},
            "name": STR,
            "description": STR,
            "payload": {"description": "Any JSON value"},
            "rolloutWeight": {"type": "integer", "minimum": 0},
        },
    },
    "VariantEdit": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "key": {"type": "string", "minLength": 1},
            "name": STR,
            "description": STR,
            "payload": {"description": "Any JSON value"},
            "rolloutWeight": {"type": "integer", "minimum": 0},
        },
    },
    "InclusionsAdd": {
        "type": "object",
        "required": ["inclusions"],
        "additionalProperties": False,
        "properties": {
            "inclusions": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 256}}
        },
    },
    "BulkDeleteUsers": {
        "type": "object",
        "required": ["users"],
        "additionalProperties": False,
        "properties": {
            "users": {"type": "array", "maxItems": 100, "items": {"type": "string", "minLength": 1, "maxLength": 256}}
        },
    },
    "DeploymentsAdd": {
        "type": "object",
        "required": ["deployments"],
        "additionalProperties": False,
        "properties": {"deployments": {"type": "array", "items": STR}},
    },
    "DeploymentCreate": {
        "type": "object",
        "required": ["projectId", "label", "type"],
        "additionalProperties": False,
        "properties": {
            "projectId": STR,
            "label": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
            "type": {"type": "string", "enum": list(DEPLOYMENT_TYPES)},
        },
    },
    "DeploymentEdit": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"label": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}, "archive": {"type": "boolean"}},
    },
}


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


ERRORS = {
    "400": _error("Missing or invalid input; `field` names the culprit"),
    "401": _error("Missing, invalid or revoked API key"),
    "403": _error("The key has no access to the project"),
    "404": _error("Unknown experiment, variant, version or deployment"),
    "405": _error("Method not allowed on this path"),
    "429": {
        "description": "Rate limit exceeded (per project: per second and per UTC day)",
        "headers": {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait"}},
        "content": {"application/json": {"schema": _ref("Error")}},
    },
}
OK_TEXT = {"description": "Done", "content": {"text/plain": {"schema": {"type": "string", "enum": ["OK"]}}}}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _param(name: str, description: str, where: str = "path") -> dict:
    return {"name": name, "in": where, "required": where == "path", "description": description, "schema": STR}


ID = _param("id", "Experiment's id")
VARIANT_KEY = _param("variantKey", "Variant's key")
PAGING = [
    {"name": "limit", "in": "query", "required": False, "description": "Page size, 1–1000 (larger values are capped at 1000); default 100", "schema": {"type": "integer", "minimum": 1}},
    {"name": "cursor", "in": "query", "required": False, "description": "nextCursor of the previous page", "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"}},
    {"name": "projectId", "in": "query", "required": False, "description": "Only this project (default: every project the key reaches)", "schema": STR},
]


def _op(op_id: str, summary: str, params: list, ok: dict, body: str | None = None, statuses=("400", "401", "403", "404", "429")) -> dict:
    operation = {
        "operationId": op_id,
        "summary": summary,
        "parameters": params,
        "responses": {"200": ok, **{code: ERRORS[code] for code in statuses}},
    }
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return operation


PATHS = {
    "/api/1/experiments": {
        "get": _op(
            "listExperiments",
            "List experiments, newest first (archived ones only with archived=true)",
            PAGING + [{"name": "archived", "in": "query", "required": False, "description": "true: include archived experiments", "schema": {"type": "string", "enum": ["true", "false"]}}],
            _json(_ref("ExperimentList")),
        ),
        "post": _op(
            "createExperiment",
            "Create an experiment",
            [],
            _json({"type": "object", "required": ["id", "url"], "properties": {"id": STR, "url": STR}}),
            "ExperimentCreate",
        ),
    },
    "/api/1/experiments/{id}": {
        "get": _op("getExperiment", "Get an experiment's configuration", [ID], _json(_ref("Experiment"))),
        "patch": _op("editExperiment", "Edit an experiment", [ID], OK_TEXT, "ExperimentEdit"),
    },
    "/api/1/experiments/{id}/versions": {
        "get": _op("listVersions", "List versions, newest first", [ID], _json({"type": "array", "items": _ref("Version")})),
    },
    "/api/1/experiments/{id}/versions/{versionId}": {
        "get": _op("getVersion", "Get one version", [ID, _param("versionId", "The version number")], _json(_ref("Version"))),
    },
    "/api/1/experiments/{id}/variants": {
        "get": _op("listVariants", "List variants", [ID], _json({"type": "array", "items": _ref("Variant")})),
        "post": _op("createVariant", "Create a variant", [ID], OK_TEXT, "VariantCreate"),
    },
    "/api/1/experiments/{id}/variants/{variantKey}": {
        "get": _op("getVariant", "Get a variant", [ID, VARIANT_KEY], _json(_ref("Variant"))),
        "patch": _op("editVariant", "Edit a variant (a new key renames it everywhere)", [ID, VARIANT_KEY], OK_TEXT, "VariantEdit"),
        "delete": _op("removeVariant", "Remove a variant and its inclusions", [ID, VARIANT_KEY], OK_TEXT),
    },
    "/api/1/experiments/{id}/variants/{variantKey}/users": {
        "get": _op("getVariantInclusions", "Get a variant's inclusions, in the order they were added", [ID, VARIANT_KEY], _json({"type": "array", "items": STR})),
        "post": _op("addVariantInclusions", "Add inclusions (set semantics; at most 2,000 per variant)", [ID, VARIANT_KEY], OK_TEXT, "InclusionsAdd"),
        "delete": _op("removeAllVariantInclusions", "Remove all inclusions", [ID, VARIANT_KEY], OK_TEXT),
    },
    "/api/1/experiments/{id}/variants/{variantKey}/users/{userIndex}": {
        "delete": _op("removeVariantInclusion", "Remove the inclusion at a zero-based index", [ID, VARIANT_KEY, _param("userIndex", "Zero-based index")], OK_TEXT),
    },
    "/api/1/experiments/{id}/variants/{variantKey}/bulk-delete-users": {
        "delete": _op("bulkRemoveVariantInclusions", "Remove up to 100 inclusions by value (JSON body)", [ID, VARIANT_KEY], OK_TEXT, "BulkDeleteUsers"),
    },
    "/api/1/experiments/{id}/deployments": {
        "get": _op("listExperimentDeployments", "List an experiment's deployments", [ID], _json({"type": "array", "items": _ref("Deployment")})),
        "post": _op("addExperimentDeployments", "Add deployments to an experiment", [ID], OK_TEXT, "DeploymentsAdd"),
    },
    "/api/1/experiments/{id}/deployments/{deploymentId}": {
        "delete": _op("removeExperimentDeployment", "Remove a deployment from an experiment", [ID, _param("deploymentId", "Deployment's id")], OK_TEXT),
    },
    "/api/1/deployments": {
        "get": _op("listDeployments", "List deployments", PAGING, _json(_ref("DeploymentList"))),
        "post": _op("createDeployment", "Create a deployment", [], _json({"type": "object", "required": ["id"], "properties": {"id": STR}}), "DeploymentCreate"),
    },
    "/api/1/deployments/{id}": {
        "patch": _op("editDeployment", "Rename or archive a deployment", [_param("id", "Deployment's id")], OK_TEXT, "DeploymentEdit"),
    },
}


@functools.cache
def _schema() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Experiment Management API (embedded, Amplitude-compatible)",
            "version": "1",
            "description": (
                "Experiment endpoints of Amplitude's Management API plus deployments. Ids are strings; "
                "successful writes answer `OK` as text/plain. Rate limits per project: "
                "MANAGEMENT_API_RATE_PER_SECOND and MANAGEMENT_API_RATE_PER_DAY (429 + Retry-After)."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "Management API key"}},
            "schemas": SCHEMAS,
        },
    }


def openapi_schema() -> dict:
    return copy.deepcopy(_schema())


def operations_for_docs() -> list[dict]:
    operations = []
    for path, methods in PATHS.items():
        for method, operation in methods.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            body_name = body["$ref"].rsplit("/", 1)[-1] if body else None
            fields = []
            if body_name:
                schema = SCHEMAS[body_name]
                for name, prop in schema.get("properties", {}).items():
                    fields.append(
                        {
                            "name": name,
                            "required": name in schema.get("required", []),
                            "type": _type_label(prop),
                            "description": prop.get("description", ""),
                        }
                    )
            operations.append(
                {
                    "id": operation["operationId"],
                    "method": method.upper(),
                    "path": path,
                    "summary": operation["summary"],
                    "parameters": operation["parameters"],
                    "body": body_name,
                    "fields": fields,
                    "statuses": sorted(operation["responses"]),
                }
            )
    return operations


def _type_label(prop: dict) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "enum" in prop:
        return " | ".join(prop["enum"])
    kind = prop.get("type", "any JSON")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array":
        return f"array of {_type_label(prop.get('items', {}))}"
    return kind
