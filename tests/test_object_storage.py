"""Files on object storage (S3 API), no disk shared between the web process and the worker.

A local S3-compatible server (moto, in server mode) holds the bucket. This process is the web app: it takes
uploads through the API with its default storage on that bucket. The worker is a real ``celery worker``
process with its own working directory and an empty MEDIA_ROOT of its own: it can read an upload and store
what it derives (the heatmap, a clip's key frames) only through S3. Everything is then read back through the
access-checked views, and the bucket holds every file while neither MEDIA_ROOT holds any.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from classifier.models import ClassificationJob, Prediction
from dicom import dicomweb
from fetalsite.core.ranges import ranged_file_response
from fetalsite.core.stored_files import partial_reader
from patients.models import UltrasoundImage
from tests import object_storage
from tests.cine_samples import make_mp4
from tests.conftest import wait_for
from tests.dicom_samples import dicom_bytes, ultrasound_pixels
from tests.images import image_bytes, png_bytes
from tests.object_storage import WorkerProcess, base_storage_setting, files_under, skip_unless_postgresql

pytestmark = pytest.mark.e2e
# The moto server, the bucket and the broker (tests/object_storage.py).
s3_server, s3_media, own_broker = object_storage.s3_server, object_storage.s3_media, object_storage.own_broker

CLIP_FRAMES = 12


@pytest.fixture
def worker(transactional_db, s3_media, own_broker, active_model, tmp_path_factory):
    """One worker process, on its own 'host' (folders), started after the model is registered."""
    skip_unless_postgresql()
    process = WorkerProcess("worker", tmp_path_factory.mktemp("worker-host"), s3=s3_media).start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
        print(f"worker log: {process.log}")


def _upload(api_client, study, name: str, data: bytes) -> dict:
    response = api_client.post(
        f"/api/v1/studies/{study.id}/images/", {"file": [SimpleUploadedFile(name, data)]}, format="multipart"
    )
    assert response.status_code == 202, response.json()
    return response.json()


def _finished_job(image_id: int) -> ClassificationJob:
    def finished():
        job = ClassificationJob.objects.filter(image_id=image_id).order_by("-id").first()
        return job if job is not None and job.is_finished else None

    job = wait_for(finished, timeout=120)
    assert job.status == ClassificationJob.Status.SUCCEEDED, job.error
    return job


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _heatmap(client, image_id: int):
    """The heatmap page answer once it is there: at once where the worker made it with the prediction, after
    a 202 where it is rendered on request by the heatmaps queue."""
    response = client.get(f"/images/{image_id}/heatmap/")
    if response.status_code == 202:
        response = wait_for(
            lambda: (answer := client.get(f"/images/{image_id}/heatmap/")).status_code == 200 and answer, timeout=120
        )
    return response


class TestObjectStorage:
    def test_upload_classify_and_download_through_s3_with_no_shared_disk(
        self, worker, s3_media, api_client, client, sonographer, study, media_root
    ):
        still, tiff, clip = png_bytes(seed=41), image_bytes("TIFF", width=48, height=36), make_mp4(CLIP_FRAMES)
        uploaded = {
            "still": _upload(api_client, study, "still.png", still),
            "tiff": _upload(api_client, study, "scan.tif", tiff),
            "clip": _upload(api_client, study, "sweep.mp4", clip),
        }
        for image in uploaded.values():
            _finished_job(image["id"])
        # A clip's key frames become stills of their own, stored by the worker and classified in turn.
        for key_frame in UltrasoundImage.objects.filter(clip_id=uploaded["clip"]["id"]):
            _finished_job(key_frame.id)

        keys = s3_media.object_keys()
        records = UltrasoundImage.objects.all()
        stored = {f.name for image in records for f in (image.file, image.original, image.playback) if f}
        heatmaps = {p.heatmap.name for p in Prediction.objects.filter(job__image__in=records) if p.heatmap}
        assert stored <= set(keys), "every upload's display image, original and playback video is in the bucket"
        assert heatmaps <= set(keys)
        assert {key.split("/", 1)[0] for key in keys} >= {"images", "originals", "playback"}

        # Downloads, through the API and the pages, read what the worker-less web process never wrote to disk.
        still_id, tiff_id, clip_id = (uploaded[name]["id"] for name in ("still", "tiff", "clip"))
        original = api_client.get(f"/api/v1/images/{still_id}/original/")
        assert original.status_code == 200 and _body(original) == still
        display = api_client.get(f"/api/v1/images/{tiff_id}/file/")
        assert display.status_code == 200 and _body(display) == s3_media.read(records.get(id=tiff_id).file.name)
        client.force_login(sonographer)
        preview = client.get(f"/images/{tiff_id}/preview/")  # a TIFF is shown as its display PNG, as stored
        assert preview.status_code == 200 and _body(preview) == s3_media.read(records.get(id=tiff_id).file.name)
        playback = records.get(id=clip_id).playback.name
        part = api_client.get(f"/api/v1/images/{clip_id}/playback/", HTTP_RANGE="bytes=100-1123")
        assert part.status_code == 206 and _body(part) == s3_media.read(playback)[100:1124]
        assert part["Content-Range"] == f"bytes 100-1123/{len(s3_media.read(playback))}"

        heatmap = _heatmap(client, still_id)
        assert heatmap.status_code == 200
        prediction = Prediction.objects.get(job__image_id=still_id)
        assert _body(heatmap) == s3_media.read(prediction.heatmap.name), "the PNG the worker stored in the bucket"

        assert files_under(media_root) == [], "the web process wrote no file to its MEDIA_ROOT"
        assert files_under(worker.media_root) == [], "the worker wrote no file to its MEDIA_ROOT"
        assert files_under(worker.cwd) == [], "nor anything in its working directory"

    def test_objects_are_private_and_never_linked_with_a_signature(self, s3_media, api_client, study, db):
        image = _upload(api_client, study, "private.png", png_bytes(seed=42))
        record = UltrasoundImage.objects.get(id=image["id"])
        for name in (record.file.name, record.original.name):
            grants = s3_media.object_acl_grants(name)
            assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"], "the owner's only: no public read"
        assert "Signature" not in record.file.url, "no signed URL that a browser could use without the app's checks"

    def test_an_upload_whose_row_is_not_saved_leaves_no_object(self, s3_media, study, sonographer, db):
        from django.db import IntegrityError, connection

        from patients.services import image_upload

        skip_unless_postgresql("adding a constraint to a live table needs PostgreSQL")
        with connection.cursor() as cursor:  # every new image row now fails in the database, after its files are saved
            cursor.execute("ALTER TABLE patients_ultrasoundimage ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
        with pytest.raises(IntegrityError):
            image_upload(study=study, data=png_bytes(seed=44), filename="lost.png", uploaded_by=sonographer)
        assert s3_media.object_keys() == [], "the display image and the original went again with the row"


class TestPartialReads:
    """On S3 a stored file is downloaded whole on its first read or seek; a range of a video and a DICOM header
    are read with range requests instead (fetalsite.core.stored_files)."""

    def test_a_byte_range_of_a_stored_video_fetches_only_that_range(self, s3_media, rf):
        data = np.random.default_rng(5).integers(0, 256, size=3 * 1024 * 1024, dtype=np.uint8).tobytes()
        name = default_storage.save("playback/long.mp4", ContentFile(data))
        handle = default_storage.open(name, "rb")
        request = rf.get("/", HTTP_RANGE="bytes=2000000-2000099")

        response = ranged_file_response(request, handle, size=len(data), content_type="video/mp4")

        assert response.status_code == 206 and b"".join(response.streaming_content) == data[2000000:2000100]
        assert handle._file is None, "the S3 file never downloaded the whole object into its spool"

    def test_a_dicom_header_is_read_without_its_pixel_data(self, s3_media):
        data = dicom_bytes(ultrasound_pixels(width=1600, height=1200))  # about 1.9 MB of pixels after the header
        name = default_storage.save("originals/large.dcm", ContentFile(data))
        handle = default_storage.open(name, "rb")

        with partial_reader(handle) as original:
            header = dicomweb.instance_metadata(original)
            downloaded_whole = handle._file is not None  # (closing the S3 file drops its spool)

        assert header == dicomweb.instance_metadata(io.BytesIO(data))
        assert not downloaded_whole, "the S3 file never downloaded the whole object into its spool"

    def test_a_file_on_local_disk_is_read_as_it_is(self, media_root):
        name = default_storage.save("images/local.png", ContentFile(png_bytes()))
        handle = default_storage.open(name, "rb")
        assert partial_reader(handle) is handle


class TestStorageSettings:
    def test_local_disk_unless_a_bucket_is_named(self):
        assert base_storage_setting({}) == {"BACKEND": "django.core.files.storage.FileSystemStorage"}

    def test_a_named_bucket_stores_private_unsigned_objects_that_are_never_overwritten(self):
        storage = base_storage_setting({"AWS_STORAGE_BUCKET_NAME": "clinic-images", "S3_REGION": "eu-west-2"})
        assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
        options = storage["OPTIONS"]
        assert (options["bucket_name"], options["region_name"], options["endpoint_url"]) == (
            "clinic-images",
            "eu-west-2",
            None,
        )
        assert (options["default_acl"], options["querystring_auth"], options["file_overwrite"]) == (
            "private",
            False,
            False,
        )

    def test_no_acl_is_sent_where_the_bucket_has_acls_disabled(self):
        storage = base_storage_setting({"S3_BUCKET": "clinic-images", "S3_DEFAULT_ACL": ""})
        assert storage["OPTIONS"]["default_acl"] is None


class TestHealth:
    def test_the_storage_check_passes_with_the_bucket_and_fails_without_it(self, s3_media, client, settings, db):
        assert client.get("/health/").json()["checks"]["storage"] == {
            "ok": True,
            "detail": f"bucket {object_storage.BUCKET} reachable",
        }

        storage = settings.STORAGES["default"]
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {**storage, "OPTIONS": {**storage["OPTIONS"], "bucket_name": "gone"}},
        }
        response = client.get("/health/")
        assert response.status_code == 503
        check = response.json()["checks"]["storage"]
        assert not check["ok"] and "404" in check["detail"]


class TestDicomweb:
    def test_stow_then_qido_metadata_and_wado_read_the_instance_from_the_bucket(
        self, s3_media, live_server, integrator, transactional_db
    ):
        from pydicom.uid import generate_uid

        from patients.models import DicomInstance
        from tests.dicom.dicomweb_clients import client_for, dataset

        client = client_for(f"{live_server.url}/dicomweb", integrator)
        study_uid = generate_uid()
        data = dicom_bytes(study_uid=study_uid, patient_id="MRN-S3-1", Manufacturer="Bucket Medical")
        sent = dataset(data)

        client.store_instances(datasets=[sent])

        stored = DicomInstance.objects.select_related("image").get(sop_instance_uid=sent.SOPInstanceUID)
        assert s3_media.read(stored.image.original.name) == data
        # QIDO-RS and WADO-RS metadata read the stored header (through range requests), WADO-RS the whole file.
        row = client.search_for_instances(study_instance_uid=study_uid, fields=["Manufacturer"])[0]
        assert row["00080070"]["Value"] == ["Bucket Medical"]
        metadata = client.retrieve_instance_metadata(study_uid, sent.SeriesInstanceUID, sent.SOPInstanceUID)
        assert metadata["00100020"]["Value"] == ["MRN-S3-1"]
        retrieved = client.retrieve_instance(study_uid, sent.SeriesInstanceUID, sent.SOPInstanceUID)
        assert retrieved.SOPInstanceUID == sent.SOPInstanceUID and retrieved.Manufacturer == "Bucket Medical"


class TestReport:
    def test_a_reports_thumbnail_is_made_from_the_display_image_in_the_bucket(self, s3_media, study, sonographer):
        import base64

        from PIL import Image

        from patients.report import THUMBNAIL_PX, _thumbnail_uri
        from patients.services import image_upload

        image = image_upload(
            study=study, data=png_bytes(640, 480, seed=45), filename="r.png", uploaded_by=sonographer
        ).image

        uri = _thumbnail_uri(image)

        assert image.file.name in s3_media.object_keys()
        with Image.open(io.BytesIO(base64.b64decode(uri.removeprefix("data:image/jpeg;base64,")))) as thumbnail:
            assert thumbnail.format == "JPEG" and max(thumbnail.size) == THUMBNAIL_PX
