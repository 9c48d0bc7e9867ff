"""The API's review states (issue 19): a review names a plane or why the image is none; a clinician excludes an
image and includes it again; the image and prediction JSON, the list filters and the prediction.reviewed
webhook all carry the states."""

import json

import pytest
import yaml

from classifier import services as classifier_services
from classifier.models import WebhookDelivery, WebhookEndpoint
from classifier.webhooks import webhook_delivery_attempt, webhook_endpoint_save
from patients.models import UltrasoundImage
from tests.api.conftest import classify, upload
from tests.api.test_webhook_events import COMMITTED, schema_errors
from tests.api.webhook_receiver import Receiver, serving


def review(client, image, body: dict):
    return client.post(f"/api/v1/images/{image.id}/review/", body, format="json")


class TestReview:
    def test_a_suggestion_until_reviewed(self, clinician_client, classified_image):
        body = clinician_client.get(f"/api/v1/images/{classified_image.id}/").json()

        assert (body["review_state"], body["not_plane_reason"], body["excluded"]) == ("suggested", "", None)
        assert body["prediction"]["review_state"] == "suggested"

    def test_confirm_and_correct(self, clinician_client, classified_image):
        confirmed = review(clinician_client, classified_image, {"label": "fetal_brain"}).json()
        corrected = review(clinician_client, classified_image, {"label": "fetal_femur"}).json()

        assert (confirmed["review_state"], confirmed["final_label"]) == ("confirmed", "fetal_brain")
        assert (corrected["review_state"], corrected["final_label"]) == ("corrected", "fetal_femur")

    def test_not_a_standard_plane_with_a_reason(self, clinician_client, classified_image):
        response = review(clinician_client, classified_image, {"not_plane_reason": "maternal", "comment": "Cervix"})

        assert response.status_code == 200
        body = response.json()
        assert (body["review_state"], body["not_plane_reason"], body["reviewed_label"], body["final_label"]) == (
            "not_a_plane",
            "maternal",
            "",
            "",
        )
        image = clinician_client.get(f"/api/v1/images/{classified_image.id}/").json()
        assert (image["review_state"], image["not_plane_reason"]) == ("not_a_plane", "maternal")

    @pytest.mark.parametrize(
        "body", [{}, {"comment": "?"}, {"label": "fetal_brain", "not_plane_reason": "maternal"}], ids=str
    )
    def test_exactly_one_of_label_and_reason(self, clinician_client, classified_image, body):
        response = review(clinician_client, classified_image, body)

        assert response.status_code == 400 and response.json()["code"] == "invalid"
        assert classified_image.jobs.get().prediction.review_state == "suggested"

    def test_an_unknown_reason_is_a_400_naming_it(self, clinician_client, classified_image):
        response = review(clinician_client, classified_image, {"not_plane_reason": "parrot"})
        assert response.status_code == 400 and "not_plane_reason" in response.json()["fields"]


class TestExcludeAndInclude:
    def test_a_clinician_excludes_and_includes_again(self, clinician_client, clinician, classified_image):
        path = f"/api/v1/images/{classified_image.id}/"

        excluded = clinician_client.post(path + "exclude/", {"reason": "wrong_patient", "comment": "Twin"}, "json")

        assert excluded.status_code == 200
        body = excluded.json()
        assert body["review_state"] == "excluded" and body["prediction"]["review_state"] == "suggested"
        assert (body["excluded"]["reason"], body["excluded"]["by"]) == ("wrong_patient", clinician.username)
        assert body["excluded"]["at"]

        included = clinician_client.post(path + "include/").json()

        assert (included["review_state"], included["excluded"]) == ("suggested", None)
        changes = [entry["changes"] for entry in clinician_client.get(path + "history/").json()]
        assert {"from": "", "to": "wrong_patient"} in [c.get("excluded_reason") for c in changes]

    def test_a_sonographer_and_another_clinic_may_not(self, api_client, south_api_client, classified_image):
        path = f"/api/v1/images/{classified_image.id}/exclude/"
        assert api_client.post(path, {"reason": "test_image"}, format="json").status_code == 403
        assert south_api_client.post(path, {"reason": "test_image"}, format="json").status_code == 404
        assert not UltrasoundImage.objects.get(id=classified_image.id).is_excluded

    def test_an_unknown_reason_is_a_400(self, clinician_client, classified_image):
        response = clinician_client.post(f"/api/v1/images/{classified_image.id}/exclude/", {"reason": "x"}, "json")
        assert response.status_code == 400


class TestFilters:
    def test_review_state_and_reviewed_filter_the_images(self, clinician_client, clinician, study, model_version):
        confirmed, not_a_plane, suggested, pending, excluded = (upload(study, seed=seed) for seed in range(5))
        for image in (confirmed, not_a_plane, suggested, excluded):
            classify(image)
        classifier_services.image_review(image=confirmed, label="fetal_brain", reviewed_by=clinician)
        classifier_services.image_review(image=not_a_plane, not_plane_reason="non_fetal", reviewed_by=clinician)
        clinician_client.post(f"/api/v1/images/{excluded.id}/exclude/", {"reason": "test_image"}, format="json")

        def ids(query: str) -> list[int]:
            response = clinician_client.get(f"/api/v1/images/?study={study.id}&{query}")
            assert response.status_code == 200, response.json()
            return [row["id"] for row in response.json()["results"]]

        assert ids("review_state=confirmed") == [confirmed.id]
        assert ids("review_state=not_a_plane") == [not_a_plane.id]
        assert ids("review_state=suggested") == [suggested.id]
        assert ids("review_state=pending") == [pending.id]
        assert ids("review_state=excluded") == [excluded.id]
        assert ids("reviewed=true") == [confirmed.id, not_a_plane.id]
        assert ids("label=fetal_brain") == [confirmed.id, suggested.id, excluded.id]  # not the not-a-plane one
        predictions = clinician_client.get("/api/v1/predictions/?review_state=not_a_plane").json()["results"]
        assert [row["image"] for row in predictions] == [not_a_plane.id]


class TestReviewedWebhook:
    def test_a_not_a_plane_review_is_sent_with_its_state_and_reason(
        self, north, settings, study, model_version, clinician
    ):
        settings.WEBHOOK_ALLOW_HTTP = True
        settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
        with serving(Receiver()) as receiver:
            webhook_endpoint_save(
                endpoint=WebhookEndpoint(clinic=north, url=receiver.url, events=["prediction.reviewed"])
            )
            image = upload(study, seed=7)
            classify(image)
            classifier_services.image_review(image=image, not_plane_reason="other_anatomy", reviewed_by=clinician)
            for delivery in WebhookDelivery.objects.order_by("id"):
                webhook_delivery_attempt(delivery_id=delivery.id)
            events = [json.loads(request["body"]) for request in receiver.received]

        assert [event["type"] for event in events] == ["prediction.reviewed"]
        prediction = events[0]["data"]["prediction"]
        assert (prediction["review_state"], prediction["not_plane_reason"], prediction["final_label"]) == (
            "not_a_plane",
            "other_anatomy",
            "",
        )
        assert schema_errors(yaml.safe_load(COMMITTED.read_text()), "prediction.reviewed", events[0]) == []
