"""The multi-host rehearsal of docs/deploy.md, on this machine: two worker processes as two hosts, each in its own
working directory with its own (empty) MEDIA_ROOT, with only S3 (a local moto server), PostgreSQL (the test
database) and the broker (a Redis DB of their own) in common. Uploads spread over both; every image is
classified exactly once; both workers did work; no file lands on any disk."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from classifier.models import CineFrames, ClassificationJob, Prediction
from patients.models import UltrasoundImage
from tests import object_storage
from tests.cine_samples import make_mp4
from tests.conftest import wait_for
from tests.images import png_bytes
from tests.object_storage import WorkerProcess, files_under, skip_unless_postgresql

pytestmark = pytest.mark.e2e
# The moto server, the bucket and the broker (tests/object_storage.py).
s3_server, s3_media, own_broker = object_storage.s3_server, object_storage.s3_media, object_storage.own_broker

STILLS = 6


@pytest.fixture
def two_hosts(transactional_db, s3_media, own_broker, active_model, tmp_path_factory):
    skip_unless_postgresql()
    hosts = [WorkerProcess(name, tmp_path_factory.mktemp(f"{name}-"), s3=s3_media) for name in ("host-a", "host-b")]
    try:
        for host in hosts:
            host.start()
        for host in hosts:
            host.wait_ready()
        yield hosts
    finally:
        for host in hosts:
            host.stop()
            print(f"{host.name} log: {host.log}")


def _all_finished() -> bool:
    jobs = ClassificationJob.objects.all()
    return jobs.count() == UltrasoundImage.objects.count() and all(job.is_finished for job in jobs)


class TestTwoWorkerHosts:
    def test_uploads_spread_over_both_hosts_and_each_image_is_classified_once(
        self, two_hosts, s3_media, api_client, study, media_root
    ):
        # Two clips first: a clip's job is never batched with others, so while both idle workers wait on the
        # broker, the first message goes to one and the second to the other, and each must run its clip itself.
        files = [("sweep-a.mp4", make_mp4(8)), ("sweep-b.mp4", make_mp4(10))]
        files += [(f"still-{seed}.png", png_bytes(seed=100 + seed)) for seed in range(STILLS)]
        response = api_client.post(
            f"/api/v1/studies/{study.id}/images/",
            {"file": [SimpleUploadedFile(name, data) for name, data in files]},
            format="multipart",
        )
        assert response.status_code == 202, response.json()
        uploaded = [result["image"]["id"] for result in response.json()["results"]]

        wait_for(_all_finished, timeout=180)  # the clips' key frames, stored by the workers, included

        images = UltrasoundImage.objects.all()
        assert len(images) >= len(files) and set(uploaded) <= {image.id for image in images}
        for image in images:
            jobs = ClassificationJob.objects.filter(image=image)
            assert [job.status for job in jobs] == [ClassificationJob.Status.SUCCEEDED], (image.id, jobs[0].error)
            done = (
                CineFrames.objects.filter(job__image=image)
                if image.is_cine
                else Prediction.objects.filter(job__image=image)
            )
            assert done.count() == 1, f"image {image.id} must be classified exactly once"

        clip_tasks = [ClassificationJob.objects.get(image_id=image_id).celery_task_id for image_id in uploaded[:2]]
        ran = {host.name: set(host.tasks_done("classifier.tasks.classify_image")) for host in two_hosts}
        assert all(ran.values()), f"both workers ran classification tasks: {ran}"
        assert {host for task in clip_tasks for host, tasks in ran.items() if task in tasks} == {"host-a", "host-b"}

        stored = {f.name for image in images for f in (image.file, image.original, image.playback) if f}
        assert stored <= set(s3_media.object_keys())
        for folder in (media_root, *(host.media_root for host in two_hosts), *(host.cwd for host in two_hosts)):
            assert files_under(folder) == [], f"no file written under {folder}"
