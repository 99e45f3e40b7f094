from django import forms

from experiments_app.audit import actions
from experiments_app.audit.selectors import AuditFilters

ACTION_CHOICES = [("", "Any action"), *((action, actions.label(action)) for action in actions.ALL)]


class AuditFilterForm(forms.Form):
    experiment = forms.CharField(required=False, max_length=200, label="Experiment",
                                 widget=forms.TextInput(attrs={"placeholder": "Experiment id or key"}))
    actor = forms.CharField(required=False, max_length=150, label="Actor",
                            widget=forms.TextInput(attrs={"placeholder": "Who (username)"}))
    action = forms.ChoiceField(required=False, choices=ACTION_CHOICES)
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(required=False, max_length=200, label="Search",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Search reason, key, detail"}))
    correlation = forms.CharField(required=False, max_length=100, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def filters(self) -> AuditFilters:
        data = self.cleaned_data
        return AuditFilters(experiment=data["experiment"].strip(), actor=data["actor"].strip(),
                            action=data["action"], date_from=data["date_from"], date_to=data["date_to"],
                            q=data["q"].strip(), correlation=data["correlation"].strip())
