"""Micro-batching: a classify task claims its job and the other queued stills of its model (up to MICRO_BATCH_MAX),
predicts them in one call and saves each exactly once; a bad image fails or retries alone; a lone image is never
held back; the co-claimed jobs' own messages find nothing to do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.signals import task_postrun
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from classifier.models import ClassificationJob, Prediction
from classifier.services import classification_job_run, job_batch_start, job_retry_or_fail, jobs_requeue_stale
from classifier.tasks import classify_image
from patients.services import image_upload
from tests.conftest import wait_for
from tests.images import png_bytes


def upload(study, user, seed: int):
    return image_upload(study=study, data=png_bytes(seed=seed), filename=f"{seed}.png", uploaded_by=user).image


def spoil(image) -> None:
    """The stored still no longer decodes (a disk fault, a truncated copy): its job's run fails."""
    name = image.file.name
    image.file.storage.delete(name)
    assert image.file.storage.save(name, ContentFile(b"not an image any more")) == name


def jobs_of(images) -> list[ClassificationJob]:
    return [ClassificationJob.objects.get(image=image) for image in images]


class TestBatchInOneRun:
    def test_one_run_classifies_the_queued_stills_of_its_model_each_once(self, study, sonographer, active_model):
        images = [upload(study, sonographer, seed) for seed in range(3)]
        first = jobs_of(images)[0]

        classification_job_run(job_id=first.id)

        jobs = jobs_of(images)
        assert [job.status for job in jobs] == [ClassificationJob.Status.SUCCEEDED] * 3
        assert [job.attempts for job in jobs] == [1, 1, 1]
        assert len({job.started_at for job in jobs}) == 1, "claimed together, as one batch"
        # The co-claimed jobs' own messages come later and find nothing to do.
        assert [classification_job_run(job_id=job.id) for job in jobs[1:]] == [None, None]
        assert Prediction.objects.filter(job__in=jobs).count() == 3
        assert {job.prediction.runtime for job in jobs} == {"keras"}

    def test_at_most_micro_batch_max_oldest_first(self, study, sonographer, active_model, settings):
        settings.MICRO_BATCH_MAX = 2
        images = [upload(study, sonographer, seed) for seed in range(4)]
        jobs = jobs_of(images)

        classification_job_run(job_id=jobs[2].id)

        statuses = [ClassificationJob.objects.get(id=job.id).status for job in jobs]
        assert statuses == ["SUCCEEDED", "QUEUED", "SUCCEEDED", "QUEUED"]  # its own job and the oldest other

    def test_micro_batch_max_1_turns_it_off(self, study, sonographer, active_model, settings):
        settings.MICRO_BATCH_MAX = 1
        images = [upload(study, sonographer, seed) for seed in range(2)]

        classification_job_run(job_id=jobs_of(images)[0].id)

        assert [job.status for job in jobs_of(images)] == ["SUCCEEDED", "QUEUED"]

    def test_a_bad_image_retries_alone(self, study, sonographer, active_model, django_capture_on_commit_callbacks):
        images = [upload(study, sonographer, seed) for seed in range(3)]
        spoil(images[1])

        with django_capture_on_commit_callbacks() as callbacks:
            classification_job_run(job_id=jobs_of(images)[0].id)

        good, bad, other = jobs_of(images)
        assert good.status == other.status == ClassificationJob.Status.SUCCEEDED
        assert (bad.status, bad.attempts) == (
            ClassificationJob.Status.QUEUED,
            1,
        ) and "UnidentifiedImageError" in bad.error
        assert not Prediction.objects.filter(job=bad).exists()
        # The classifier's sends only (the good brain images' measurement jobs are queued too).
        resent = [c for c in callbacks if _is_classifier_send(c)]
        assert [c.args for c in resent] == [(bad.id,)], "the bad one alone is sent again"

    def test_a_bad_first_image_raises_for_its_task_after_the_others_are_saved(self, study, sonographer, active_model):
        images = [upload(study, sonographer, seed) for seed in range(2)]
        spoil(images[0])

        with pytest.raises(Exception, match="cannot identify image"):
            classification_job_run(job_id=jobs_of(images)[0].id)

        bad, good = jobs_of(images)
        assert bad.status == ClassificationJob.Status.RUNNING  # its task's handler decides (job_retry_or_fail)
        assert good.status == ClassificationJob.Status.SUCCEEDED

    def test_a_batch_whose_worker_died_is_sent_again_whole_and_each_runs_once(
        self, study, sonographer, active_model, settings
    ):
        images = [upload(study, sonographer, seed) for seed in range(3)]
        ids = [job.id for job in job_batch_start(job_id=jobs_of(images)[0].id, size=settings.MICRO_BATCH_MAX)]
        assert ids == [job.id for job in jobs_of(images)]
        # The worker died with the batch claimed: longer ago than the time limit, every job is stale.
        long_ago = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 1)
        ClassificationJob.objects.filter(id__in=ids).update(started_at=long_ago)

        assert sorted(jobs_requeue_stale()) == sorted(ids), "the sweeper sends the co-claimed jobs again too"
        for job_id in ids:  # each resent message claims its own job
            assert classification_job_run(job_id=job_id).status == ClassificationJob.Status.SUCCEEDED

        assert [job.attempts for job in jobs_of(images)] == [2, 2, 2]
        assert Prediction.objects.filter(job_id__in=ids).count() == 3

    def test_a_job_out_of_retries_fails_for_good(self, study, sonographer, active_model, settings):
        job = jobs_of([upload(study, sonographer, 0)])[0]
        ClassificationJob.objects.filter(id=job.id).update(status="RUNNING", attempts=settings.CLASSIFY_MAX_RETRIES + 1)

        job_retry_or_fail(job_id=job.id, reason="OSError: disk")

        job.refresh_from_db()
        assert (job.status, job.error) == (ClassificationJob.Status.FAILED, "OSError: disk")


