"""Every endpoint, asked by North's integrator (or clinician) about South's records, answers 404
exactly as for a missing record, changes nothing, and no list shows South's data."""

from __future__ import annotations

import pytest

from classifier.models import ClassificationJob, Prediction
from patients.models import Patient, Study, UltrasoundImage
from tests.images import png_bytes


@pytest.fixture
def south_ids(south_image):
    job = south_image.jobs.get()
    return {
        "patient": south_image.study.patient_id,
        "study": south_image.study_id,
        "image": south_image.id,
        "job": job.id,
        "prediction": job.prediction.id,
    }


def _png():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("x.png", png_bytes(seed=7), content_type="image/png")


ENDPOINTS = [
    ("get", "/api/v1/patients/{patient}/", None),
    ("patch", "/api/v1/patients/{patient}/", {"given_name": "Hacked"}),
    ("get", "/api/v1/studies/{study}/", None),
    ("patch", "/api/v1/studies/{study}/", {"notes": "Hacked"}),
    ("post", "/api/v1/studies/{study}/complete/", None),
    ("post", "/api/v1/studies/{study}/images/", "file"),
    ("get", "/api/v1/images/{image}/", None),
    ("get", "/api/v1/images/{image}/file/", None),
    ("get", "/api/v1/images/{image}/original/", None),
    ("get", "/api/v1/images/{image}/history/", None),
    ("get", "/api/v1/jobs/{job}/", None),
    ("post", "/api/v1/jobs/{job}/retry/", None),
    ("get", "/api/v1/predictions/{prediction}/", None),
]


def _call(client, method, url, body):
    if body == "file":
        return client.post(url, {"file": [_png()]}, format="multipart")
    return getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)


def _snapshot():
    return [
        list(model.objects.order_by("id").values())
        for model in (Patient, Study, UltrasoundImage, ClassificationJob, Prediction)
    ]


@pytest.mark.parametrize(("method", "template", "body"), ENDPOINTS, ids=[f"{m} {t}" for m, t, _ in ENDPOINTS])
def test_another_clinics_record_is_a_404_like_a_missing_one(api_client, south_ids, method, template, body):
    before = _snapshot()

    foreign = _call(api_client, method, template.format(**south_ids), body)
    missing = _call(api_client, method, template.format(**{key: 987654321 for key in south_ids}), body)

    assert foreign.status_code == 404
    assert foreign.json() == missing.json() == {"detail": "Not found.", "code": "not_found"}
    assert _snapshot() == before


def test_review_of_another_clinics_image_is_a_404(clinician_client, south_ids):
    response = clinician_client.post(f"/api/v1/images/{south_ids['image']}/review/", {"label": "fetal_femur"})

    assert response.status_code == 404
    assert Prediction.objects.get(id=south_ids["prediction"]).reviewed_label == ""


@pytest.mark.parametrize(
    ("url", "query"),
    [
        ("/api/v1/patients/", ""),
        ("/api/v1/studies/", "?patient={patient}"),
        ("/api/v1/images/", "?study={study}"),
        ("/api/v1/jobs/", "?image={image}"),
        ("/api/v1/predictions/", "?image={image}"),
    ],
)
def test_lists_never_show_another_clinics_records(api_client, south_ids, url, query):
    response = api_client.get(url + query.format(**south_ids))

    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_model_versions_are_shared_not_clinic_data(api_client, south_api_client, model_version):
    north = api_client.get("/api/v1/model-versions/fetalnet:1.0/")
    south = south_api_client.get("/api/v1/model-versions/fetalnet:1.0/")

    assert north.status_code == south.status_code == 200
