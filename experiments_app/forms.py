from django import forms

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
