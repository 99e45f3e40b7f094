"""Input validation: every problem becomes a 400 naming the field (``ApiError``).

Validators take the decoded JSON and return clean Python values; they never touch the
database. Rules follow the seed and API-NOTES.md (percentages 0–100, weights non-negative
integers, the documented op/type/experimentType/evaluationMode vocabularies, ≤ 2,000 inclusions
a variant, ≤ 100 ids a bulk delete).
"""

import datetime
import json
import math
import re
from typing import Any

from .errors import bad_request

MAX_INCLUSIONS_PER_VARIANT = 2000
MAX_BULK_DELETE = 100
MAX_ID_LENGTH = 256
MAX_WEIGHT = 1_000_000
MAX_TEXT = 10_000
MAX_BODY_BYTES = 2 * 1024 * 1024

EXPERIMENT_TYPES = ("hypothesis-testing", "no-harm", "multi-arm-bandit")
EVALUATION_MODES = ("local", "remote")
DEPLOYMENT_TYPES = ("client", "server")
CONDITION_OPS = (
    "is",
    "is not",
    "contains",
    "does not contain",
    "less",
    "less or equal",
    "greater",
    "greater or equal",
    "set is",
    "set is not",
    "set contains",
    "set does not contain",
    "glob match",
    "glob does not match",
)
CONDITION_TYPES = ("property",)
FILTER_OPS = CONDITION_OPS[:8] + ("glob match", "glob does not match")

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
LABEL_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
NUMERIC_ID_RE = re.compile(r"^[0-9]{1,18}$")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(request, *, required: bool = True) -> Any:
    raw = request.body
    if len(raw) > MAX_BODY_BYTES:
        raise bad_request("request body is too large", "body")
    if not raw.strip():
        if required:
            raise bad_request("request body must be a JSON object", "body")
        return None
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"malformed JSON: {exc}", "body") from None


def json_object(value: Any, field: str = "body") -> dict:
    if not isinstance(value, dict):
        raise bad_request("must be a JSON object", field)
    return value


def reject_unknown(body: dict, allowed: set[str], field_prefix: str = "") -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}", f"{field_prefix}{unknown[0]}")


