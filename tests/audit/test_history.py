"""Every write of patient data is kept in the model history: who, when and what changed."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from classifier.labels import PLANE_LABELS
from classifier.models import ClassificationJob, ModelVersion, Prediction
from patients.models import Patient, Study, UltrasoundImage

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", [Patient, Study, UltrasoundImage, ClassificationJob, Prediction, ModelVersion])
def test_patient_data_models_keep_a_history(model):
    assert hasattr(model, "history")


def test_api_write_records_who_and_when(api_client, integrator):
    response = api_client.post(
        "/api/v1/patients/", {"mrn": "H-1", "given_name": "Eve", "family_name": "Doe"}, format="json"
    )

    assert response.status_code == 201
    record = Patient.history.get(id=response.json()["id"])
    assert (record.history_type, record.history_user) == ("+", integrator)
    assert record.history_date.utcoffset().total_seconds() == 0


def test_review_records_what_changed_and_who_changed_it(clinician, north_records):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=clinician).key}")

    response = client.post(
        f"/api/v1/images/{north_records['image_id']}/review/", {"label": PLANE_LABELS[1]}, format="json"
    )

    assert response.status_code == 200
    newest, before = Prediction.history.filter(id=north_records["prediction_id"]).order_by("-history_id")[:2]
    changes = {change.field: (change.old, change.new) for change in newest.diff_against(before).changes}
    assert changes["reviewed_label"] == ("", PLANE_LABELS[1])
    assert newest.history_user == clinician
