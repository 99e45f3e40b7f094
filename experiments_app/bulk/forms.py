from django import forms
from django.conf import settings

from experiments_app.bulk.models import Kind, SweepFilter
from experiments_app.bulk.parsing import ParsedIds, parse_ids

UPSTREAM_REF = r"^[A-Za-z0-9_.\-]{1,200}$"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
NEW_KINDS = [(k.value, k.label) for k in Kind if k != Kind.UNDO]


class IdListForm(forms.Form):
    """Ids pasted or uploaded; ``parsed`` holds the clean list or the problems with line numbers."""

    ids_text = forms.CharField(widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}), required=False,
                               label="Ids (one per line)", strip=False)
    ids_file = forms.FileField(required=False, label="…or a CSV/TXT file",
                               help_text="One id per line, or a column named user_id, device_id or id.")

    parsed: ParsedIds | None = None

    def clean_ids_file(self):
        upload = self.cleaned_data.get("ids_file")
        if upload and upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
        return upload

    def clean_id_list(self, data: dict) -> None:
        upload = data.get("ids_file")
        raw: bytes | str = b"".join(upload.chunks()) if upload else (data.get("ids_text") or "")
        if not raw.strip():
            self.add_error("ids_text", "Paste ids or upload a file.")
            return
        self.parsed = parse_ids(raw, max_ids=settings.BULK_MAX_IDS)
        if not self.parsed.ok:
            self.add_error(None, f"The ids are not clean: {len(self.parsed.problems):,} problem(s); "
                                 "nothing was queued.")


class BulkJobForm(IdListForm):
    kind = forms.ChoiceField(choices=NEW_KINDS, initial=Kind.ADD)
    experiment = forms.RegexField(regex=UPSTREAM_REF, required=False, label="Experiment (id or key)")
    variant_key = forms.RegexField(regex=UPSTREAM_REF, required=False, label="Variant key")
    source_experiment = forms.RegexField(regex=UPSTREAM_REF, required=False, label="Copy from experiment (id or key)")
    source_variant_key = forms.RegexField(regex=UPSTREAM_REF, required=False, label="Copy from variant key")
    sweep_filter = forms.ChoiceField(choices=SweepFilter.choices, initial=SweepFilter.ALL, required=False,
                                     label="Which experiments")
    sweep_value = forms.CharField(max_length=200, required=False, label="Tag or deployment id")
    title = forms.CharField(max_length=300, required=False)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Why")

    field_order = ["kind", "experiment", "variant_key", "source_experiment", "source_variant_key", "sweep_filter",
                   "sweep_value", "ids_text", "ids_file", "title", "reason"]

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind in (Kind.ADD, Kind.REMOVE, Kind.REPLACE, Kind.COPY):
            for name in ("experiment", "variant_key"):
                if not data.get(name) and name not in self.errors:
                    self.add_error(name, "Required for this kind of job.")
        if kind == Kind.COPY:
            for name in ("source_experiment", "source_variant_key"):
                if not data.get(name) and name not in self.errors:
                    self.add_error(name, "Required to copy.")
            return data
        if kind == Kind.SWEEP and data.get("sweep_filter") in (SweepFilter.TAG, SweepFilter.DEPLOYMENT) \
                and not data.get("sweep_value"):
            self.add_error("sweep_value", "Say which tag or deployment.")
        self.clean_id_list(data)
        return data


class ReviseIdsForm(IdListForm):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Why the list changed")

    def clean(self):
        data = super().clean()
        self.clean_id_list(data)
        return data
