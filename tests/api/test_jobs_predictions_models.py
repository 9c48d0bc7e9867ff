"""Jobs, predictions and model versions through the API."""

from __future__ import annotations

from classifier import services as classifier_services
from tests.api.conftest import classify, upload


class TestJobApi:
    def test_lists_and_filters_by_status(self, api_client, study, model_version):
        done = upload(study, seed=1)
        classify(done)
        failed = upload(study, seed=2)
        failed_job = failed.jobs.get()
        classifier_services.job_mark_failed(job_id=failed_job.id, reason="RuntimeError: boom")

        every = api_client.get("/api/v1/jobs/").json()
        only_failed = api_client.get("/api/v1/jobs/?status=FAILED").json()

        assert every["count"] == 2
        assert [job["id"] for job in only_failed["results"]] == [failed_job.id]
        assert only_failed["results"][0]["error"] == "RuntimeError: boom"

    def test_retries_only_a_failed_job(self, api_client, study, model_version):
        image = upload(study, seed=3)
        job = image.jobs.get()

        refused = api_client.post(f"/api/v1/jobs/{job.id}/retry/")
        classifier_services.job_mark_failed(job_id=job.id, reason="RuntimeError: boom")
        retried = api_client.post(f"/api/v1/jobs/{job.id}/retry/")

        assert refused.status_code == 409
        assert refused.json()["code"] == "job_not_retryable"
        assert retried.status_code == 202
        assert retried.json()["status"] == "QUEUED"

    def test_reads_one_job(self, api_client, image):
        job = image.jobs.get()

        response = api_client.get(f"/api/v1/jobs/{job.id}/")

        assert response.json()["image"] == image.id


class TestPredictionApi:
    def test_lists_filters_and_reads(self, api_client, study, model_version):
        sure = classify(upload(study, seed=1), label="fetal_brain")
        unsure = classify(upload(study, seed=2), label="fetal_femur", confidence=0.3, needs_review=True)

        flagged = api_client.get("/api/v1/predictions/?needs_review=true").json()
        by_confidence = api_client.get("/api/v1/predictions/?ordering=confidence").json()
        one = api_client.get(f"/api/v1/predictions/{sure.id}/").json()

        assert [p["id"] for p in flagged["results"]] == [unsure.id]
        assert [p["id"] for p in by_confidence["results"]] == [unsure.id, sure.id]
        assert one["label"] == "fetal_brain"
        assert set(one["probabilities"]) == {"fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"}


class TestModelVersionApi:
    def test_lists_and_reads_without_the_file_path(self, api_client, model_version):
        listed = api_client.get("/api/v1/model-versions/").json()
        one = api_client.get("/api/v1/model-versions/fetalnet:1.0/").json()
        unknown = api_client.get("/api/v1/model-versions/fetalnet:9/")

        assert [v["id"] for v in listed["results"]] == [model_version.id]
        assert (one["id"], one["key"], one["is_active"]) == (model_version.id, "fetalnet:1.0", True)
        assert "file_path" not in one
        assert unknown.status_code == 404

    def test_is_read_only(self, api_client, model_version):
        response = api_client.post("/api/v1/model-versions/", {"name": "x"}, format="json")

        assert response.status_code == 405
