"""An image's latest prediction is the one every reader uses (issue 16): the image API, the list filters,
the worklist's count of images awaiting review, the review service and the webhook payload.

The latest prediction is the newest job's; these tests give an image an older job whose prediction says
something else, so a reader that looked at any prediction, or at the newest of them, would disagree."""

from __future__ import annotations

import pytest
from django.urls import reverse

from classifier import selectors as classifier_selectors
from classifier import services as classifier_services
from classifier.labels import PLANE_LABELS
from classifier.ml.inference import ClassifierResult
from classifier.models import ModelVersion, WebhookDelivery, WebhookEndpoint
from classifier.webhooks import webhook_endpoint_save
from tests.api.conftest import classify, upload

# A public address given as a literal, so registering needs no DNS; nothing is sent to it here.
PUBLIC_URL = "https://93.184.215.14/hook"


def reclassify(image, **result):
    """A newer model is activated and classifies the image again (a job per image and model)."""
    current = classifier_selectors.active_model_version()
    newer = ModelVersion.objects.create(
        name=current.name,
        version=f"{current.version}.{image.jobs.count()}",
        file_path=current.file_path,
        sha256=current.sha256,
        class_labels=current.class_labels,
        input_size=current.input_size,
        review_threshold=current.review_threshold,
    )
    classifier_services.model_version_activate(model_version=newer)
    classifier_services.classification_job_create(image=image)
    job = image.jobs.order_by("-id").first()
    classifier_services.job_start(job_id=job.id)
    return classify_job(job, **result)


def classify_job(job, *, label="fetal_brain", confidence=0.9, needs_review=False):
    others = (1 - confidence) / 3
    probabilities = {name: confidence if name == label else others for name in PLANE_LABELS}
    result = ClassifierResult(
        label=label, confidence=confidence, probabilities=probabilities, needs_review=needs_review, inference_ms=3.0
    )
    classifier_services.prediction_save(job_id=job.id, result=result, heatmap_png=None)
    job.refresh_from_db()
    return job.prediction


@pytest.fixture
def image_with_reviewed_old_prediction(study, model_version, clinician):
    """The old job's prediction was flagged and reviewed; the newest job's is confident and not reviewed."""
    image = upload(study, seed=11)
    old = classify(image, label="fetal_femur", confidence=0.4, needs_review=True)
    classifier_services.prediction_review(prediction=old, label="fetal_thorax", reviewed_by=clinician)
    latest = reclassify(image, label="fetal_brain", confidence=0.95)
    return image, old, latest


class TestLatestPrediction:
    def test_is_the_newest_jobs_prediction_everywhere(self, api_client, image_with_reviewed_old_prediction):
        image, old, latest = image_with_reviewed_old_prediction

        assert classifier_selectors.image_latest_prediction(image) == latest
        assert api_client.get(f"/api/v1/images/{image.id}/").json()["prediction"]["id"] == latest.id

    def test_reviewed_filter_looks_at_the_latest_prediction_only(self, api_client, image_with_reviewed_old_prediction):
        image, _, _ = image_with_reviewed_old_prediction

        def ids(query):
            response = api_client.get(f"/api/v1/images/?{query}")
            assert response.status_code == 200, response.json()
            return [row["id"] for row in response.json()["results"]]

        # The old prediction's review does not make the image reviewed: its latest prediction is not.
        assert ids("reviewed=true") == []
        assert ids("reviewed=false") == [image.id]
        assert ids("label=fetal_thorax") == []
        assert ids("label=fetal_brain") == [image.id]

    def test_review_service_reviews_the_latest_prediction(self, clinician, image_with_reviewed_old_prediction):
        image, old, latest = image_with_reviewed_old_prediction

        reviewed = classifier_services.image_review(image=image, label="fetal_abdomen", reviewed_by=clinician)

        old.refresh_from_db()
        assert reviewed.id == latest.id and reviewed.reviewed_label == "fetal_abdomen"
        assert old.reviewed_label == "fetal_thorax"  # unchanged


class TestWorklistAwaitingReview:
    def test_counts_images_whose_latest_prediction_awaits_review(self, client, sonographer, study, model_version):
        settled = upload(study, seed=21)
        classify(settled, label="fetal_femur", confidence=0.4, needs_review=True)
        reclassify(settled, label="fetal_femur", confidence=0.95)  # the newer result is confident
        waiting = upload(study, seed=22)
        classify(waiting, label="fetal_brain", confidence=0.4, needs_review=True)
        client.force_login(sonographer)

        everything = client.get(reverse("home"))
        flagged_only = client.get(reverse("home"), {"needs_review": "on"})

        assert everything.context["studies"][0].needs_review_count == 1
        assert [s.id for s in flagged_only.context["studies"]] == [study.id]


class TestWebhookPayload:
    def test_prediction_is_what_the_api_shows(self, north, api_client, image, clinician):
        webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url=PUBLIC_URL, secret="s" * 32))
        prediction = classify(image, label="fetal_abdomen", confidence=0.4, needs_review=True)
        classifier_services.prediction_review(prediction=prediction, label="fetal_femur", reviewed_by=clinician)

        api_shape = api_client.get(f"/api/v1/predictions/{prediction.id}/").json()
        created, reviewed = (
            WebhookDelivery.objects.get(event_type=event).payload["data"]["prediction"]
            for event in ("prediction.created", "prediction.reviewed")
        )

        assert reviewed == api_shape
        assert created.keys() == api_shape.keys() and created["reviewed_label"] == ""

    def test_failed_job_is_what_the_api_shows(self, north, api_client, image):
        webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url=PUBLIC_URL, secret="s" * 32))
        job = image.jobs.get()
        classifier_services.job_mark_failed(job_id=job.id, reason="RuntimeError: boom")

        payload = WebhookDelivery.objects.get(event_type="job.failed").payload["data"]["job"]

        assert payload == api_client.get(f"/api/v1/jobs/{job.id}/").json()