def string(value: Any, field: str, *, allow_empty: bool = True, max_length: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise bad_request("must be a string", field)
    if not allow_empty and not value.strip():
        raise bad_request("must not be empty", field)
    if len(value) > max_length:
        raise bad_request(f"must be at most {max_length} characters", field)
    if "\x00" in value:
        raise bad_request("must not contain NUL characters", field)
    return value


def optional_string(value: Any, field: str, **kwargs) -> str:
    """A string where JSON null means empty (names and descriptions)."""
    if value is None:
        return ""
    return string(value, field, **kwargs)


def key(value: Any, field: str) -> str:
    text = string(value, field, allow_empty=False, max_length=200)
    if not KEY_RE.match(text):
        raise bad_request("must start with a letter or digit and contain only letters, digits, '_', '-' and '.'", field)
    return text


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise bad_request("must be true or false", field)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def percentage(value: Any, field: str) -> float:
    if not _is_number(value):
        raise bad_request("must be a number", field)
    if not 0 <= value <= 100:
        raise bad_request("must be between 0 and 100", field)
    return float(value)


def weight(value: Any, field: str) -> int:
    if isinstance(value, float) and _is_number(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request("must be a non-negative integer", field)
    if value < 0:
        raise bad_request("must be a non-negative integer", field)
    if value > MAX_WEIGHT:
        raise bad_request(f"must be at most {MAX_WEIGHT}", field)
    return value


def choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise bad_request(f"must be one of {', '.join(choices)}", field)
    return value


def date_or_null(value: Any, field: str) -> datetime.date | None:
    """ISO 8601 date or date-time (``2023-07-31`` or ``2023-07-31T10:26:00.996Z``); null clears."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad_request("must be an ISO 8601 date or null", field)
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.date.fromisoformat(text)
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(datetime.UTC).date()
    except ValueError:
        raise bad_request("must be an ISO 8601 date or null", field) from None


def tags(value: Any, field: str = "tags") -> list[str]:
    if not isinstance(value, list):
        raise bad_request("must be an array of strings", field)
    cleaned: list[str] = []
    for index, tag in enumerate(value):
        text = string(tag, f"{field}[{index}]", allow_empty=False, max_length=100)
        if text not in cleaned:
            cleaned.append(text)
    if len(cleaned) > 100:
        raise bad_request("at most 100 tags", field)
    return cleaned


def string_list(value: Any, field: str) -> list[str]:
    if not isinstance(value, list):
        raise bad_request("must be an array of strings", field)
    return [string(item, f"{field}[{index}]", max_length=1000) for index, item in enumerate(value)]


def user_ids(value: Any, field: str, *, max_count: int | None = None) -> list[str]:
    """Inclusion ids: non-empty strings up to 256 characters, kept exactly; duplicates collapse."""
    if not isinstance(value, list):
        raise bad_request("must be an array of user or device ids (strings)", field)
    if max_count is not None and len(value) > max_count:
        raise bad_request(f"at most {max_count} ids per request (got {len(value)})", field)
    seen: dict[str, None] = {}
    for index, item in enumerate(value):
        text = string(item, f"{field}[{index}]", allow_empty=False, max_length=MAX_ID_LENGTH)
        seen[text] = None
    return list(seen)


def numeric_id(value: Any, field: str) -> int:
    """Ids travel as strings ("123"); integers are tolerated."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**18:
        return value
    if isinstance(value, str) and NUMERIC_ID_RE.match(value) and int(value) > 0:
        return int(value)
    raise bad_request("must be an id (a string of digits)", field)


def id_list(value: Any, field: str) -> list[int]:
    if not isinstance(value, list):
        raise bad_request("must be an array of ids (strings)", field)
    ids: list[int] = []
    for index, item in enumerate(value):
        number = numeric_id(item, f"{field}[{index}]")
        if number not in ids:
            ids.append(number)
    return ids


def rollout_weights(value: Any, field: str, variant_keys: list[str]) -> dict[str, int]:
    if not isinstance(value, dict):
        raise bad_request("must be an object mapping variant keys to integer weights", field)
    cleaned: dict[str, int] = {}
    for variant_key, raw in value.items():
        if variant_key not in variant_keys:
            raise bad_request(f"unknown variant {variant_key!r}", f"{field}.{variant_key}")
        cleaned[variant_key] = weight(raw, f"{field}.{variant_key}")
    return cleaned


SEGMENT_FIELDS = {"name", "conditions", "percentage", "rolloutWeights", "bucketingKey"}
CONDITION_FIELDS = {"type", "prop", "op", "values"}


def target_segments(value: Any, variant_keys: list[str], default_bucketing_key: str, field: str = "targetSegments"):
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request("must be an array of segments", field)
    segments = []
    for index, raw in enumerate(value):
        where = f"{field}[{index}]"
        segment = json_object(raw, where)
        reject_unknown(segment, SEGMENT_FIELDS, f"{where}.")
        for required in ("name", "conditions", "percentage", "rolloutWeights"):
            if required not in segment:
                raise bad_request("is required", f"{where}.{required}")
        conditions_raw = segment["conditions"]
        if not isinstance(conditions_raw, list):
            raise bad_request("must be an array of conditions", f"{where}.conditions")
        conditions = []
        for c_index, c_raw in enumerate(conditions_raw):
            c_where = f"{where}.conditions[{c_index}]"
            condition = json_object(c_raw, c_where)
            reject_unknown(condition, CONDITION_FIELDS, f"{c_where}.")
            for required in ("type", "prop", "op", "values"):
                if required not in condition:
                    raise bad_request("is required", f"{c_where}.{required}")
            conditions.append(
                {
                    "prop": string(condition["prop"], f"{c_where}.prop", allow_empty=False, max_length=500),
                    "op": choice(condition["op"], f"{c_where}.op", CONDITION_OPS),
                    "type": choice(condition["type"], f"{c_where}.type", CONDITION_TYPES),
                    "values": string_list(condition["values"], f"{c_where}.values"),
                }
            )
        weights = rollout_weights(segment["rolloutWeights"], f"{where}.rolloutWeights", variant_keys)
        bucketing_key = segment.get("bucketingKey", default_bucketing_key)
        segments.append(
            {
                "name": string(segment["name"], f"{where}.name", max_length=500),
                "conditions": conditions,
                "percentage": number_out(percentage(segment["percentage"], f"{where}.percentage")),
                "bucketingKey": string(bucketing_key, f"{where}.bucketingKey", allow_empty=False, max_length=200),
                "rolloutWeights": weights,
            }
        )
    return segments


FILTER_FIELDS = {"group_type", "subprop_key", "subprop_op", "subprop_type", "subprop_value"}


def exposure_event(value: Any, field: str = "exposureEvent") -> dict | None:
    if value is None:
        return None
    event = json_object(value, field)
    reject_unknown(event, {"event_type", "filters"}, f"{field}.")
    if "event_type" not in event:
        raise bad_request("is required", f"{field}.event_type")
    filters_raw = event.get("filters", [])
    if not isinstance(filters_raw, list):
        raise bad_request("must be an array of filters", f"{field}.filters")
    filters = []
    for index, raw in enumerate(filters_raw):
        where = f"{field}.filters[{index}]"
        item = json_object(raw, where)
        reject_unknown(item, FILTER_FIELDS, f"{where}.")
        for required in ("subprop_key", "subprop_op", "subprop_type", "subprop_value"):
            if required not in item:
                raise bad_request("is required", f"{where}.{required}")
        group_type = item.get("group_type")
        filters.append(
            {
                "group_type": None if group_type is None else string(group_type, f"{where}.group_type", max_length=200),
                "subprop_key": None
                if item["subprop_key"] is None
                else string(item["subprop_key"], f"{where}.subprop_key", max_length=500),
                "subprop_op": choice(item["subprop_op"], f"{where}.subprop_op", FILTER_OPS),
                "subprop_type": string(item["subprop_type"], f"{where}.subprop_type", allow_empty=False, max_length=100),
                "subprop_value": string_list(item["subprop_value"], f"{where}.subprop_value"),
            }
        )
    return {"event_type": string(event["event_type"], f"{field}.event_type", allow_empty=False, max_length=500), "filters": filters}


def payload(value: Any, field: str = "payload") -> Any:
    """Any JSON element; a bounded size keeps versions small."""
    if len(json.dumps(value)) > 100_000:
        raise bad_request("must be at most 100,000 characters of JSON", field)
    _reject_nul(value, field)
    return value


def _reject_nul(value: Any, field: str) -> None:
    if isinstance(value, str) and "\x00" in value:
        raise bad_request("must not contain NUL characters", field)
    if isinstance(value, list):
        for item in value:
            _reject_nul(item, field)
    if isinstance(value, dict):
        for k, item in value.items():
            _reject_nul(k, field)
            _reject_nul(item, field)


def number_out(value: float) -> int | float:
    """Whole numbers go back out as integers (``10``, not ``10.0``)."""
    return int(value) if float(value).is_integer() else value
