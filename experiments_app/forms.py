import json

from django import forms

from experiments_app.roles import ROLES
from experiments_app.selectors import ExperimentFilters

STATES = [("", "Any state"), ("planning", "Planning"), ("running", "Running"), ("decision-made", "Decision made")]
ENABLED = [("", "Enabled or not"), ("yes", "Enabled"), ("no", "Disabled")]
EVALUATION_MODES = [("", "Any evaluation"), ("remote", "Remote"), ("local", "Local")]
EXPERIMENT_TYPES = [("", "Any type"), ("hypothesis-testing", "Hypothesis testing"), ("no-harm", "No harm"),
                    ("multi-arm-bandit", "Multi-arm bandit")]


class ExperimentFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Search key or name"}))
    state = forms.ChoiceField(required=False, choices=STATES)
    enabled = forms.ChoiceField(required=False, choices=ENABLED)
    tag = forms.CharField(required=False, max_length=200)
    deployment = forms.CharField(required=False, max_length=64)
    evaluation_mode = forms.ChoiceField(required=False, choices=EVALUATION_MODES, label="Evaluation mode")
    experiment_type = forms.ChoiceField(required=False, choices=EXPERIMENT_TYPES, label="Type")
    archived = forms.BooleanField(required=False, label="Archived only")

    def filters(self) -> ExperimentFilters:
        data = self.cleaned_data
        return ExperimentFilters(
            q=data["q"].strip(), state=data["state"], enabled=data["enabled"], tag=data["tag"],
            deployment=data["deployment"], evaluation_mode=data["evaluation_mode"],
            experiment_type=data["experiment_type"], archived=data["archived"],
        )


class InclusionSearchForm(forms.Form):
    variant = forms.CharField(required=False, max_length=200)
    q = forms.CharField(required=False, max_length=200)
    page = forms.IntegerField(required=False, min_value=1)


class VersionCompareForm(forms.Form):
    a = forms.IntegerField(min_value=1, label="Version")
    b = forms.IntegerField(min_value=1, label="against version")


# --- Change request forms --------------------------------------------------------------------
# Each form turns what a person typed into plan operations (experiments_app.plans) for the fields
# that actually change; the view hands the plan to change_requests.change_request_create.


CONDITION_OPS = ["is", "is not", "contains", "does not contain", "less", "less or equal", "greater",
                 "greater or equal", "set is", "set is not", "set contains", "set does not contain",
                 "glob match", "glob does not match"]
EVALUATION_CHOICES = [("remote", "Remote"), ("local", "Local")]
TYPE_CHOICES = [c for c in EXPERIMENT_TYPES if c[0]]
CONDITION_ROWS = 5


class ReasonMixin(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000,
                             help_text="Why this change? Reviewers and the audit log will see it.")


def _json_field(label: str, required: bool = False) -> forms.CharField:
    return forms.CharField(label=label, required=required, widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}))


def _parse_json(value: str):
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise forms.ValidationError(f"Not valid JSON: {exc}") from None


