"""Review states (issue 19): a result is a suggestion until a clinician confirms or corrects it, or says it is
not a standard fetal plane. Existing reviews become confirmed (the clinician kept the model's plane) or corrected
(another plane), in the predictions and in their recorded history, so the history reads the same as new reviews."""

from django.conf import settings
from django.db import migrations, models
from django.db.models import F


def _states_from_reviewed_labels(apps, schema_editor) -> None:
    for name in ("Prediction", "HistoricalPrediction"):
        model = apps.get_model("classifier", name)
        reviewed = model.objects.exclude(reviewed_label="")
        reviewed.filter(reviewed_label=F("label")).update(review_state="confirmed")
        reviewed.exclude(reviewed_label=F("label")).update(review_state="corrected")


def _reviewed_labels_only(apps, schema_editor) -> None:
    """Going back: a not-a-plane review has no label to keep, so it becomes a suggestion again."""
    model = apps.get_model("classifier", "Prediction")
    model.objects.filter(review_state="not_a_plane").update(reviewed_by=None, reviewed_at=None)


class Migration(migrations.Migration):
    dependencies = [
        ("classifier", "0008_cine_frames_without_key_frames"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="prediction",
            name="prediction_review_has_reviewer",
        ),
        migrations.AddField(
            model_name="historicalprediction",
            name="not_plane_reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("other_anatomy", "Other anatomy"),
                    ("maternal", "Maternal"),
                    ("non_fetal", "Not fetal / not ultrasound"),
                    ("unusable_quality", "Unusable quality"),
                ],
                help_text="Why a clinician said it is not a standard plane (review state not_a_plane).",
                max_length=24,
            ),
        ),
        migrations.AddField(
            model_name="historicalprediction",
            name="review_state",
            field=models.CharField(
                choices=[
                    ("suggested", "Suggested"),
                    ("confirmed", "Confirmed"),
                    ("corrected", "Corrected"),
                    ("not_a_plane", "Not a standard fetal plane"),
                ],
                default="suggested",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="prediction",
            name="not_plane_reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("other_anatomy", "Other anatomy"),
                    ("maternal", "Maternal"),
                    ("non_fetal", "Not fetal / not ultrasound"),
                    ("unusable_quality", "Unusable quality"),
                ],
                help_text="Why a clinician said it is not a standard plane (review state not_a_plane).",
                max_length=24,
            ),
        ),
        migrations.AddField(
            model_name="prediction",
            name="review_state",
            field=models.CharField(
                choices=[
                    ("suggested", "Suggested"),
                    ("confirmed", "Confirmed"),
                    ("corrected", "Corrected"),
                    ("not_a_plane", "Not a standard fetal plane"),
                ],
                default="suggested",
                max_length=16,
            ),
        ),
        migrations.RunPython(_states_from_reviewed_labels, _reviewed_labels_only),
        migrations.AddConstraint(
            model_name="prediction",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("review_state", "suggested"),
                    models.Q(("reviewed_by__isnull", False), ("reviewed_at__isnull", False)),
                    _connector="OR",
                ),
                name="prediction_review_has_reviewer",
            ),
        ),
        migrations.AddConstraint(
            model_name="prediction",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("not_plane_reason", ""), ("review_state", "suggested"), ("reviewed_label", "")),
                    models.Q(
                        ("not_plane_reason", ""), ("review_state", "confirmed"), ("reviewed_label", models.F("label"))
                    ),
                    models.Q(
                        ("not_plane_reason", ""),
                        ("review_state", "corrected"),
                        models.Q(("reviewed_label", ""), _negated=True),
                        models.Q(("reviewed_label", models.F("label")), _negated=True),
                    ),
                    models.Q(
                        ("review_state", "not_a_plane"),
                        ("reviewed_label", ""),
                        models.Q(("not_plane_reason", ""), _negated=True),
                    ),
                    _connector="OR",
                ),
                name="prediction_review_state_consistent",
                violation_error_message="The review state does not match the reviewed label and reason.",
            ),
        ),
    ]
