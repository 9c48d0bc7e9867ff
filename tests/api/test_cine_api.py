"""Cine loops through the API: a real clip uploaded as an integrator would, analysed by the real worker's service
with the tiny model, then read back: the image JSON, the per-frame analysis (frames/), the video (playback/),
the key frames as stills, their webhook payload, and the refusals, scoping and access log around them."""

from __future__ import annotations

import io
import json
import shutil

import av
import numpy as np
import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from classifier.labels import PLANE_LABELS
from classifier.models import ClassificationJob, WebhookDelivery, WebhookEndpoint
from classifier.services import classification_job_run, model_version_register
from classifier.webhooks import webhook_endpoint_save
from fetalsite.audit.models import AccessLogEntry
from patients.models import UltrasoundImage
from tests.api.test_webhook_events import COMMITTED, schema_errors
from tests.cine_samples import has_real_images, make_avi, make_mov, make_mp4, make_multiframe_dicom
from tests.conftest import tiny_card
from tests.images import png_bytes

# The tiny untrained model's confidences on the sweep's frames decide which frames pass the review rule; on the
# generated pictures used when the data set is absent it may pass none, and a clip then has no key frame.
needs_key_frames = pytest.mark.skipif(
    not has_real_images(), reason="the fetal-planes images are absent: the clip may have no key frame to read"
)
CLIP_FRAMES = 24  # make_mp4's default: 12 frames of a brain, then 12 of a femur, at 25 frames a second


def _upload(client, study, *files: tuple[str, bytes]):
    parts = [SimpleUploadedFile(name, data) for name, data in files]
    return client.post(f"/api/v1/studies/{study.id}/images/", {"file": parts}, format="multipart")


def _run_job(image_id: int) -> ClassificationJob:
    """What the worker does with the image's newest job: the real service, the real (tiny) model."""
    job = ClassificationJob.objects.filter(image_id=image_id).order_by("-id").first()
    classification_job_run(job_id=job.id)
    job.refresh_from_db()
    return job


@pytest.fixture
def clip_model(db, settings, tmp_path, tiny_model_dir):
    """The tiny model with a review threshold inside its confidences on the sweep (about 0.57 to 0.64 on the
    real images), so that some frames are flagged and some are not; the tests hold whatever it flags."""
    directory = tmp_path / "models"
    directory.mkdir()
    model = directory / "tiny-v1.keras"
    shutil.copyfile(tiny_model_dir / model.name, model)
    (directory / "tiny-v1.card.json").write_text(json.dumps(tiny_card(model, name="tiny", needs_review_threshold=0.6)))
    settings.MODELS_DIR = directory
    return model_version_register(card_path=directory / "tiny-v1.card.json", activate=True)


@pytest.fixture
def clip(api_client, study, clip_model) -> dict:
    """A real MP4 uploaded through the API, not analysed yet: its JSON as the upload answered it."""
    response = _upload(api_client, study, ("sweep.mp4", make_mp4()))
    assert response.status_code == 202, response.json()
    return response.json()


@pytest.fixture
def analysed_clip(clip) -> dict:
    """The clip after its job, and its key frames' own jobs, ran."""
    job = _run_job(clip["id"])
    assert job.status == ClassificationJob.Status.SUCCEEDED, job.error
    for still in UltrasoundImage.objects.filter(clip_id=clip["id"]):
        assert _run_job(still.id).status == ClassificationJob.Status.SUCCEEDED
    return clip


