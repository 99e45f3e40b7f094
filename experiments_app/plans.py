"""Plans: the exact, ordered upstream operations a change request will perform.

A plan is a list of operations (plain dicts, stored as JSON). Approvals are bound to the SHA-256
of the plan together with the upstream version it was made against, so any edit voids them.
"""

import hashlib
import json
from typing import Any

from experiments_app import gateway
from experiments_app.models import Tier

# op name -> (gateway call, the experiment fields whose change since the snapshot is a conflict)
OPERATIONS = {
    "create_experiment": (),
    "update_experiment": None,  # the fields it sets
    "create_variant": ("variants", "rolloutWeights"),
    "update_variant": ("variants", "rolloutWeights"),
    "delete_variant": ("variants", "rolloutWeights"),
    "add_inclusions": (),
    "remove_inclusions": (),
    "add_deployments": ("deployments",),
    "remove_deployment": ("deployments",),
}
METADATA_FIELDS = {"name", "description", "tags"}
BUCKETING_FIELDS = {"bucketingSalt", "bucketingKey"}
# PATCH names that read back under another name
READ_NAME = {"archive": "archived"}
BIG_ROLLOUT_STEP = 50


def plan_hash(plan: list[dict], base_version: int | None) -> str:
    canonical = json.dumps({"ops": plan, "base_version": base_version}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def touched_fields(plan: list[dict]) -> list[str]:
    fields: list[str] = []
    for op in plan:
        names = OPERATIONS[op["op"]]
        names = [READ_NAME.get(f, f) for f in op["fields"]] if names is None else names
        fields += [f for f in names if f not in fields]
    return fields


def snapshot(experiment: gateway.Experiment | None, plan: list[dict]) -> dict:
    """What the touched fields looked like when the request was made."""
    if experiment is None:
        return {}
    return {field: experiment.raw.get(field) for field in touched_fields(plan)}


def classify(plan: list[dict], experiment: gateway.Experiment | None) -> Tier:
    """The policy tier of a plan (the riskiest of its operations)."""
    running = bool(experiment and (experiment.enabled or experiment.state == "running"))
    tier = Tier.METADATA
    for op in plan:
        kind = op["op"]
        if kind == "remove_deployment" or (kind == "delete_variant" and running):
            return Tier.HIGH
        if kind == "update_experiment":
            fields = set(op["fields"])
            if running and fields & BUCKETING_FIELDS:
                return Tier.HIGH
            new_rollout = op["fields"].get("rolloutPercentage")
            old_rollout = (experiment.rollout_percentage or 0) if experiment else 0
            if new_rollout is not None and new_rollout - old_rollout > BIG_ROLLOUT_STEP:
                return Tier.HIGH
            if fields - METADATA_FIELDS:
                tier = Tier.STANDARD
        else:
            tier = Tier.STANDARD
    return tier


def proposed_config(current: dict, plan: list[dict]) -> dict:
    """The experiment's configuration as it would read after the plan (for diffs)."""
    proposed = json.loads(json.dumps(current))
    for op in plan:
        kind = op["op"]
        if kind == "update_experiment":
            for field, value in op["fields"].items():
                proposed[READ_NAME.get(field, field)] = value
        elif kind == "create_variant":
            proposed.setdefault("variants", []).append({"key": op["key"]})
            if op.get("rolloutWeight") is not None:
                proposed.setdefault("rolloutWeights", {})[op["key"]] = op["rolloutWeight"]
        elif kind == "update_variant":
            new_key = op["fields"].get("key", op["key"])
            proposed["variants"] = [{**v, "key": new_key} if v.get("key") == op["key"] else v
                                    for v in proposed.get("variants", [])]
            weights = dict(proposed.get("rolloutWeights") or {})
            if op["key"] in weights:
                weights[new_key] = weights.pop(op["key"])
            if "rolloutWeight" in op["fields"]:
                weights[new_key] = op["fields"]["rolloutWeight"]
            proposed["rolloutWeights"] = weights
        elif kind == "delete_variant":
            proposed["variants"] = [v for v in proposed.get("variants", []) if v.get("key") != op["key"]]
            proposed["rolloutWeights"] = {k: w for k, w in (proposed.get("rolloutWeights") or {}).items()
                                          if k != op["key"]}
        elif kind == "add_deployments":
            proposed["deployments"] = list(dict.fromkeys([*proposed.get("deployments", []), *op["deployments"]]))
        elif kind == "remove_deployment":
            proposed["deployments"] = [d for d in proposed.get("deployments", []) if d != op["deployment"]]
    return proposed


def describe(op: dict) -> str:
    """One operation in words, for the request page."""
    kind = op["op"]
    if kind == "create_experiment":
        return f"Create experiment “{op['body']['key']}”"
    if kind == "update_experiment":
        return "Edit " + ", ".join(sorted(op["fields"]))
    if kind == "create_variant":
        return f"Add variant “{op['key']}”"
    if kind == "update_variant":
        return f"Edit variant “{op['key']}” ({', '.join(sorted(op['fields']))})"
    if kind == "delete_variant":
        return f"Remove variant “{op['key']}”"
    if kind == "add_inclusions":
        return f"Pin {len(op['ids'])} id(s) to “{op['variant']}”"
    if kind == "remove_inclusions":
        return f"Unpin {len(op['ids'])} id(s) from “{op['variant']}”"
    if kind == "add_deployments":
        return f"Add deployment(s) {', '.join(op['deployments'])}"
    if kind == "remove_deployment":
        return f"Remove deployment {op['deployment']}"
    return kind


def apply_operation(client: gateway.GatewayClient, experiment_id: str, op: dict) -> dict[str, Any]:
    """Performs one operation through the gateway; returns what is worth recording."""
    kind = op["op"]
    if kind == "create_experiment":
        created = client.create_experiment(**op["body"])
        return {"experiment_id": created.id}
    if kind == "update_experiment":
        client.update_experiment(experiment_id, op["fields"])
    elif kind == "create_variant":
        client.create_variant(experiment_id, key=op["key"], name=op.get("name"), description=op.get("description"),
                              payload=op.get("payload"), rollout_weight=op.get("rolloutWeight"))
    elif kind == "update_variant":
        client.update_variant(experiment_id, op["key"], op["fields"])
    elif kind == "delete_variant":
        client.delete_variant(experiment_id, op["key"])
    elif kind == "add_inclusions":
        client.add_inclusions(experiment_id, op["variant"], op["ids"])
    elif kind == "remove_inclusions":
        for start in range(0, len(op["ids"]), 100):
            client.bulk_remove_inclusions(experiment_id, op["variant"], op["ids"][start:start + 100])
    elif kind == "add_deployments":
        client.add_deployments(experiment_id, op["deployments"])
    elif kind == "remove_deployment":
        client.remove_deployment(experiment_id, op["deployment"])
    else:
        raise ValueError(f"Unknown operation {kind!r}")
    return {}