@pytest.fixture
def classify_runs():
    """Job ids of the classify_image messages the worker has run to the end."""
    runs: list[int] = []

    def count(sender=None, kwargs=None, **_):
        if sender.name == classify_image.name:
            runs.append(kwargs["job_id"])

    task_postrun.connect(count)
    yield runs
    task_postrun.disconnect(count)


@pytest.mark.e2e
class TestBatchThroughTheWorker:
    def test_queued_stills_are_predicted_together_each_exactly_once(
        self, transactional_db, request, active_model, study, sonographer, classify_runs
    ):
        # The five jobs are queued with no worker running; the worker (its fixture empties the queues) then gets
        # their five messages, and the first finds all five queued and unlocked. (With a worker already running,
        # its first claim can meet a row that the upload's celery_task_id update holds for an instant; the claim
        # skips that row, rightly, and it goes as a batch of its own: the test would depend on timing.)
        with transaction.atomic():
            images = [upload(study, sonographer, seed) for seed in range(5)]
        ids = [job.id for job in jobs_of(images)]
        request.getfixturevalue("celery_worker")
        for job_id in ids:
            classify_image.apply_async(kwargs={"job_id": job_id})

        wait_for(lambda: sorted(classify_runs) == sorted(ids))  # every message went through the worker

        jobs = jobs_of(images)
        assert all(job.status == ClassificationJob.Status.SUCCEEDED for job in jobs), [j.error for j in jobs]
        assert [job.attempts for job in jobs] == [1] * 5
        assert len({job.started_at for job in jobs}) == 1, "the first message claimed all five as one batch"
        assert Prediction.objects.filter(job_id__in=ids).count() == 5

    def test_a_bad_image_in_a_batch_fails_alone_after_its_retries(
        self, celery_worker, active_model, study, sonographer, settings
    ):
        with transaction.atomic():
            images = [upload(study, sonographer, seed) for seed in range(3)]
            spoil(images[1])

        wait_for(lambda: all(job.is_finished for job in jobs_of(images)))

        good, bad, other = jobs_of(images)
        assert (good.status, good.attempts) == (other.status, other.attempts) == ("SUCCEEDED", 1)
        assert (bad.status, bad.attempts) == ("FAILED", settings.CLASSIFY_MAX_RETRIES + 1)
        assert Prediction.objects.filter(job_id__in=[good.id, bad.id, other.id]).count() == 2

    def test_a_lone_image_is_not_held_back(self, celery_worker, active_model, study, sonographer, settings):
        assert settings.MICRO_BATCH_MAX > 1
        image = upload(study, sonographer, 9)

        job = wait_for(lambda: (job := jobs_of([image])[0]).is_finished and job, timeout=30)

        assert (job.status, job.attempts) == ("SUCCEEDED", 1)


def _is_classifier_send(callback) -> bool:
    func = getattr(callback, "func", None)
    return getattr(func, "__name__", "") == "_send" and getattr(func, "__module__", "") == "classifier.services"
