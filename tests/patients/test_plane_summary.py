"""The study's plane summary (issue 19): a plane is present only once a clinician confirmed it. A photograph the
real model reads as a plane (flagged for review), not-a-plane and excluded images never count; a cine clip does
not count itself, its key frames do."""

import csv

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from classifier.labels import PLANE_LABELS
from classifier.models import Prediction
from classifier.services import classification_job_run, prediction_review
from patients.models import UltrasoundImage
from patients.selectors import image_get, image_review_state, study_plane_summary
from patients.services import image_exclude, image_include, image_upload
from tests.cine_samples import DATA, has_real_images, make_mp4
from tests.factories import StudyFactory
from tests.images import photo_bytes, png_bytes

needs_real_images = pytest.mark.skipif(not has_real_images(), reason="the fetal-planes images are absent")


def real_plane_bytes(label: str, index: int = 0) -> bytes:
    """The index-th test-split image of this plane from ../shared/data/fetal-planes."""
    with open(DATA / "manifest.csv", newline="") as manifest:
        rows = [row for row in csv.DictReader(manifest) if row["label"] == label and row["split"] == "test"]
    return (DATA / rows[index]["file"]).read_bytes()


def confident_plane_bytes(label: str, user) -> bytes:
    """A real image of this plane that the active model reads as it, unflagged (tried in a study of its own)."""
    probe = StudyFactory(patient__clinic=user.clinic, created_by=user)
    for index in range(10):
        data = real_plane_bytes(label, index)
        prediction = classify(upload(probe, user, data))
        if prediction.label == label and not prediction.needs_review:
            return data
    pytest.fail(f"no unflagged {label} among the first ten test images")


def upload(study, user, data: bytes, name: str = "scan.png") -> UltrasoundImage:
    return image_upload(study=study, data=data, filename=name, uploaded_by=user).image


def classify(image: UltrasoundImage) -> Prediction:
    """Its job's prediction; the run may already have been done by an earlier one's micro-batch."""
    job = image.jobs.get()
    classification_job_run(job_id=job.id)
    return Prediction.objects.get(job=job)


def states(study) -> dict[str, str]:
    return {row.label: row.state for row in study_plane_summary(study=study).planes}


class TestWithTheRealModel:
    def test_a_flagged_photograph_does_not_make_its_plane_present(self, study, sonographer, real_model):
        photo = upload(study, sonographer, photo_bytes(seed=0), "parrot.jpg")
        prediction = classify(photo)
        assert prediction.needs_review, "the real model should flag a photograph for review"

        summary = study_plane_summary(study=study)

        assert states(study)[prediction.label] == "missing"
        assert [image.id for image in summary.unreviewed] == [photo.id]
        assert summary.missing == PLANE_LABELS and not summary.pending

    @needs_real_images
    def test_a_confirmed_plane_is_present_and_an_unflagged_suggestion_only_suggested(
        self, study, sonographer, clinician, real_model
    ):
        brain = upload(study, sonographer, confident_plane_bytes("fetal_brain", sonographer), "brain.png")
        femur = upload(study, sonographer, real_plane_bytes("fetal_femur"), "femur.png")
        brain_prediction, femur_prediction = classify(brain), classify(femur)
        assert not brain_prediction.needs_review and brain_prediction.label == "fetal_brain"
        prediction_review(prediction=femur_prediction, label="fetal_femur", reviewed_by=clinician)

        summary = study_plane_summary(study=study)

        rows = {row.label: row for row in summary.planes}
        assert (rows["fetal_femur"].state, rows["fetal_femur"].images) == ("confirmed", [femur])
        assert (rows["fetal_brain"].state, rows["fetal_brain"].images) == ("suggested", [brain])
        assert summary.unreviewed == [brain] and summary.missing == ["fetal_thorax", "fetal_abdomen"]

    @needs_real_images
    def test_a_correction_counts_for_the_clinicians_plane_not_the_models(
        self, study, sonographer, clinician, real_model
    ):
        image = upload(study, sonographer, real_plane_bytes("fetal_thorax"), "thorax.png")
        prediction = classify(image)
        other = next(label for label in PLANE_LABELS if label != prediction.label)
        prediction_review(prediction=prediction, label=other, reviewed_by=clinician)

        assert states(study)[other] == "confirmed" and states(study)[prediction.label] == "missing"


