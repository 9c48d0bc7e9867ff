"""django-filter FilterSets for the API's patient, study and image lists.

They narrow a queryset a selector has already scoped to the user's clinic; they never widen it."""

from __future__ import annotations

import django_filters
from django.db.models import Case, Exists, F, Subquery, Value, When
from django.db.models.functions import Coalesce, NullIf

from classifier.labels import FetalPlane
from classifier.models import Prediction
from classifier.selectors import image_latest_prediction_subquery
from fetalsite.core.filters import IdFilter, StableOrderingFilter, StrictBooleanFilter, UtcIsoDateTimeFilter
from patients.models import Patient, Study, UltrasoundImage
from patients.selectors import IMAGE_REVIEW_STATES, patient_search


class PatientFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(
        method="filter_search",
        max_length=100,
        help_text="Every word of it in the MRN, given or family name; accents and case aside.",
    )
    mrn = django_filters.CharFilter(field_name="mrn", help_text="The exact MRN.")
    ordering = StableOrderingFilter(
        fields=(("family_name", "family_name"), ("mrn", "mrn"), ("created_at", "created_at")),
        help_text="Sort by this field; prefix with `-` for descending. Default: family name, given name.",
    )

    class Meta:
        model = Patient
        fields = ["search", "mrn"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(patient_search(value))


class StudyFilter(django_filters.FilterSet):
    patient = IdFilter(field_name="patient_id", help_text="Only this patient's studies.")
    status = django_filters.ChoiceFilter(choices=Study.Status.choices, help_text="OPEN or COMPLETED.")
    exam_date_after = django_filters.DateFilter(
        field_name="exam_date", lookup_expr="gte", help_text="Exam date on or after (YYYY-MM-DD)."
    )
    exam_date_before = django_filters.DateFilter(
        field_name="exam_date", lookup_expr="lte", help_text="Exam date on or before (YYYY-MM-DD)."
    )
    search = django_filters.CharFilter(
        method="filter_search",
        max_length=100,
        help_text="Every word of it in the patient's MRN, given or family name; accents and case aside.",
    )
    ordering = StableOrderingFilter(
        fields=(("exam_date", "exam_date"), ("created_at", "created_at"), ("updated_at", "updated_at")),
        help_text="Sort by this field; prefix with `-` for descending. Default: newest exam first.",
    )

    class Meta:
        model = Study
        fields = ["patient", "status"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(patient_search(value, through="patient__"))


class ImageFilter(django_filters.FilterSet):
    """The prediction filters look at the image's latest prediction (classifier.selectors), never an older one."""

    study = IdFilter(field_name="study_id", help_text="Only this study's images.")
    kind = django_filters.ChoiceFilter(
        choices=UltrasoundImage.Kind.choices, help_text="`still`, or `cine` for clips only."
    )
    clip = IdFilter(field_name="clip_id", help_text="Only the key frames (stills) of this clip.")
    label = django_filters.ChoiceFilter(
        choices=FetalPlane.choices,
        method="filter_label",
        help_text="The final label: the clinician's when reviewed, else the model's.",
    )
    needs_review = StrictBooleanFilter(
        method="filter_needs_review", help_text="The model flagged the prediction as uncertain."
    )
    reviewed = StrictBooleanFilter(
        method="filter_reviewed",
        help_text="A clinician confirmed or corrected the label, or marked the image not a standard plane.",
    )
    review_state = django_filters.ChoiceFilter(
        choices=[(state, state) for state in IMAGE_REVIEW_STATES],
        method="filter_review_state",
        help_text="`pending` (not classified yet), `suggested` (not yet reviewed), `confirmed`, `corrected`, "
        "`not_a_plane` or `excluded` (a clinician excluded the image; its other states do not apply).",
    )
    uploaded_after = UtcIsoDateTimeFilter(
        field_name="uploaded_at", lookup_expr="gte", help_text="Uploaded at or after (ISO 8601)."
    )
    ordering = StableOrderingFilter(
        fields=(("uploaded_at", "uploaded_at"), ("byte_size", "byte_size")),
        help_text="Sort by this field; prefix with `-` for descending. Default: oldest upload first.",
    )

    class Meta:
        model = UltrasoundImage
        fields = ["study"]

    def filter_label(self, queryset, name, value):
        latest = image_latest_prediction_subquery()
        # Prediction.final_label in SQL; a not-a-plane review has none.
        final_label = Case(
            When(review_state=Prediction.ReviewState.NOT_A_PLANE, then=Value("")),
            default=Coalesce(NullIf(F("reviewed_label"), Value("")), F("label")),
        )
        return queryset.annotate(final_label=Subquery(latest.annotate(final=final_label).values("final")[:1])).filter(
            final_label=value
        )

    def filter_needs_review(self, queryset, name, value):
        latest = image_latest_prediction_subquery()
        return queryset.annotate(latest_needs_review=Subquery(latest.values("needs_review")[:1])).filter(
            latest_needs_review=value
        )

    def filter_reviewed(self, queryset, name, value):
        reviewed = Exists(image_latest_prediction_subquery().reviewed())
        return queryset.filter(reviewed) if value else queryset.exclude(reviewed)

    def filter_review_state(self, queryset, name, value):
        """``patients.selectors.image_review_state`` in SQL: excluded first, then the latest prediction's state."""
        if value == "excluded":
            return queryset.exclude(excluded_reason="")
        queryset = queryset.filter(excluded_reason="")
        latest = image_latest_prediction_subquery()
        if value == "pending":
            return queryset.exclude(Exists(latest))
        return queryset.filter(Exists(latest.filter(review_state=value)))
