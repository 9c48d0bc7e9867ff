"""Every write API refuses body fields it does not know (400 naming each) and changes nothing.

Before, ``{"clinic": 2}`` or ``{"status": "OPEN"}`` were silently dropped, leaving the client believing
it had set them. The cases below cover every write operation of the schema (a test checks that)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token

from biometry.models import Measurement
from classifier import services as classifier_services
from classifier.models import ClassificationJob, Prediction
from patients.models import Patient, Study, UltrasoundImage
from tests.api.conftest import classify, upload
from tests.api.test_openapi import COMMITTED
from tests.biometry.conftest import card_without_model, measured
from tests.images import png_bytes

UNKNOWN = {"clinic": 2, "status": "OPEN", "reviewed_by": 1}
UNKNOWN_ERRORS = {name: ["Unknown field."] for name in UNKNOWN}


@dataclass
class WriteCase:
    method: str
    schema_path: str  # as the schema names it, to check that every write operation is covered
    body: dict[str, Any]  # a valid body, or {} for writes that take none
    client: str = "api_client"

    def url(self, ids: dict[str, int]) -> str:
        return "/api/v1" + self.schema_path.format(**ids)


CASES = [
    WriteCase("post", "/auth/token/", {"username": "api_north", "password": "correct-horse-battery"}),
    WriteCase("delete", "/auth/token/", {}),
    WriteCase("post", "/auth/token/rotate/", {}),
    WriteCase("post", "/patients/", {"mrn": "N-9", "given_name": "A", "family_name": "B"}),
    WriteCase("patch", "/patients/{patient_id}/", {"given_name": "C"}),
    WriteCase("put", "/patients/by-mrn/{mrn}/", {"given_name": "A", "family_name": "B"}),
    WriteCase("post", "/studies/", {"patient": "{patient_id}", "exam_date": "2026-11-27"}),
    WriteCase("patch", "/studies/{study_id}/", {"notes": "Placenta anterior."}),
    WriteCase("post", "/studies/{study_id}/complete/", {}, client="clinician_client"),
    WriteCase("post", "/studies/{study_id}/sign-off/", {"acknowledged": True}, client="clinician_client"),
    WriteCase("post", "/studies/{study_id}/reopen/", {"reason": "A late image"}, client="clinician_client"),
    WriteCase("post", "/images/{image_id}/review/", {"label": "fetal_thorax"}, client="clinician_client"),
    WriteCase("post", "/images/{image_id}/exclude/", {"reason": "test_image"}, client="clinician_client"),
    WriteCase("post", "/images/{image_id}/include/", {}, client="clinician_client"),
    WriteCase(
        "post",
        "/images/{image_id}/calibration/",
        {"start": [2, 10], "end": [42, 10], "distance_mm": 10},
        client="clinician_client",
    ),
    WriteCase("post", "/jobs/{job_id}/retry/", {}),
    WriteCase("post", "/measurements/{measurement_id}/review/", {"action": "accept"}, client="clinician_client"),
]


def _state() -> dict[str, list]:
    """Every row the write APIs could change, to show that a refused request changed nothing."""
    models = (Patient, Study, UltrasoundImage, ClassificationJob, Prediction, Measurement, Token)
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in models}


@pytest.fixture
def ids(study, model_version, settings, tmp_path):
    settings.BIOMETRY_MODEL_CARD = card_without_model(tmp_path)  # the brain plane's measurement job is queued
    classified = upload(study, seed=1)
    classify(classified)
    measurement = measured(classified)
    failed_job = upload(study, seed=2).jobs.get()
    classifier_services.job_mark_failed(job_id=failed_job.id, reason="RuntimeError: boom")
    return {
        "patient_id": study.patient_id,
        "study_id": study.id,
        "image_id": classified.id,
        "job_id": failed_job.id,
        "measurement_id": measurement.id,
        "mrn": "N-NEW",
    }


class TestUnknownFieldsAreRefused:
    @pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.method} {case.schema_path}")
    def test_unknown_fields_are_a_400_naming_them_and_change_nothing(self, case, ids, request):
        client = request.getfixturevalue(case.client)
        body = {key: int(value.format(**ids)) if value == "{patient_id}" else value for key, value in case.body.items()}
        before = _state()

        response = getattr(client, case.method)(case.url(ids), {**body, **UNKNOWN}, format="json")

        assert response.status_code == 400, response.content
        assert response.json()["code"] == "invalid"
        assert response.json()["fields"] == UNKNOWN_ERRORS
        assert _state() == before

    def test_an_upload_refuses_form_fields_other_than_file(self, api_client, study, model_version):
        files = [SimpleUploadedFile("scan.png", png_bytes(seed=3), content_type="image/png")]

        response = api_client.post(
            f"/api/v1/studies/{study.id}/images/", {"file": files, "clinic": "2"}, format="multipart"
        )

        assert response.status_code == 400
        assert response.json()["fields"] == {"clinic": ["Unknown field."]}
        assert not UltrasoundImage.objects.exists()

    def test_an_upload_refuses_a_file_part_under_another_name(self, api_client, study, model_version):
        image = SimpleUploadedFile("scan.png", png_bytes(seed=4), content_type="image/png")
        extra = SimpleUploadedFile("other.png", png_bytes(seed=5), content_type="image/png")

        response = api_client.post(
            f"/api/v1/studies/{study.id}/images/", {"file": [image], "image": extra}, format="multipart"
        )

        assert response.status_code == 400
        assert response.json()["fields"] == {"image": ["Unknown field."]}
        assert not UltrasoundImage.objects.exists()

    def test_known_fields_alone_still_work(self, api_client, study):
        response = api_client.patch(f"/api/v1/studies/{study.id}/", {"notes": "Placenta anterior."}, format="json")

        assert response.status_code == 200
        assert Study.objects.get(id=study.id).notes == "Placenta anterior."


class TestSchemaSaysSo:
    def test_every_write_operation_of_the_schema_is_covered_above(self):
        schema = yaml.safe_load(COMMITTED.read_text())
        writes = {
            (method, path.removeprefix("/api/v1"))
            for path, item in schema["paths"].items()
            for method in item
            if method in {"post", "patch", "put", "delete"}
        }

        covered = {(case.method, case.schema_path) for case in CASES} | {("post", "/studies/{study_id}/images/")}
        assert writes == covered

    def test_every_request_body_refuses_additional_properties(self):
        schema = yaml.safe_load(COMMITTED.read_text())
        bodies = [
            content["schema"]["$ref"].rsplit("/", 1)[-1]
            for item in schema["paths"].values()
            for operation in item.values()
            if isinstance(operation, dict) and "requestBody" in operation
            for content in operation["requestBody"]["content"].values()
        ]

        # token, patient x3 (create, correct, by MRN), study x2, upload, review, exclude, sign-off (complete/ too),
        # reopen, an image's calibration and a measurement's review (issue 21)
        assert len(set(bodies)) == 13
        for name in bodies:
            assert schema["components"]["schemas"][name]["additionalProperties"] is False, name