class TestWhatNeverCounts:
    @pytest.fixture
    def confirmed(self, study, sonographer, clinician, active_model) -> UltrasoundImage:
        image = upload(study, sonographer, png_bytes(seed=1))
        prediction = classify(image)
        prediction_review(prediction=prediction, label=prediction.label, reviewed_by=clinician)
        return image

    def test_not_a_plane_never_counts_and_is_no_longer_unreviewed(self, study, sonographer, clinician, active_model):
        image = upload(study, sonographer, png_bytes(seed=2))
        prediction_review(prediction=classify(image), not_plane_reason="non_fetal", reviewed_by=clinician)

        summary = study_plane_summary(study=study)

        assert summary.missing == PLANE_LABELS and not summary.unreviewed
        assert image_review_state(image_get(user=clinician, image_id=image.id)) == "not_a_plane"

    def test_an_excluded_image_leaves_the_summary_but_keeps_its_prediction_and_history(
        self, study, clinician, confirmed
    ):
        label = confirmed.jobs.get().prediction.reviewed_label
        assert states(study)[label] == "confirmed"

        image_exclude(image=confirmed, excluded_by=clinician, reason="wrong_patient", comment="Mrs B's scan")

        assert states(study)[label] == "missing"
        image = image_get(user=clinician, image_id=confirmed.id)
        assert image_review_state(image) == "excluded"
        assert image.excluded_by == clinician and image.jobs.get().prediction.reviewed_label == label
        latest = image.history.latest()
        assert (latest.history_user, latest.history_change_reason) == (clinician, "Mrs B's scan")

        image_include(image=image, included_by=clinician)

        assert states(study)[label] == "confirmed"
        assert image_review_state(image_get(user=clinician, image_id=confirmed.id)) == "confirmed"
        reasons = [row.history_change_reason for row in image.history.order_by("history_date", "history_id")]
        assert reasons[-2:] == ["Mrs B's scan", "Included again"]

    def test_an_excluded_suggestion_is_not_left_unreviewed(self, study, sonographer, clinician, active_model):
        image = upload(study, sonographer, png_bytes(seed=3))
        classify(image)
        image_exclude(image=image, excluded_by=clinician, reason="test_image")
        assert not study_plane_summary(study=study).unreviewed

    def test_only_a_clinician_excludes_or_includes(self, study, sonographer, confirmed, clinician):
        with pytest.raises(PermissionDenied):
            image_exclude(image=confirmed, excluded_by=sonographer, reason="test_image")
        image_exclude(image=confirmed, excluded_by=clinician, reason="test_image")
        with pytest.raises(PermissionDenied):
            image_include(image=confirmed, included_by=sonographer)
        assert UltrasoundImage.objects.get(id=confirmed.id).excluded_reason == "test_image"

    def test_another_clinics_clinician_may_not_exclude(self, confirmed, south):
        from fetalsite.accounts.roles import Role
        from tests.factories import UserFactory

        outsider = UserFactory(clinic=south, role=Role.CLINICIAN)
        with pytest.raises(PermissionDenied):
            image_exclude(image=confirmed, excluded_by=outsider, reason="test_image")

    def test_an_unknown_reason_is_refused(self, confirmed, clinician):
        with pytest.raises(ValidationError) as refused:
            image_exclude(image=confirmed, excluded_by=clinician, reason="blurry")
        assert "reason" in refused.value.message_dict

    def test_an_image_not_yet_classified_is_pending(self, study, sonographer, clinician, active_model):
        image = upload(study, sonographer, png_bytes(seed=4))
        summary = study_plane_summary(study=study)
        assert summary.pending == [image] and not summary.unreviewed
        assert image_review_state(image_get(user=clinician, image_id=image.id)) == "pending"


class TestCineClips:
    def test_a_clip_does_not_count_its_key_frames_do(self, study, sonographer, clinician, real_model):
        clip = upload(study, sonographer, make_mp4(24), "sweep.mp4")
        classification_job_run(job_id=clip.jobs.get().id)
        key_frames = list(clip.key_frames.order_by("id"))
        if not key_frames:
            pytest.skip("no frame of the sweep passed the review rule, so the clip has no key frame")
        assert study_plane_summary(study=study).pending == key_frames  # the clip itself is never pending

        predictions = [classify(still) for still in key_frames]
        summary = study_plane_summary(study=study)
        assert summary.unreviewed == key_frames and clip not in summary.unreviewed

        prediction_review(prediction=predictions[0], label=predictions[0].label, reviewed_by=clinician)
        assert states(study)[predictions[0].label] == "confirmed"

    def test_excluding_a_clip_excludes_its_key_frames(self, study, sonographer, clinician, real_model):
        clip = upload(study, sonographer, make_mp4(24), "sweep.mp4")
        classification_job_run(job_id=clip.jobs.get().id)
        image_exclude(image=clip, excluded_by=clinician, reason="wrong_patient")
        assert all(still.is_excluded for still in clip.key_frames.all())
        assert not study_plane_summary(study=study).pending


class TestImageHistory:
    def test_the_history_tells_not_a_plane_exclusion_and_inclusion(self, study, sonographer, clinician, active_model):
        from patients.selectors import image_history

        image = upload(study, sonographer, png_bytes(seed=5))
        prediction = classify(image)
        prediction_review(prediction=prediction, not_plane_reason="maternal", reviewed_by=clinician)
        image_exclude(image=image, excluded_by=clinician, reason="wrong_patient", comment="Twin's scan")
        image_include(image=image, included_by=clinician)

        events = [(event.kind, event.actor, event.text) for event in image_history(user=clinician, image_id=image.id)]

        assert events[-3][:2] == ("review", clinician.username)
        assert events[-3][2].startswith("Marked not a standard fetal plane (maternal; model said")
        assert events[-2:] == [
            ("exclusion", clinician.username, "Excluded (wrong patient): “Twin's scan”"),
            ("exclusion", clinician.username, "Included again."),
        ]
