"""GET /api/v1/images/{id}/heatmap/: 202 with Retry-After while the heatmap is being made (the first request queues
it), the PNG once made, 404 for an image without one and for another clinic's image."""

from __future__ import annotations

from classifier.models import Prediction
from classifier.services import classification_job_run, heatmap_render
from patients.services import image_upload
from tests.images import png_bytes


def classified(study, user):
    image = image_upload(study=study, data=png_bytes(seed=6), filename="h.png", uploaded_by=user).image
    classification_job_run(job_id=image.jobs.get().id)
    return image


class TestImageHeatmapApi:
    def test_202_until_made_then_the_png(
        self, api_client, study, sonographer, active_model, django_capture_on_commit_callbacks
    ):
        image = classified(study, sonographer)
        url = f"/api/v1/images/{image.id}/heatmap/"
        assert api_client.get(f"/api/v1/images/{image.id}/").json()["heatmap_url"] == url

        with django_capture_on_commit_callbacks() as callbacks:
            first, second = api_client.get(url), api_client.get(url)

        for response in (first, second):
            assert response.status_code == 202, response.content
            assert response["Retry-After"] == "1"
            assert response.json() == {
                "status": "preparing",
                "detail": "The heatmap is being made; ask again shortly.",
                "retry_after": 1,
            }
        assert len([c for c in callbacks if getattr(getattr(c, "func", None), "__name__", "") == "_heatmap_send"]) == 1

        heatmap_render(prediction_id=Prediction.objects.get(job__image=image).id)
        made = api_client.get(url)
        assert made.status_code == 200 and made["Content-Type"] == "image/png"
        assert made["Content-Disposition"] == f'attachment; filename="heatmap-{image.id}.png"'
        assert b"".join(made.streaming_content).startswith(b"\x89PNG")

    def test_404_no_heatmap_before_the_prediction(self, api_client, study, sonographer, active_model):
        image = image_upload(study=study, data=png_bytes(), filename="q.png", uploaded_by=sonographer).image
        response = api_client.get(f"/api/v1/images/{image.id}/heatmap/")
        assert response.status_code == 404 and response.json()["code"] == "no_heatmap"
        assert api_client.get(f"/api/v1/images/{image.id}/").json()["heatmap_url"] is None

    def test_another_clinics_image_is_not_found_and_nothing_is_queued(
        self, south_api_client, study, sonographer, active_model
    ):
        image = classified(study, sonographer)
        response = south_api_client.get(f"/api/v1/images/{image.id}/heatmap/")
        assert response.status_code == 404 and response.json()["code"] == "not_found"
        assert Prediction.objects.get(job__image=image).heatmap_requested_at is None
