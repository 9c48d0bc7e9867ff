"""Images through the API: uploads (several files, duplicates, Idempotency-Key), lists with
filters, the file download, the change history and clinicians' reviews."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from classifier.models import ClassificationJob
from patients.models import UltrasoundImage
from tests.api.conftest import classify, upload
from tests.images import png_bytes


def _file(data: bytes, name: str = "scan.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/png")


def _upload(client, study, *files, **headers):
    return client.post(f"/api/v1/studies/{study.id}/images/", {"file": list(files)}, format="multipart", **headers)


class TestImageUploadApi:
    def test_same_bytes_twice_give_the_same_image(self, api_client, study, model_version):
        first = _upload(api_client, study, _file(png_bytes(seed=1)))
        second = _upload(api_client, study, _file(png_bytes(seed=1), "renamed.png"))

        assert first.status_code == 202
        assert second.status_code == 200
        assert second.json()["id"] == first.json()["id"]
        assert first.json()["job"]["status"] == "QUEUED"
        assert UltrasoundImage.objects.count() == 1

    def test_several_files_answer_with_one_result_each(self, api_client, study, model_version):
        _upload(api_client, study, _file(png_bytes(seed=1)))

        response = _upload(api_client, study, _file(png_bytes(seed=1)), _file(png_bytes(seed=2)))

        assert response.status_code == 202
        results = response.json()["results"]
        assert [r["created"] for r in results] == [False, True]
        assert ClassificationJob.objects.count() == 2

    def test_one_bad_file_among_several_stores_nothing(self, api_client, study, model_version, media_root):
        response = _upload(api_client, study, _file(png_bytes(seed=1)), _file(b"not an image", "x.png"))

        assert response.status_code == 400
        assert "file[1]" in response.json()["fields"]
        assert UltrasoundImage.objects.count() == 0
        assert not list(media_root.rglob("*.png"))

    def test_no_file_is_a_400(self, api_client, study):
        response = api_client.post(f"/api/v1/studies/{study.id}/images/", {}, format="multipart")

        assert response.status_code == 400
        assert "file" in response.json()["fields"]

    def test_json_body_is_a_415(self, api_client, study):
        response = api_client.post(f"/api/v1/studies/{study.id}/images/", {"file": "x"}, format="json")

        assert response.status_code == 415
        assert response.json()["code"] == "unsupported_media_type"

    def test_a_file_over_the_limit_is_a_413(self, api_client, study, settings):
        settings.UPLOAD_MAX_BYTES = 100

        response = _upload(api_client, study, _file(png_bytes(seed=3)))

        assert response.status_code == 413
        assert response.json()["code"] == "too_large"

    def test_idempotency_key_replays_the_first_answer_for_the_same_bytes(self, api_client, study, model_version):
        first = _upload(api_client, study, _file(png_bytes(seed=1)), HTTP_IDEMPOTENCY_KEY="upload-0001")
        retried = _upload(api_client, study, _file(png_bytes(seed=1)), HTTP_IDEMPOTENCY_KEY="upload-0001")

        assert first.status_code == retried.status_code == 202
        assert retried.json() == first.json()
        assert retried.headers["Idempotent-Replayed"] == "true"
        assert UltrasoundImage.objects.count() == 1

    def test_idempotency_key_with_other_bytes_is_a_422_and_stores_nothing(self, api_client, study, model_version):
        """The probe: the second upload's image was silently dropped behind the first one's answer."""
        first = _upload(api_client, study, _file(png_bytes(seed=1)), HTTP_IDEMPOTENCY_KEY="upload-0002")
        other = _upload(api_client, study, _file(png_bytes(seed=2)), HTTP_IDEMPOTENCY_KEY="upload-0002")
        more = _upload(
            api_client, study, _file(png_bytes(seed=1)), _file(png_bytes(seed=2)), HTTP_IDEMPOTENCY_KEY="upload-0002"
        )

        assert first.status_code == 202
        assert other.status_code == more.status_code == 422
        assert other.json()["code"] == more.json()["code"] == "idempotency_key_mismatch"
        assert "Idempotent-Replayed" not in other.headers
        assert UltrasoundImage.objects.count() == 1

    def test_idempotency_key_is_per_url_and_validated(self, api_client, study, model_version):
        _upload(api_client, study, _file(png_bytes(seed=1)), HTTP_IDEMPOTENCY_KEY="key-1")

        reused = api_client.post(
            "/api/v1/patients/", {"mrn": "Z", "given_name": "A", "family_name": "B"}, HTTP_IDEMPOTENCY_KEY="key-1"
        )
        invalid = _upload(api_client, study, _file(png_bytes(seed=4)), HTTP_IDEMPOTENCY_KEY="has space")

        assert reused.status_code == 409
        assert reused.json()["code"] == "idempotency_key_reused"
        assert invalid.status_code == 400

    def test_a_failed_request_frees_its_idempotency_key(self, api_client, study, model_version):
        failed = _upload(api_client, study, _file(b"junk"), HTTP_IDEMPOTENCY_KEY="key-2")
        fixed = _upload(api_client, study, _file(png_bytes(seed=5)), HTTP_IDEMPOTENCY_KEY="key-2")

        assert failed.status_code == 400
        assert fixed.status_code == 202

    def test_a_key_still_in_progress_is_a_409_until_abandoned(self, api_client, integrator, study, model_version):
        from datetime import timedelta

        from django.utils import timezone

        from fetalsite.core.models import IdempotencyKey

        first = _upload(api_client, study, _file(png_bytes(seed=6)), HTTP_IDEMPOTENCY_KEY="key-3")
        # As if the first request were still running: its key holds no answer yet.
        record = IdempotencyKey.objects.get(user=integrator, key="key-3")
        IdempotencyKey.objects.filter(id=record.id).update(response_status=None, response_body=None)

        busy = _upload(api_client, study, _file(png_bytes(seed=6)), HTTP_IDEMPOTENCY_KEY="key-3")
        IdempotencyKey.objects.filter(id=record.id).update(created_at=timezone.now() - timedelta(minutes=11))
        after = _upload(api_client, study, _file(png_bytes(seed=6)), HTTP_IDEMPOTENCY_KEY="key-3")

        assert first.status_code == 202
        assert busy.status_code == 409
        assert busy.json()["code"] == "idempotency_in_progress"
        # Abandoned: the key is claimed afresh and the upload runs again (the bytes are already stored).
        assert after.status_code == 200
        assert "Idempotent-Replayed" not in after.headers
        assert after.json()["id"] == first.json()["id"]


class TestImageListApi:
    def test_filters_by_label_review_state_and_study(self, api_client, study, model_version, clinician_client):
        brain = upload(study, seed=1)
        uncertain = upload(study, seed=2)
        pending = upload(study, seed=3)
        classify(brain, label="fetal_brain")
        classify(uncertain, label="fetal_femur", confidence=0.4, needs_review=True)
        clinician_client.post(f"/api/v1/images/{uncertain.id}/review/", {"label": "fetal_thorax"}, format="json")

        def ids(query):
            response = api_client.get(f"/api/v1/images/?{query}")
            assert response.status_code == 200, response.json()
            return [image["id"] for image in response.json()["results"]]

        assert ids(f"study={study.id}") == [brain.id, uncertain.id, pending.id]
        assert ids("label=fetal_thorax") == [uncertain.id]
        assert ids("label=fetal_femur") == []
        assert ids("needs_review=true") == [uncertain.id]
        assert ids("reviewed=false") == [brain.id, pending.id]
        assert ids("ordering=-uploaded_at") == [pending.id, uncertain.id, brain.id]
        assert ids("uploaded_after=1303-03-12T14:45:29-20:11") == [brain.id, uncertain.id, pending.id]
        assert ids("uploaded_after=2999-01-01T00:00:00%2B05:00") == []
        assert api_client.get("/api/v1/images/?uploaded_after=0001-01-01T00:00:00%2B05:00").status_code == 400

    def test_query_count_does_not_grow_with_the_page(self, api_client, study, model_version):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        classify(upload(study, seed=0))
        api_client.get("/api/v1/images/")  # warm up: the access log's first entry
        with CaptureQueriesContext(connection) as one:
            api_client.get("/api/v1/images/")
        for seed in range(1, 6):
            classify(upload(study, seed=seed))

        with CaptureQueriesContext(connection) as six:
            response = api_client.get("/api/v1/images/")

        assert response.json()["count"] == 6
        assert len(six) == len(one)


class TestImageFileApi:
    def test_downloads_the_display_rendition_as_a_png_attachment(self, api_client, image):
        response = api_client.get(f"/api/v1/images/{image.id}/file/", HTTP_ACCEPT="image/*")

        assert response.status_code == 200
        assert response["Content-Type"] == "image/png"
        assert response["Content-Disposition"] == f'attachment; filename="image-{image.id}.png"'
        assert response["X-Content-Type-Options"] == "nosniff"
        assert b"".join(response.streaming_content).startswith(b"\x89PNG")

    def test_errors_are_json_even_when_an_image_is_asked_for(self, api_client, db):
        response = api_client.get("/api/v1/images/999999/file/", HTTP_ACCEPT="image/png")

        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json()["code"] == "not_found"


class TestImageHistoryApi:
    def test_lists_every_change_with_actor_and_time(self, api_client, clinician_client, classified_image):
        clinician_client.post(
            f"/api/v1/images/{classified_image.id}/review/", {"label": "fetal_thorax", "comment": "4CH"}, format="json"
        )

        entries = api_client.get(f"/api/v1/images/{classified_image.id}/history/").json()

        kinds = [(e["record"], e["action"]) for e in entries]
        assert kinds[0] == ("image", "created")
        assert ("job", "created") in kinds and ("prediction", "created") in kinds
        review = entries[-1]
        assert review["record"] == "prediction" and review["actor"] == "clin_north"
        assert review["changes"]["reviewed_label"] == {"from": "", "to": "fetal_thorax"}
        assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)


class TestPredictionReviewApi:
    def test_clinician_reviews_and_the_model_label_stays(self, clinician_client, classified_image):
        response = clinician_client.post(
            f"/api/v1/images/{classified_image.id}/review/", {"label": "fetal_femur", "comment": "Femur."}
        )

        assert response.status_code == 200
        body = response.json()
        assert (body["label"], body["reviewed_label"], body["final_label"]) == (
            "fetal_brain",
            "fetal_femur",
            "fetal_femur",
        )
        assert body["reviewed_by"] == "clin_north"

    @pytest.mark.parametrize("client_fixture", ["api_client", "sonographer_client"])
    def test_other_roles_get_403(self, request, client_fixture, classified_image):
        client = request.getfixturevalue(client_fixture)

        response = client.post(f"/api/v1/images/{classified_image.id}/review/", {"label": "fetal_brain"})

        assert response.status_code == 403
        assert response.json() == {"detail": "Only clinicians can review predictions.", "code": "permission_denied"}

    def test_unclassified_image_is_a_409(self, clinician_client, image):
        response = clinician_client.post(f"/api/v1/images/{image.id}/review/", {"label": "fetal_brain"})

        assert response.status_code == 409
        assert response.json()["code"] == "not_classified"

    def test_unknown_label_is_a_400(self, clinician_client, classified_image):
        response = clinician_client.post(f"/api/v1/images/{classified_image.id}/review/", {"label": "fetal_heart"})

        assert response.status_code == 400
        assert "label" in response.json()["fields"]
