from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.urls import reverse
from django.utils.html import format_html

from classifier.labels import FetalPlane
from classifier.models import Prediction
from patients.models import Study, UltrasoundImage
from patients.selectors import WORKLIST_DEFAULT_SORT, WORKLIST_SORTS
from patients.services import EXCLUDE_COMMENT_MAX, PIXEL_SIZE_MAX_MM, PIXEL_SIZE_MIN_MM, REOPEN_REASON_MAX


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%d")


class PatientForm(forms.Form):
    mrn = forms.CharField(label="MRN", max_length=64, help_text="Medical record number, unique within your clinic.")
    given_name = forms.CharField(max_length=100)
    family_name = forms.CharField(max_length=100)
    birth_date = forms.DateField(required=False, widget=DateInput, label="Date of birth")


class StudyForm(forms.Form):
    exam_date = forms.DateField(widget=DateInput)
    gestational_age_weeks = forms.IntegerField(required=False, min_value=4, max_value=44, label="GA weeks")
    gestational_age_days = forms.IntegerField(
        required=False, min_value=0, max_value=6, label="GA days", help_text="Left empty with weeks given: 0 days."
    )
    notes = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))
    # The modality worklist (docs/dicom.md): a scheduled date puts the study on the clinic's ultrasound machines.
    scheduled_date = forms.DateField(
        required=False, widget=DateInput, help_text="The day the exam is booked for: it then shows on the worklist."
    )
    accession_number = forms.CharField(
        required=False, max_length=16, help_text="From your RIS, if any; at most 16 characters, unique in the clinic."
    )
    requested_procedure = forms.CharField(required=False, max_length=64, help_text="Shown on the machine's worklist.")


class StudyEditForm(forms.Form):
    """What a study's page corrects after the study was opened (patients.services.study_update checks it)."""

    exam_date = forms.DateField(widget=DateInput)
    gestational_age_weeks = forms.IntegerField(required=False, min_value=4, max_value=44, label="GA weeks")
    gestational_age_days = forms.IntegerField(
        required=False, min_value=0, max_value=6, label="GA days", help_text="Left empty with weeks given: 0 days."
    )
    notes = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))


class SignOffForm(forms.Form):
    acknowledged = forms.BooleanField(required=False, label="I have seen these open items")


class ReopenForm(forms.Form):
    reason = forms.CharField(
        max_length=REOPEN_REASON_MAX,
        label="Reason for reopening",
        help_text=f"Kept in the study's history; at most {REOPEN_REASON_MAX} characters.",
    )


class UploadForm(forms.Form):
    file = forms.FileField(label="Ultrasound image", allow_empty_file=True)
    # Django's FloatField refuses NaN and infinities; the range is the model's (patients.services).
    pixel_size_mm = forms.FloatField(
        min_value=PIXEL_SIZE_MIN_MM,
        max_value=PIXEL_SIZE_MAX_MM,
        required=False,
        label="Pixel size (mm)",
        help_text="Optional: one pixel of the file in millimetres, when you know it (a DICOM file's own "
        "calibration is used without it). Leave empty otherwise: the image is then measured in pixels only.",
    )


class ImageCalibrationForm(forms.Form):
    """A known distance drawn on the image in the viewer: its two ends in display pixels (x to the right, y down,
    pixel centres at whole numbers) and its length in millimetres (patients.services.image_calibrate)."""

    start_x = forms.FloatField()
    start_y = forms.FloatField()
    end_x = forms.FloatField()
    end_y = forms.FloatField()
    distance_mm = forms.FloatField(label="Distance (mm)", help_text="The drawn line's true length in millimetres.")

    def calibration(self) -> dict:
        """The service's arguments (after is_valid()): ``start``, ``end`` and ``distance_mm``."""
        data = self.cleaned_data
        return {
            "start": (data["start_x"], data["start_y"]),
            "end": (data["end_x"], data["end_y"]),
            "distance_mm": data["distance_mm"],
        }


# The review form's extra choice beside the four planes: the image is none of them (a reason says why).
NOT_A_PLANE = "not_a_plane"


class ReviewForm(forms.Form):
    label = forms.ChoiceField(choices=[*FetalPlane.choices, (NOT_A_PLANE, "Not a standard fetal plane")])
    not_plane_reason = forms.ChoiceField(required=False, choices=[("", "—"), *Prediction.NotPlaneReason.choices])
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self) -> dict:
        data = super().clean()
        if data.get("label") == NOT_A_PLANE and not data.get("not_plane_reason"):
            self.add_error("not_plane_reason", "Choose why the image is not a standard fetal plane.")
        return data

    def review(self) -> dict:
        """The service's arguments: a plane, or no plane and the reason (which the service requires)."""
        data = self.cleaned_data
        if data["label"] == NOT_A_PLANE:
            return {"label": None, "not_plane_reason": data["not_plane_reason"], "comment": data["comment"]}
        return {"label": data["label"], "comment": data["comment"]}


class ExcludeForm(forms.Form):
    reason = forms.ChoiceField(choices=UltrasoundImage.ExclusionReason.choices)
    comment = forms.CharField(required=False, max_length=EXCLUDE_COMMENT_MAX)


class WorklistFilterForm(forms.Form):
    """The worklist's query string (a GET form, so every view of the list is a link). A value it cannot read is
    named above the list and left out; the rest still filter, never an error page."""

    q = forms.CharField(required=False, max_length=100, label="Search by MRN or name")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Study.Status.choices], label="Status")
    needs_review = forms.BooleanField(required=False, label="Needs review only")
    date_from = forms.DateField(required=False, widget=DateInput, label="Exam from")
    date_to = forms.DateField(required=False, widget=DateInput, label="Exam to")
    sort = forms.ChoiceField(
        required=False, choices=[(key, key) for name in WORKLIST_SORTS for key in (name, f"-{name}")]
    )

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end of the date range is before its start.")
        return data

    def filters(self) -> dict:
        self.is_valid()  # fills cleaned_data with the values that are valid, even when some are not
        data = self.cleaned_data
        return {
            "search": data.get("q", "").strip(),
            "status": data.get("status", ""),
            "needs_review": data.get("needs_review", False),
            "exam_date_from": data.get("date_from"),
            "exam_date_to": data.get("date_to"),
            "sort": data.get("sort") or WORKLIST_DEFAULT_SORT,
        }

    def problems(self) -> list[str]:
        """What the query string held that the list could not use, one sentence each, for the page to show."""
        problems = []
        for name, errors in self.errors.items():
            field = self.fields.get(name)
            label = (field.label or name.capitalize()) if field else "Filters"
            problems.append(f"{label}: {' '.join(errors)}")
        return problems


def add_service_errors(form: forms.Form, error, *, non_field_errors_to: str | None = None) -> None:
    """Show a service's ValidationError next to the matching fields.

    ``non_field_errors_to`` names the field that a model-wide error is about, where there is only one
    (a patient's only constraint is its MRN, unique within the clinic)."""
    if hasattr(error, "error_dict"):
        for field, messages in error.message_dict.items():
            if field in form.fields:
                form.add_error(field, messages)
            else:
                form.add_error(non_field_errors_to if field == NON_FIELD_ERRORS else None, messages)
    else:
        form.add_error(non_field_errors_to, error.messages)


def add_mrn_taken_error(form: forms.Form, taken) -> None:
    """Show a service's MrnExists (409) on the MRN field, with a link to the patient who has that MRN."""
    url = reverse("patient-detail", args=[taken.extra["existing_id"]])
    form.add_error("mrn", format_html('{} <a href="{}">Open that patient</a>.', taken.message, url))
