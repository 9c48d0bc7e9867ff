"""django-filter FilterSets for the API's job and prediction lists (already clinic-scoped)."""

from __future__ import annotations

import django_filters

from classifier.labels import FetalPlane
from classifier.models import ClassificationJob, Prediction
from fetalsite.core.filters import IdFilter, StableOrderingFilter, StrictBooleanFilter


class JobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ClassificationJob.Status.choices, help_text="The job's status.")
    image = IdFilter(field_name="image_id", help_text="Only this image's jobs.")
    study = IdFilter(field_name="image__study_id", help_text="Only jobs of this study's images.")
    ordering = StableOrderingFilter(
        fields=(("queued_at", "queued_at"), ("finished_at", "finished_at")),
        help_text="Sort by this field; prefix with `-` for descending. Default: newest first.",
    )

    class Meta:
        model = ClassificationJob
        fields = ["status", "image"]


class PredictionFilter(django_filters.FilterSet):
    image = IdFilter(field_name="job__image_id", help_text="Only this image's predictions.")
    study = IdFilter(field_name="job__image__study_id", help_text="Only this study's.")
    label = django_filters.ChoiceFilter(choices=FetalPlane.choices, help_text="The model's label.")
    needs_review = StrictBooleanFilter(help_text="The model flagged the prediction as uncertain.")
    reviewed = StrictBooleanFilter(
        method="filter_reviewed",
        help_text="Reviewed by a clinician: confirmed, corrected or marked not a standard plane.",
    )
    review_state = django_filters.ChoiceFilter(
        choices=Prediction.ReviewState.choices,
        help_text="`suggested` until a clinician reviews it, then `confirmed`, `corrected` or `not_a_plane`.",
    )
    ordering = StableOrderingFilter(
        fields=(("created_at", "created_at"), ("confidence", "confidence")),
        help_text="Sort by this field; prefix with `-` for descending. Default: newest first.",
    )

    class Meta:
        model = Prediction
        fields = ["label", "needs_review", "review_state"]

    def filter_reviewed(self, queryset, name, value):
        return queryset.reviewed(value)