class TestClipUpload:
    def test_an_mp4_is_one_cine_image_with_its_frames_rate_and_video(self, clip):
        assert clip["kind"] == "cine" and clip["format"] == "MP4"
        assert (clip["frame_count"], clip["frame_rate"], clip["duration_s"]) == (CLIP_FRAMES, 25.0, 0.96)
        assert clip["playback"] == {"media_type": "video/mp4", "url": f"/api/v1/images/{clip['id']}/playback/"}
        assert clip["original"]["media_type"] == "video/mp4"
        assert clip["display"]["media_type"] == "image/png"
        assert (clip["clip"], clip["key_frames"], clip["prediction"]) == (None, [], None)
        assert clip["job"]["status"] == "QUEUED"

    @pytest.mark.parametrize(
        ("name", "make", "fmt", "media_type"),
        [("sweep.avi", make_avi, "AVI", "video/x-msvideo"), ("sweep.mov", make_mov, "MOV", "video/quicktime")],
    )
    def test_avi_and_mov_are_clips_too(self, api_client, study, active_model, name, make, fmt, media_type):
        response = _upload(api_client, study, (name, make(frames=10, fps=10)))

        body = response.json()
        assert response.status_code == 202, body
        assert (body["kind"], body["format"], body["frame_count"], body["frame_rate"]) == ("cine", fmt, 10, 10.0)
        assert body["original"]["media_type"] == media_type

    def test_a_multiframe_dicom_is_a_clip_whose_dicom_file_downloads_from_original(
        self, api_client, study, active_model
    ):
        data = make_multiframe_dicom(frames=8, patient_id=study.patient.mrn, frame_time_ms=50.0)

        response = _upload(api_client, study, ("loop.dcm", data))

        body = response.json()
        assert response.status_code == 202, body
        assert (body["kind"], body["format"], body["frame_count"], body["frame_rate"]) == ("cine", "DICOM", 8, 20.0)
        assert body["dicom"]["number_of_frames"] == 8
        original = api_client.get(body["original"]["url"])
        assert original["Content-Type"] == "application/dicom"
        assert b"".join(original.streaming_content) == data
        # The file/?format=dicom is original/: file/ is the PNG, and takes no format parameter.
        refused = api_client.get(f"/api/v1/images/{body['id']}/file/?format=dicom")
        assert refused.status_code == 400 and "format" in refused.json()["fields"]

    @pytest.mark.parametrize(
        ("limits", "code"),
        [({"CINE_MAX_FRAMES": 10}, "cine_too_many_frames"), ({"CINE_MAX_DURATION_S": 0.5}, "cine_too_long")],
    )
    def test_a_clip_over_a_limit_is_refused_and_nothing_is_stored(
        self, api_client, study, active_model, settings, limits, code
    ):
        for name, value in limits.items():
            setattr(settings, name, value)

        response = _upload(api_client, study, ("long.mp4", make_mp4()))

        assert response.status_code == 400, response.json()
        assert response.json()["code"] == code
        assert not UltrasoundImage.objects.exists()

    def test_a_damaged_video_is_refused_as_corrupt(self, api_client, study, active_model):
        data = make_mp4()

        response = _upload(api_client, study, ("cut.mp4", data[: len(data) // 3]))

        assert response.status_code == 400, response.json()
        assert response.json()["code"] == "cine_corrupt"
        assert not UltrasoundImage.objects.exists()


class TestFrames:
    def test_not_analysed_yet_is_a_409(self, api_client, clip):
        response = api_client.get(f"/api/v1/images/{clip['id']}/frames/")

        assert response.status_code == 409
        assert response.json()["code"] == "not_classified"

    def test_every_frame_has_probabilities_a_flag_and_a_label_consistent_with_the_key_frames(
        self, api_client, analysed_clip
    ):
        response = api_client.get(f"/api/v1/images/{analysed_clip['id']}/frames/")

        body = response.json()
        assert response.status_code == 200, body
        assert (body["image"], body["frame_count"], body["frame_rate"]) == (analysed_clip["id"], CLIP_FRAMES, 25.0)
        assert body["class_labels"] == PLANE_LABELS
        assert body["model_version"] == "tiny:1" and body["inference_ms"] > 0
        rows = np.array(body["probabilities"])
        assert rows.shape == (CLIP_FRAMES, len(PLANE_LABELS))
        assert np.allclose(rows.sum(axis=1), 1, atol=0.01)
        assert all(round(value, 4) == value for value in rows.flat)
        assert body["labels"] == [body["class_labels"][i] for i in rows.argmax(axis=1)]
        assert len(body["flags"]) == CLIP_FRAMES and all(isinstance(flag, bool) for flag in body["flags"])
        # Each key frame is an unflagged frame of its plane, the most confident such frame, stored as a still; a
        # plane gets one exactly when some unflagged frame shows it.
        unflagged_planes = {label for label, flag in zip(body["labels"], body["flags"], strict=True) if not flag}
        assert {key_frame["label"] for key_frame in body["key_frames"]} == unflagged_planes
        for key_frame in body["key_frames"]:
            index, label = key_frame["frame_index"], key_frame["label"]
            assert body["labels"][index] == label and not body["flags"][index]
            column = body["class_labels"].index(label)
            assert key_frame["confidence"] == pytest.approx(rows[index, column], abs=1e-3)
            same_plane = [i for i in range(CLIP_FRAMES) if body["labels"][i] == label and not body["flags"][i]]
            assert rows[index, column] == max(rows[i, column] for i in same_plane)
            assert key_frame["image_id"] is not None
        assert body["key_frames"] == api_client.get(f"/api/v1/images/{analysed_clip['id']}/").json()["key_frames"]

    def test_a_still_has_no_frames_nor_video(self, api_client, study, active_model):
        still = _upload(api_client, study, ("head.png", png_bytes(seed=5))).json()["id"]

        for suffix in ("frames", "playback"):
            response = api_client.get(f"/api/v1/images/{still}/{suffix}/")
            assert response.status_code == 404
            assert response.json()["code"] == "not_a_cine"

    def test_another_clinics_clip_answers_as_a_missing_one(self, south_api_client, clip):
        for suffix in ("", "frames/", "playback/"):
            response = south_api_client.get(f"/api/v1/images/{clip['id']}/{suffix}")
            assert response.status_code == 404
            assert response.json()["code"] == "not_found"

    def test_reading_the_frames_is_in_the_access_log(self, api_client, analysed_clip, integrator, study):
        before = _last_log_id()

        api_client.get(f"/api/v1/images/{analysed_clip['id']}/frames/")

        entry = AccessLogEntry.objects.get(id__gt=before)
        assert (entry.user, entry.action, entry.object_type, entry.object_id) == (
            integrator,
            "VIEW",
            "image",
            analysed_clip["id"],
        )
        assert entry.patient_id == study.patient_id


def _last_log_id() -> int:
    last = AccessLogEntry.objects.order_by("-id").first()  # the log is append-only: read what comes after
    return last.id if last else 0


def analysed_clip_key_frames(api_client, clip: dict) -> list[dict]:
    return api_client.get(f"/api/v1/images/{clip['id']}/").json()["key_frames"]


def analysed_clip_key_frame_id(api_client, clip: dict) -> int:
    return analysed_clip_key_frames(api_client, clip)[0]["image_id"]


@pytest.fixture
def webhook_endpoint(north, settings):
    """An endpoint of the clinic: events are recorded for it (delivered only after a commit, never here)."""
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    return webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url="http://127.0.0.1:9/hook"))


class TestKeyFrames:
    @needs_key_frames
    def test_a_key_frame_is_a_still_that_names_its_clip_and_frame(self, api_client, analysed_clip):
        clip = api_client.get(f"/api/v1/images/{analysed_clip['id']}/").json()

        assert clip["key_frames"]
        for key_frame in clip["key_frames"]:
            still = api_client.get(f"/api/v1/images/{key_frame['image_id']}/").json()
            assert still["kind"] == "still" and still["format"] == "PNG"
            assert still["clip"] == {"id": clip["id"], "frame_index": key_frame["frame_index"]}
            assert (still["frame_count"], still["frame_rate"], still["duration_s"], still["playback"]) == (None,) * 4
            assert still["key_frames"] == [] and still["study"] == clip["study"]
            assert still["prediction"]["model_version"] == "tiny:1"

    @needs_key_frames
    def test_a_key_frames_prediction_created_webhook_carries_its_clip(
        self, api_client, study, active_model, webhook_endpoint
    ):
        clip = _upload(api_client, study, ("sweep.mp4", make_mp4())).json()
        _run_job(clip["id"])
        stills = list(UltrasoundImage.objects.filter(clip_id=clip["id"]).order_by("id"))
        for still in stills:
            _run_job(still.id)

        payloads = [d.payload for d in WebhookDelivery.objects.filter(event_type="prediction.created")]

        assert stills and len(payloads) == len(stills)  # the clip itself has no prediction, so no event
        by_image = {payload["data"]["image"]: payload["data"]["clip"] for payload in payloads}
        assert by_image == {still.id: {"id": clip["id"], "frame_index": still.clip_frame_index} for still in stills}
        schema = yaml.safe_load(COMMITTED.read_text())
        assert [schema_errors(schema, "prediction.created", payload) for payload in payloads] == [[]] * len(payloads)

    @needs_key_frames
    def test_a_key_frame_is_reviewed_like_any_image(self, clinician_client, analysed_clip):
        still = analysed_clip_key_frame_id(clinician_client, analysed_clip)

        response = clinician_client.post(
            f"/api/v1/images/{still}/review/", {"label": "fetal_femur", "comment": "A femur."}, format="json"
        )

        assert response.status_code == 200, response.json()
        assert response.json()["final_label"] == "fetal_femur"
        assert clinician_client.get(f"/api/v1/images/{still}/").json()["prediction"]["reviewed_label"] == "fetal_femur"

    def test_a_plain_images_webhook_says_clip_null(self, api_client, study, active_model, webhook_endpoint):
        frame = next(iter(av.open(io.BytesIO(make_mp4(frames=2))).decode(video=0))).to_image()
        buffer = io.BytesIO()
        frame.save(buffer, format="PNG")
        image = _upload(api_client, study, ("frame.png", buffer.getvalue())).json()

        _run_job(image["id"])

        assert WebhookDelivery.objects.get().payload["data"]["clip"] is None


class TestPlayback:
    def test_the_video_plays_and_is_sent_as_the_files_are(self, api_client, clip):
        response = api_client.get(clip["playback"]["url"])

        data = b"".join(response.streaming_content)
        assert response.status_code == 200
        assert response["Content-Type"] == "video/mp4"
        assert response["Content-Disposition"] == f'attachment; filename="image-{clip["id"]}.mp4"'
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Cache-Control"] == api_client.get(clip["display"]["url"])["Cache-Control"]
        assert response["Accept-Ranges"] == "bytes"
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert sum(1 for _ in container.decode(stream)) == CLIP_FRAMES

    def test_the_clips_history_names_no_storage_path(self, api_client, clip):
        history = api_client.get(f"/api/v1/images/{clip['id']}/history/").json()

        created = history[0]["changes"]
        assert history[0]["record"] == "image" and created["kind"] == {"from": None, "to": "cine"}
        assert created["frame_count"] == {"from": None, "to": CLIP_FRAMES}
        assert not {"file", "original", "playback"} & set(created)

    def test_a_range_is_a_206_of_those_bytes(self, api_client, clip):
        whole = b"".join(api_client.get(clip["playback"]["url"]).streaming_content)

        response = api_client.get(clip["playback"]["url"], HTTP_RANGE="bytes=100-199")

        assert response.status_code == 206
        assert response["Content-Range"] == f"bytes 100-199/{len(whole)}"
        assert b"".join(response.streaming_content) == whole[100:200]

    def test_a_range_past_the_end_is_a_json_416(self, api_client, clip):
        response = api_client.get(clip["playback"]["url"], HTTP_RANGE="bytes=999999999-")

        assert response.status_code == 416
        assert response.json()["code"] == "range_not_satisfiable"
        assert response["Content-Range"].startswith("bytes */")

    def test_downloading_the_video_is_in_the_access_log(self, api_client, clip, integrator):
        before = _last_log_id()

        b"".join(api_client.get(clip["playback"]["url"]).streaming_content)

        entry = AccessLogEntry.objects.get(id__gt=before)
        assert (entry.user, entry.action, entry.object_type, entry.object_id) == (
            integrator,
            "DOWNLOAD",
            "image_playback",
            clip["id"],
        )


class TestImageList:
    @needs_key_frames
    def test_clips_and_their_key_frames_add_no_queries_per_image(self, api_client, study, active_model):
        _upload(api_client, study, ("a.mp4", make_mp4(frames=6)))
        with CaptureQueriesContext(connection) as one_clip:
            api_client.get("/api/v1/images/")
        for n in range(3):
            clip = _upload(api_client, study, (f"b{n}.mp4", make_mp4(frames=7 + n))).json()
            _run_job(clip["id"])

        with CaptureQueriesContext(connection) as many:
            response = api_client.get("/api/v1/images/")

        images = response.json()["results"]
        assert sum(image["kind"] == "cine" for image in images) == 4 and any(image["clip"] for image in images)
        assert len(many) == len(one_clip), [query["sql"] for query in many.captured_queries]

    @needs_key_frames
    def test_filters_find_the_clips_and_a_clips_key_frames(self, api_client, analysed_clip):
        stills = {key_frame["image_id"] for key_frame in analysed_clip_key_frames(api_client, analysed_clip)}

        clips = api_client.get("/api/v1/images/?kind=cine").json()["results"]
        key_frames = api_client.get(f"/api/v1/images/?clip={analysed_clip['id']}&kind=still").json()["results"]
        refused = api_client.get("/api/v1/images/?kind=video")

        assert [image["id"] for image in clips] == [analysed_clip["id"]]
        assert stills and {image["id"] for image in key_frames} == stills
        assert refused.status_code == 400 and "kind" in refused.json()["fields"]