class ExperimentEditForm(ReasonMixin):
    name = forms.CharField(max_length=200, required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tags = forms.CharField(required=False, help_text="Comma-separated; replaces all tags.")
    enabled = forms.BooleanField(required=False)
    rollout_percentage = forms.IntegerField(min_value=0, max_value=100, label="Rollout % (non-targeted users)")
    bucketing_key = forms.CharField(max_length=200, required=False)
    bucketing_salt = forms.CharField(max_length=200, required=False)
    bucketing_unit = forms.CharField(max_length=200, required=False)
    sticky_bucketing = forms.BooleanField(required=False)
    evaluation_mode = forms.ChoiceField(choices=EVALUATION_CHOICES)
    experiment_type = forms.ChoiceField(choices=TYPE_CHOICES)
    start_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    exposure_event = _json_field("Exposure event (JSON: event_type and filters; empty for Amplitude's default)")
    archive = forms.BooleanField(required=False, label="Archived")

    field_order = ["name", "description", "tags", "enabled", "rollout_percentage"]

    # PATCH field -> (form field, how the form shows the value)
    FORM_FIELD = {"name": "name", "description": "description", "enabled": "enabled",
                  "rolloutPercentage": "rollout_percentage", "bucketingKey": "bucketing_key",
                  "bucketingSalt": "bucketing_salt", "bucketingUnit": "bucketing_unit",
                  "stickyBucketing": "sticky_bucketing", "evaluationMode": "evaluation_mode",
                  "experimentType": "experiment_type", "startDate": "start_date", "endDate": "end_date",
                  "archive": "archive"}

    def __init__(self, *args, experiment, proposed: dict | None = None, **kwargs):
        """`proposed`: the PATCH fields of a pending request being revised, shown instead of today's values."""
        self.experiment = experiment
        initial = {
            "name": experiment.name, "description": experiment.description, "tags": ", ".join(experiment.tags),
            "enabled": experiment.enabled, "rollout_percentage": experiment.rollout_percentage or 0,
            "bucketing_key": experiment.bucketing_key or "", "bucketing_salt": experiment.bucketing_salt or "",
            "bucketing_unit": experiment.bucketing_unit or "", "sticky_bucketing": experiment.sticky_bucketing,
            "evaluation_mode": experiment.evaluation_mode or "remote",
            "experiment_type": experiment.experiment_type or "hypothesis-testing",
            "start_date": (experiment.start_date or "")[:10] or None, "end_date": (experiment.end_date or "")[:10] or None,
            "exposure_event": json.dumps(experiment.exposure_event, indent=2) if experiment.exposure_event else "",
            "archive": experiment.archived,
        }
        for key, weight in experiment.rollout_weights.items():
            initial[f"weight__{key}"] = weight
        for field, value in (proposed or {}).items():
            if field in self.FORM_FIELD:
                initial[self.FORM_FIELD[field]] = value
            elif field == "tags":
                initial["tags"] = ", ".join(value)
            elif field == "rolloutWeights":
                initial.update({f"weight__{k}": w for k, w in value.items()})
            elif field == "exposureEvent":
                initial["exposure_event"] = json.dumps(value, indent=2) if value else ""
        super().__init__(*args, initial=initial, **kwargs)
        for key in experiment.rollout_weights:
            self.fields[f"weight__{key}"] = forms.IntegerField(min_value=0, label=f"Weight of “{key}”")
        weights = [f for f in self.fields if f.startswith("weight__")]
        rest = [f for f in self.fields if f not in self.field_order and f not in weights and f != "reason"]
        self.order_fields([*self.field_order, *weights, *rest, "reason"])

    def clean_exposure_event(self):
        value = _parse_json(self.cleaned_data["exposure_event"])
        if value is not None and (not isinstance(value, dict) or "event_type" not in value):
            raise forms.ValidationError("Give an object with event_type (and filters, a list).")
        if value is not None:
            value.setdefault("filters", [])
        return value

    def clean(self):
        data = super().clean()
        start, end = data.get("start_date"), data.get("end_date")
        if start and end and end < start:
            self.add_error("end_date", "The end date is before the start date.")
        return data

    def changed_fields(self) -> dict:
        """The PATCH body: only what differs from the experiment as it is now."""
        data, experiment = self.cleaned_data, self.experiment
        tags = [t.strip() for t in data["tags"].split(",") if t.strip()]
        weights = {k: data[f"weight__{k}"] for k in experiment.rollout_weights}
        wanted = {
            "name": (data["name"], experiment.name),
            "description": (data["description"], experiment.description),
            "tags": (tags, experiment.tags),
            "enabled": (data["enabled"], experiment.enabled),
            "rolloutPercentage": (data["rollout_percentage"], experiment.rollout_percentage or 0),
            "rolloutWeights": (weights, experiment.rollout_weights),
            "bucketingKey": (data["bucketing_key"], experiment.bucketing_key or ""),
            "bucketingSalt": (data["bucketing_salt"], experiment.bucketing_salt or ""),
            "bucketingUnit": (data["bucketing_unit"], experiment.bucketing_unit or ""),
            "stickyBucketing": (data["sticky_bucketing"], experiment.sticky_bucketing),
            "evaluationMode": (data["evaluation_mode"], experiment.evaluation_mode),
            "experimentType": (data["experiment_type"], experiment.experiment_type),
            "startDate": (data["start_date"].isoformat() if data["start_date"] else None,
                          (experiment.start_date or "")[:10] or None),
            "endDate": (data["end_date"].isoformat() if data["end_date"] else None,
                        (experiment.end_date or "")[:10] or None),
            "exposureEvent": (data["exposure_event"], experiment.exposure_event or None),
            "archive": (data["archive"], experiment.archived),
        }
        return {field: new for field, (new, old) in wanted.items() if new != old}


class SegmentForm(ReasonMixin):
    """One target segment with up to five conditions; the plan replaces the whole segment list."""

    name = forms.CharField(max_length=200)
    percentage = forms.IntegerField(min_value=0, max_value=100, label="Allocation %")

    def __init__(self, *args, experiment, index: int | None, **kwargs):
        self.experiment, self.index = experiment, index
        segment = experiment.target_segments[index] if index is not None else {}
        initial = {"name": segment.get("name", ""), "percentage": segment.get("percentage", 0)}
        for n, condition in enumerate((segment.get("conditions") or [])[:CONDITION_ROWS]):
            initial.update({f"prop_{n}": condition.get("prop", ""), f"op_{n}": condition.get("op", "is"),
                            f"values_{n}": ", ".join(map(str, condition.get("values") or []))})
        weights = segment.get("rolloutWeights") or experiment.rollout_weights
        for key in experiment.rollout_weights:
            initial[f"weight__{key}"] = weights.get(key, 0)
        super().__init__(*args, initial=initial, **kwargs)
        for n in range(CONDITION_ROWS):
            self.fields[f"prop_{n}"] = forms.CharField(required=False, max_length=200, label="Property",
                                                       help_text="Custom properties start with gp:")
            self.fields[f"op_{n}"] = forms.ChoiceField(choices=[(o, o) for o in CONDITION_OPS], label="Operator")
            self.fields[f"values_{n}"] = forms.CharField(required=False, max_length=2000, label="Values",
                                                         help_text="Comma-separated")
        for key in experiment.rollout_weights:
            self.fields[f"weight__{key}"] = forms.IntegerField(min_value=0, label=f"Weight of “{key}”")

    def condition_rows(self):
        return [(self[f"prop_{n}"], self[f"op_{n}"], self[f"values_{n}"]) for n in range(CONDITION_ROWS)]

    def weight_fields(self):
        return [self[f"weight__{key}"] for key in self.experiment.rollout_weights]

    def clean(self):
        data = super().clean()
        conditions = []
        for n in range(CONDITION_ROWS):
            prop, values = (data.get(f"prop_{n}") or "").strip(), (data.get(f"values_{n}") or "").strip()
            if not prop and not values:
                continue
            if not prop or not values:
                self.add_error(f"prop_{n}" if not prop else f"values_{n}", "A condition needs a property and values.")
                continue
            conditions.append({"type": "property", "prop": prop, "op": data.get(f"op_{n}"),
                               "values": [v.strip() for v in values.split(",") if v.strip()]})
        if not conditions and not self.errors:
            raise forms.ValidationError("A segment needs at least one condition.")
        data["conditions"] = conditions
        return data

    def segments(self) -> list[dict]:
        data = self.cleaned_data
        segment = {"name": data["name"], "percentage": data["percentage"], "conditions": data["conditions"],
                   "bucketingKey": self.experiment.bucketing_key or "amplitude_id",
                   "rolloutWeights": {k: data[f"weight__{k}"] for k in self.experiment.rollout_weights}}
        segments = [dict(s) for s in self.experiment.target_segments]
        if self.index is None:
            segments.append(segment)
        else:
            segments[self.index] = segment
        return segments


class VariantForm(ReasonMixin):
    key = forms.SlugField(max_length=100)
    name = forms.CharField(max_length=200, required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    payload = _json_field("Payload (JSON)")
    rollout_weight = forms.IntegerField(min_value=0, required=False, label="Rollout weight")

    def __init__(self, *args, existing_keys: list[str], variant=None, **kwargs):
        self.existing_keys, self.variant = existing_keys, variant
        initial = {}
        if variant is not None:
            initial = {"key": variant.key, "name": variant.name, "description": variant.description,
                       "payload": json.dumps(variant.payload, indent=2) if variant.payload not in (None, "", {}) else "",
                       "rollout_weight": variant.rollout_weight}
        super().__init__(*args, initial=initial, **kwargs)

    def clean_key(self):
        key = self.cleaned_data["key"]
        if key in self.existing_keys and (self.variant is None or key != self.variant.key):
            raise forms.ValidationError("The experiment already has a variant with this key.")
        return key

    def clean_payload(self):
        return _parse_json(self.cleaned_data["payload"])

    def operation(self) -> dict | None:
        data = self.cleaned_data
        if self.variant is None:
            op = {"op": "create_variant", "key": data["key"], "name": data["name"] or None,
                  "description": data["description"] or None, "payload": data["payload"],
                  "rolloutWeight": data["rollout_weight"]}
            return {k: v for k, v in op.items() if v is not None}
        old = self.variant
        wanted = {"key": (data["key"], old.key), "name": (data["name"], old.name or ""),
                  "description": (data["description"], old.description or ""),
                  "payload": (data["payload"], old.payload if old.payload not in ("", {}) else None),
                  "rolloutWeight": (data["rollout_weight"], old.rollout_weight)}
        fields = {f: new for f, (new, before) in wanted.items() if new != before}
        if data["rollout_weight"] is None:  # left empty: keep the weight it has
            fields.pop("rolloutWeight", None)
        return {"op": "update_variant", "key": old.key, "fields": fields} if fields else None


class InclusionsForm(ReasonMixin):
    MAX_IDS = 100
    action = forms.ChoiceField(choices=[("add", "Pin these ids"), ("remove", "Unpin these ids")])
    variant = forms.ChoiceField(choices=[])
    ids = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), label="User or device ids",
                          help_text=f"One per line, up to {MAX_IDS}. For more, use a bulk job.")

    def __init__(self, *args, variant_keys: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["variant"].choices = [(k, k) for k in variant_keys]

    def clean_ids(self):
        ids = list(dict.fromkeys(line.strip() for line in self.cleaned_data["ids"].splitlines() if line.strip()))
        if not ids:
            raise forms.ValidationError("Give at least one id.")
        if len(ids) > self.MAX_IDS:
            raise forms.ValidationError(f"{len(ids)} ids: more than {self.MAX_IDS} is a bulk job.")
        too_long = [i for i in ids if len(i) > 256]
        if too_long:
            raise forms.ValidationError(f"Ids are at most 256 characters: {too_long[0][:40]}…")
        return ids

    def operation(self) -> dict:
        data = self.cleaned_data
        return {"op": "add_inclusions" if data["action"] == "add" else "remove_inclusions",
                "variant": data["variant"], "ids": data["ids"]}


class DeploymentsForm(ReasonMixin):
    action = forms.ChoiceField(choices=[("add", "Add"), ("remove", "Remove")])
    deployment = forms.ChoiceField(choices=[])

    def __init__(self, *args, deployments: dict, assigned: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.assigned = assigned
        self.fields["deployment"].choices = [(i, d.label) for i, d in deployments.items()]

    def clean(self):
        data = super().clean()
        if data.get("action") == "add" and data.get("deployment") in self.assigned:
            self.add_error("deployment", "The experiment already has this deployment.")
        if data.get("action") == "remove" and data.get("deployment") not in self.assigned:
            self.add_error("deployment", "The experiment does not have this deployment.")
        return data

    def operation(self) -> dict:
        data = self.cleaned_data
        if data["action"] == "add":
            return {"op": "add_deployments", "deployments": [data["deployment"]]}
        return {"op": "remove_deployment", "deployment": data["deployment"]}


class ExperimentCreateForm(ReasonMixin):
    key = forms.SlugField(max_length=100)
    name = forms.CharField(max_length=200, required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    variants = forms.CharField(initial="control, treatment", help_text="Comma-separated variant keys")
    deployments = forms.MultipleChoiceField(choices=[], required=False, widget=forms.CheckboxSelectMultiple)
    evaluation_mode = forms.ChoiceField(choices=EVALUATION_CHOICES)
    experiment_type = forms.ChoiceField(choices=TYPE_CHOICES)

    def __init__(self, *args, deployments: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["deployments"].choices = [(i, d.label) for i, d in deployments.items()]

    def clean_variants(self):
        keys = [k.strip() for k in self.cleaned_data["variants"].split(",") if k.strip()]
        if not keys:
            raise forms.ValidationError("Give at least one variant key.")
        if len(set(keys)) != len(keys):
            raise forms.ValidationError("Variant keys must be different.")
        return keys

    def operation(self) -> dict:
        data = self.cleaned_data
        body = {"key": data["key"], "name": data["name"] or data["key"], "description": data["description"],
                "variants": [{"key": k} for k in data["variants"]], "deployments": data["deployments"],
                "evaluationMode": data["evaluation_mode"], "experimentType": data["experiment_type"],
                "rolloutWeights": {k: 1 for k in data["variants"]}}
        return {"op": "create_experiment", "body": body}


class ReviewForm(forms.Form):
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=4000)
    plan_hash = forms.CharField(required=False, widget=forms.HiddenInput)


class CommentForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=4000, label="Comment")


class ChangeRequestFilterForm(forms.Form):
    status = forms.ChoiceField(required=False)
    experiment = forms.CharField(required=False, max_length=200)

    def __init__(self, *args, **kwargs):
        from experiments_app.models import Status

        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", "Any status"), *Status.choices]


class PolicyForm(forms.Form):
    required_approvals = forms.IntegerField(min_value=0, max_value=5)
    approver_group = forms.ModelChoiceField(queryset=None, required=False, empty_label="Any approver")

    def __init__(self, *args, **kwargs):
        from django.contrib.auth.models import Group

        super().__init__(*args, **kwargs)
        self.fields["approver_group"].queryset = Group.objects.order_by("name")


class UserAddForm(forms.Form):
    username = forms.RegexField(regex=r"^[\w.@+-]{1,150}$", max_length=150,
                                error_messages={"invalid": "Letters, digits and @ . + - _ only."})
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=[(r, r) for r in ROLES])
    password = forms.CharField(widget=forms.PasswordInput(render_value=False), strip=False,
                               help_text="They sign in with it; give it to them out of band.")


class UserRoleForm(forms.Form):
    role = forms.ChoiceField(choices=[(r, r) for r in ROLES])
