"""Review states (issue 19): a result is suggested until a clinician confirms or corrects it, or says it is not a
standard fetal plane; every review is kept in the prediction's history."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from classifier.labels import PLANE_LABELS
from classifier.models import Prediction
from classifier.services import classification_job_run, prediction_review
from patients.services import image_upload
from tests.images import png_bytes

State = Prediction.ReviewState


@pytest.fixture
def prediction(study, sonographer, active_model) -> Prediction:
    image = image_upload(study=study, data=png_bytes(), filename="a.png", uploaded_by=sonographer).image
    return classification_job_run(job_id=image.jobs.get().id).prediction


def _other(label: str) -> str:
    return next(plane for plane in PLANE_LABELS if plane != label)


class TestPredictionReviewStates:
    def test_a_new_prediction_is_a_suggestion(self, prediction):
        assert prediction.review_state == State.SUGGESTED and not prediction.is_reviewed
        assert Prediction.objects.reviewed(False).filter(id=prediction.id).exists()

    def test_keeping_the_models_plane_confirms_it(self, prediction, clinician):
        reviewed = prediction_review(prediction=prediction, label=prediction.label, reviewed_by=clinician)
        assert (reviewed.review_state, reviewed.reviewed_label, reviewed.final_label) == (
            State.CONFIRMED,
            prediction.label,
            prediction.label,
        )
        assert reviewed.is_reviewed and Prediction.objects.reviewed().filter(id=prediction.id).exists()

    def test_another_plane_corrects_it(self, prediction, clinician):
        other = _other(prediction.label)
        reviewed = prediction_review(prediction=prediction, label=other, reviewed_by=clinician)
        assert (reviewed.review_state, reviewed.reviewed_label, reviewed.final_label) == (State.CORRECTED, other, other)
        assert reviewed.label == prediction.label  # the model's answer stays

    def test_not_a_plane_keeps_the_reason_and_no_plane(self, prediction, clinician):
        reviewed = prediction_review(
            prediction=prediction, not_plane_reason="non_fetal", reviewed_by=clinician, comment=" a parrot "
        )
        assert (reviewed.review_state, reviewed.not_plane_reason, reviewed.reviewed_label) == (
            State.NOT_A_PLANE,
            "non_fetal",
            "",
        )
        assert reviewed.final_label == "" and reviewed.review_comment == "a parrot"
        assert reviewed.is_reviewed and not Prediction.objects.awaiting_review().filter(id=prediction.id).exists()

    @pytest.mark.parametrize(
        "arguments",
        [{}, {"label": "", "not_plane_reason": ""}, {"label": "fetal_brain", "not_plane_reason": "maternal"}],
        ids=["neither", "both-empty", "both"],
    )
    def test_exactly_one_of_a_plane_and_a_reason(self, prediction, clinician, arguments):
        with pytest.raises(ValidationError, match="either a plane"):
            prediction_review(prediction=prediction, reviewed_by=clinician, **arguments)
        assert Prediction.objects.get(id=prediction.id).review_state == State.SUGGESTED

    def test_an_unknown_reason_is_refused(self, prediction, clinician):
        with pytest.raises(ValidationError) as refused:
            prediction_review(prediction=prediction, not_plane_reason="parrot", reviewed_by=clinician)
        assert "not_plane_reason" in refused.value.message_dict

    def test_a_sonographer_may_not_mark_an_image_not_a_plane(self, prediction, sonographer):
        with pytest.raises(PermissionDenied):
            prediction_review(prediction=prediction, not_plane_reason="maternal", reviewed_by=sonographer)
        assert Prediction.objects.get(id=prediction.id).review_state == State.SUGGESTED

    def test_every_change_of_mind_is_in_the_history(self, prediction, clinician):
        prediction_review(prediction=prediction, not_plane_reason="maternal", reviewed_by=clinician)
        prediction_review(prediction=prediction, label=_other(prediction.label), reviewed_by=clinician)
        prediction_review(prediction=prediction, label=prediction.label, reviewed_by=clinician)

        rows = list(Prediction.history.filter(id=prediction.id).order_by("history_date", "history_id"))
        assert [(row.review_state, row.not_plane_reason) for row in rows] == [
            (State.SUGGESTED, ""),
            (State.NOT_A_PLANE, "maternal"),
            (State.CORRECTED, ""),
            (State.CONFIRMED, ""),
        ]
        assert all(row.history_user == clinician for row in rows[1:])
        assert rows[1].history_change_reason == "review: not_a_plane (maternal)"

    def test_the_database_refuses_a_state_that_does_not_match_its_label(self, prediction, clinician):
        prediction.review_state, prediction.reviewed_by = State.CORRECTED, clinician
        prediction.reviewed_label = prediction.label  # the model's own plane is a confirmation, not a correction
        with pytest.raises(ValidationError, match="does not match"):
            prediction.full_clean()


@pytest.mark.django_db(transaction=True)
class TestMigration:
    """0009 turns the reviews made before review states into confirmed (the model's plane kept) or corrected."""

    BEFORE = [("classifier", "0008_cine_frames_without_key_frames")]

    def test_existing_reviews_become_confirmed_or_corrected(self, study, sonographer, clinician):
        # Uploaded first, through today's service and schema; the reviews are then made on the old schema.
        images = [
            image_upload(study=study, data=png_bytes(seed=seed), filename="a.png", uploaded_by=sonographer).image
            for seed in range(3)
        ]
        executor = MigrationExecutor(connection)
        executor.migrate(self.BEFORE)
        old = executor.loader.project_state(self.BEFORE).apps
        job_model, prediction_model = (
            old.get_model("classifier", "ClassificationJob"),
            old.get_model("classifier", "Prediction"),
        )
        reviewed = ["fetal_brain", "fetal_femur", ""]  # kept, changed, never reviewed
        for image, reviewed_label in zip(images, reviewed, strict=True):
            job = job_model.objects.get(image_id=image.id)
            prediction_model.objects.create(
                job=job,
                label="fetal_brain",
                confidence=0.9,
                probabilities={},
                needs_review=False,
                inference_ms=1,
                reviewed_label=reviewed_label,
                reviewed_by_id=clinician.id if reviewed_label else None,
                reviewed_at=job.queued_at if reviewed_label else None,
            )

        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

        states = [Prediction.objects.get(job__image=image).review_state for image in images]
        assert states == [State.CONFIRMED, State.CORRECTED, State.SUGGESTED]
