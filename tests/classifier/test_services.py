import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from classifier.labels import PLANE_LABELS
from classifier.models import ClassificationJob, ModelVersion, Prediction
from classifier.services import classification_job_run, model_version_register, prediction_review
from patients.services import image_upload
from tests.images import png_bytes


@pytest.fixture
def queued_job(study, sonographer, active_model):
    return image_upload(study=study, data=png_bytes(), filename="a.png", uploaded_by=sonographer).image.jobs.get()


class TestClassificationJobRun:
    def test_real_inference_saves_one_prediction(self, queued_job):
        job = classification_job_run(job_id=queued_job.id)
        assert job.status == ClassificationJob.Status.SUCCEEDED and job.attempts == 1
        prediction = job.prediction
        assert prediction.label in PLANE_LABELS
        assert set(prediction.probabilities) == set(PLANE_LABELS)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
        assert prediction.confidence == pytest.approx(max(prediction.probabilities.values()))
        assert prediction.needs_review == (prediction.confidence < 0.5)
        # Grad-CAM is made when someone asks for it (tests/classifier/test_heatmaps.py), not with the prediction.
        assert not prediction.heatmap and prediction.heatmap_requested_at is None
        assert prediction.runtime == "keras"

    def test_running_twice_leaves_one_prediction(self, queued_job):
        classification_job_run(job_id=queued_job.id)
        assert classification_job_run(job_id=queued_job.id) is None
        assert Prediction.objects.filter(job=queued_job).count() == 1
        assert ClassificationJob.objects.get(id=queued_job.id).attempts == 1

    def test_without_an_active_model_the_job_fails_saying_so(self, study, sonographer):
        job = image_upload(study=study, data=png_bytes(), filename="a.png", uploaded_by=sonographer).image.jobs.get()
        job = classification_job_run(job_id=job.id)
        assert job.status == ClassificationJob.Status.FAILED
        assert "No active model" in job.error

    def test_a_missing_job_is_ignored(self, db):
        assert classification_job_run(job_id=123_456_789) is None


class TestNoveltyFlag:
    """A model with the novelty output: the similarity is stored and low similarity flags the prediction."""

    def _run(self, study, sonographer, seed=0):
        data = png_bytes(seed=seed)
        job = image_upload(study=study, data=data, filename="a.png", uploaded_by=sonographer).image.jobs.get()
        return classification_job_run(job_id=job.id).prediction

    def test_the_card_thresholds_are_registered(self, register_tiny_novelty_model):
        version = register_tiny_novelty_model(review_threshold=0.3, novelty_threshold=0.25)
        version.refresh_from_db()
        assert (version.review_threshold, version.novelty_threshold) == (0.3, 0.25)

    def test_an_image_unlike_the_training_images_is_flagged(self, register_tiny_novelty_model, study, sonographer):
        register_tiny_novelty_model(review_threshold=0.0, novelty_threshold=1.0)

        prediction = self._run(study, sonographer)

        assert -1.0 <= prediction.similarity < 1.0
        assert prediction.needs_review is True
        assert prediction.unlike_training_images is True

    def test_a_familiar_confident_image_is_not_flagged(self, register_tiny_novelty_model, study, sonographer):
        register_tiny_novelty_model(review_threshold=0.0, novelty_threshold=-1.0)

        prediction = self._run(study, sonographer)

        assert prediction.similarity is not None
        assert prediction.needs_review is False
        assert prediction.unlike_training_images is False

    def test_a_changed_threshold_applies_to_the_next_job_without_a_worker_restart(
        self, register_tiny_novelty_model, study, sonographer
    ):
        first = register_tiny_novelty_model(review_threshold=0.0, novelty_threshold=1.0)
        assert self._run(study, sonographer).needs_review is True

        second = register_tiny_novelty_model(review_threshold=0.0, novelty_threshold=-1.0)  # the card re-registered

        assert second.id == first.id
        assert self._run(study, sonographer, seed=1).needs_review is False

    def test_a_model_without_the_output_stores_no_similarity(self, queued_job):
        prediction = classification_job_run(job_id=queued_job.id).prediction
        assert prediction.similarity is None and prediction.unlike_training_images is False


class TestModelVersionRegister:
    def test_rejects_a_card_whose_sha256_does_not_match(self, db, tiny_model_dir, tmp_path, settings):
        card = (tiny_model_dir / "tiny-v1.card.json").read_text().replace('"sha256": "', '"sha256": "0')
        (tmp_path / "tiny-v1.keras").write_bytes((tiny_model_dir / "tiny-v1.keras").read_bytes())
        (tmp_path / "bad.card.json").write_text(card)
        with pytest.raises(ValidationError, match="differs"):
            model_version_register(card_path=tmp_path / "bad.card.json")
        assert not ModelVersion.objects.exists()

    def test_only_one_version_is_active(self, active_model, tiny_model_dir, tmp_path):
        card = (tiny_model_dir / "tiny-v1.card.json").read_text().replace('"version": "1"', '"version": "2"')
        (tmp_path / "tiny-v1.keras").write_bytes((tiny_model_dir / "tiny-v1.keras").read_bytes())
        (tmp_path / "v2.card.json").write_text(card)
        second = model_version_register(card_path=tmp_path / "v2.card.json", activate=True)
        assert list(ModelVersion.objects.filter(is_active=True)) == [second]


class TestPredictionReview:
    @pytest.fixture
    def prediction(self, queued_job):
        return classification_job_run(job_id=queued_job.id).prediction

    def test_clinician_corrects_the_label_and_the_models_answer_stays(self, prediction, clinician):
        original = prediction.label
        other = next(label for label in PLANE_LABELS if label != original)
        reviewed = prediction_review(prediction=prediction, label=other, reviewed_by=clinician, comment=" femur ")
        assert (reviewed.label, reviewed.reviewed_label, reviewed.final_label) == (original, other, other)
        assert (reviewed.reviewed_by, reviewed.review_comment) == (clinician, "femur")
        latest = reviewed.history.latest()
        assert latest.history_user == clinician and latest.reviewed_label == other

    def test_sonographer_may_not_review(self, prediction, sonographer):
        with pytest.raises(PermissionDenied):
            prediction_review(prediction=prediction, label=PLANE_LABELS[0], reviewed_by=sonographer)
        assert not Prediction.objects.get(id=prediction.id).reviewed_label

    def test_rejects_a_label_outside_the_four_planes(self, prediction, clinician):
        with pytest.raises(ValidationError):
            prediction_review(prediction=prediction, label="maternal_cervix", reviewed_by=clinician)
