"""A cine loop's job with the committed model: every frame's planes kept compactly, the best frame of each plane
made a still with its own job, exactly once, and those stills classified like any image, by a real worker too.

The clip is tests.cine_samples' sweep over real images: a brain in its first half, a femur in its second.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.uid import JPEGBaseline8Bit

from classifier.ml.frames import iter_frames
from classifier.ml.inference import FrameScores
from classifier.ml.keyframes import KeyFrame
from classifier.models import CineFrames, ClassificationJob, Prediction, WebhookDelivery, WebhookEndpoint
from classifier.registry import classifier_for
from classifier.services import cine_frames_save, classification_job_run, model_version_register
from classifier.webhooks import webhook_endpoint_save
from patients.models import UltrasoundImage
from patients.services import cine_key_frames_store, dicom_instance_receive, image_upload
from tests.cine_samples import has_real_images, make_mp4, make_multiframe_dicom
from tests.conftest import wait_for
from tests.images import png_bytes

pytestmark = pytest.mark.skipif(
    not has_real_images(), reason="the fetal-planes images are absent: which plane a generated frame shows is unknown"
)

FRAMES = 24  # frames 0-11 a brain, 12-23 a femur
HALF = FRAMES // 2
PUBLIC_URL = "https://93.184.215.14/hook"  # a literal public address: no DNS, and nothing is sent to it here


@pytest.fixture
def real_model(db, settings):
    settings.MODELS_DIR = Path(settings.BASE_DIR) / "models"
    return model_version_register(card_path=settings.MODELS_DIR / "fetal-planes-v3.card.json", activate=True)


@pytest.fixture(scope="module")
def clip_bytes() -> bytes:
    return make_mp4(FRAMES)


@pytest.fixture
def clip(study, sonographer, real_model, clip_bytes) -> UltrasoundImage:
    image = image_upload(study=study, data=clip_bytes, filename="sweep.mp4", uploaded_by=sonographer).image
    assert image.is_cine and image.frame_count == FRAMES
    return image


def _run(clip: UltrasoundImage) -> ClassificationJob:
    return classification_job_run(job_id=clip.jobs.get().id)


class TestCineJobRun:
    def test_keeps_every_frames_scores_and_makes_no_prediction_for_the_clip(self, clip):
        job = _run(clip)

        assert job.status == ClassificationJob.Status.SUCCEEDED and job.error == ""
        frames = CineFrames.objects.get(job=job)
        assert frames.frame_count == FRAMES and frames.class_labels == job.model_version.class_labels
        assert len(bytes(frames.probabilities)) == FRAMES * 4 * 2  # float16, four planes
        assert len(bytes(frames.flags)) == FRAMES and len(bytes(frames.similarities)) == FRAMES * 2
        assert frames.probability_rows().sum(axis=1) == pytest.approx(np.ones(FRAMES), abs=5e-3)
        assert frames.inference_ms > 0
        assert not Prediction.objects.filter(job__image=clip).exists()

    def test_each_frames_plane_is_what_the_frame_classified_as_a_still_gets(self, clip, clip_bytes):
        job = _run(clip)
        frames = job.cine_frames
        classifier = classifier_for(job.model_version)

        stills = [classifier.classify(frame) for frame in iter_frames(clip_bytes)]

        assert frames.frame_labels() == [still.label for still in stills]
        assert frames.frame_labels() == ["fetal_brain"] * HALF + ["fetal_femur"] * HALF
        expected = np.array([[s.probabilities[name] for name in frames.class_labels] for s in stills])
        assert np.abs(frames.probability_rows() - expected).max() < 1e-3  # float16 rounding: under 2.5e-4
        assert frames.flag_list() == [still.needs_review for still in stills]

    def test_the_best_frame_of_each_plane_becomes_a_still_with_its_own_queued_job(
        self, clip, clip_bytes, sonographer, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks() as callbacks:
            job = _run(clip)

        chosen = {row["label"]: row for row in job.cine_frames.key_frames}
        assert set(chosen) == {"fetal_brain", "fetal_femur"}
        assert chosen["fetal_brain"]["frame_index"] < HALF <= chosen["fetal_femur"]["frame_index"]
        flags = job.cine_frames.flag_list()
        assert not any(flags[row["frame_index"]] for row in chosen.values())
        decoded = list(iter_frames(clip_bytes))
        stills = list(clip.key_frames.order_by("clip_frame_index"))
        assert [s.clip_frame_index for s in stills] == sorted(row["frame_index"] for row in chosen.values())
        for still in stills:
            original = still.original.read()
            assert (still.kind, still.format, still.study_id) == ("still", "PNG", clip.study_id)
            assert still.uploaded_by == sonographer and still.sha256 == hashlib.sha256(original).hexdigest()
            assert still.original_filename == f"sweep-frame-{still.clip_frame_index}.png"
            assert still.history.earliest().history_change_reason == f"key frame of image #{clip.id}"
            with Image.open(io.BytesIO(original)) as picture:
                assert np.array_equal(np.asarray(picture), np.asarray(decoded[still.clip_frame_index]))
            assert still.jobs.get().status == ClassificationJob.Status.QUEUED
        assert len(callbacks) == len(stills)  # each still's job is sent to the broker once this commits

    def test_running_again_makes_no_second_analysis_and_no_second_key_frames(self, clip):
        job = _run(clip)
        stills_before = set(clip.key_frames.values_list("id", flat=True))

        assert classification_job_run(job_id=job.id) is None
        # Even a save reaching a finished job (a redelivery racing the first run) and the store itself, twice.
        frames = job.cine_frames
        scores = FrameScores(frames.probability_rows(), None, np.array(frames.flag_list()), inference_ms=1.0)
        assert cine_frames_save(job_id=job.id, scores=scores, key_frames=[]).status == job.status
        again = cine_key_frames_store(clip=clip, key_frames=_key_frames_of(clip))

        assert {s.id for s in again} == stills_before
        assert CineFrames.objects.filter(job__image=clip).get() == frames
        assert set(clip.key_frames.values_list("id", flat=True)) == stills_before
        assert ClassificationJob.objects.filter(image__clip=clip).count() == len(stills_before)
        assert ClassificationJob.objects.get(id=job.id).attempts == 1

    def test_the_key_frame_stills_are_classified_as_the_plane_they_were_chosen_for(self, clip, north):
        endpoint = webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url=PUBLIC_URL))
        chosen = {row["frame_index"]: row["label"] for row in _run(clip).cine_frames.key_frames}

        stills = list(clip.key_frames.order_by("id"))
        # The first still's run takes the other queued stills of its model with it, as one micro-batch.
        classification_job_run(job_id=stills[0].jobs.get().id)
        for still in stills:
            prediction = still.jobs.get().prediction
            assert prediction.label == chosen[still.clip_frame_index]
            assert not prediction.needs_review

        created = WebhookDelivery.objects.filter(endpoint=endpoint, event_type="prediction.created")
        assert sorted(d.payload["data"]["image"] for d in created) == sorted(
            clip.key_frames.values_list("id", flat=True)
        )

    def test_a_multiframe_dicom_received_from_a_machine_gets_its_key_frames_too(self, north, sonographer, real_model):
        data = make_multiframe_dicom(12, size=(320, 240), transfer_syntax=JPEGBaseline8Bit)
        clip = dicom_instance_receive(clinic=north, data=data, received_by=sonographer, source="test").image

        frames = _run(clip).cine_frames

        assert frames.frame_labels() == ["fetal_brain"] * 6 + ["fetal_femur"] * 6
        assert sorted(row["label"] for row in frames.key_frames) == ["fetal_brain", "fetal_femur"]
        stills = clip.key_frames.order_by("clip_frame_index")
        assert [still.clip_frame_index for still in stills] == sorted(row["frame_index"] for row in frames.key_frames)
        assert all(still.study_id == clip.study_id and still.format == "PNG" for still in stills)

    def test_a_clip_that_cannot_be_decoded_fails_at_once_without_an_analysis(self, clip, clip_bytes):
        Path(clip.original.path).write_bytes(clip_bytes[: len(clip_bytes) // 3])  # the file damaged on disk

        job = _run(clip)

        assert job.status == ClassificationJob.Status.FAILED and "cannot be decoded" in job.error
        assert not CineFrames.objects.filter(job=job).exists() and not clip.key_frames.exists()


class TestCineKeyFramesStore:
    def test_a_key_frame_with_the_bytes_of_a_still_of_the_study_is_that_still(self, clip, study, sonographer):
        data = png_bytes()
        still = image_upload(study=study, data=data, filename="still.png", uploaded_by=sonographer).image

        stored = cine_key_frames_store(clip=clip, key_frames=[KeyFrame("fetal_brain", 3, 0.9, data)])

        assert stored == [still]
        still.refresh_from_db()
        assert still.clip_id is None and still.jobs.count() == 1  # neither taken over nor queued again
        assert not clip.key_frames.exists()


def _key_frames_of(clip: UltrasoundImage) -> list[KeyFrame]:
    """The key frames the clip's job found, as the worker hands them over."""
    stills = {still.clip_frame_index: still for still in clip.key_frames.all()}
    rows = clip.jobs.get().cine_frames.key_frames
    return [
        KeyFrame(row["label"], row["frame_index"], row["confidence"], stills[row["frame_index"]].original.read())
        for row in rows
    ]


class TestThroughTheWorker:
    def test_an_uploaded_clip_ends_with_classified_key_frames(self, celery_worker, real_model, study, sonographer):
        clip = image_upload(study=study, data=make_mp4(FRAMES), filename="sweep.mp4", uploaded_by=sonographer).image

        predictions = wait_for(
            lambda: len(found := list(Prediction.objects.filter(job__image__clip=clip))) == 2 and found,
            timeout=180,
        )

        frames = CineFrames.objects.get(job__image=clip)
        chosen = {row["frame_index"]: row["label"] for row in frames.key_frames}
        assert {p.job.image.clip_frame_index: p.label for p in predictions} == chosen
        assert sorted(chosen.values()) == ["fetal_brain", "fetal_femur"]
        assert not Prediction.objects.filter(job__image=clip).exists()
