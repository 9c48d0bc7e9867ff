"""Lists and pages cost the same number of queries for 2 rows as for 10 (issue 20: cheap requests).

Each row is a patient with a study and a classified, reviewed image, made through the real services; the count
is taken on a second request, after the access log and the session have made their first rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from classifier import services as classifier_services
from tests.api.conftest import classify, model_version, upload  # noqa: F401 (a fixture)
from tests.conftest import _token_client
from tests.factories import PatientFactory, StudyFactory


def _rows(*, clinic, user, clinician, start: int, count: int, study=None) -> None:
    for n in range(start, start + count):
        target = study or StudyFactory(patient=PatientFactory(clinic=clinic), created_by=user)
        prediction = classify(upload(target, seed=n, user=user))
        if n % 2:  # half reviewed, so who reviewed each is part of the rows too
            classifier_services.prediction_review(prediction=prediction, label="fetal_brain", reviewed_by=clinician)


def _count(get) -> tuple[int, object]:
    get()  # the first request writes what every later one only reads (session, access log)
    with CaptureQueriesContext(connection) as queries:
        response = get()
    assert response.status_code == 200, response.status_code
    return len(queries), response


API_LISTS = ["/api/v1/patients/", "/api/v1/studies/", "/api/v1/images/", "/api/v1/jobs/", "/api/v1/predictions/"]


@pytest.mark.parametrize("url", API_LISTS)
def test_api_lists_do_not_grow_with_their_rows(url, integrator, sonographer, clinician, model_version):  # noqa: F811
    client = _token_client(integrator)
    rows = dict(clinic=sonographer.clinic, user=sonographer, clinician=clinician)
    _rows(**rows, start=0, count=2)
    two, _ = _count(lambda: client.get(url))
    _rows(**rows, start=2, count=8)
    ten, response = _count(lambda: client.get(url))
    assert response.json()["count"] == 10
    assert ten == two


PAGES = [
    ("home", lambda study: {}),
    ("patient-detail", lambda study: {"patient_id": study.patient_id}),
    ("study-detail", lambda study: {"study_id": study.id}),
    ("study-images", lambda study: {"study_id": study.id}),
]


@pytest.mark.parametrize(("name", "kwargs"), PAGES, ids=[name for name, _ in PAGES])
def test_pages_do_not_grow_with_their_rows(name, kwargs, client, sonographer, clinician, model_version):  # noqa: F811
    client.force_login(sonographer)
    study = StudyFactory(patient=PatientFactory(clinic=sonographer.clinic), created_by=sonographer)
    # The worklist's rows are studies; a patient's page lists studies; a study's pages list images.
    per_study = name in ("study-detail", "study-images")
    patient_pages = name == "patient-detail"
    rows = dict(clinic=sonographer.clinic, user=sonographer, clinician=clinician)

    def add(start: int, count: int) -> None:
        if per_study:
            _rows(**rows, start=start, count=count, study=study)
        elif patient_pages:
            for n in range(start, start + count):
                other = StudyFactory(patient=study.patient, created_by=sonographer)
                classify(upload(other, seed=n, user=sonographer))
        else:
            _rows(**rows, start=start, count=count)

    url = reverse(name, kwargs=kwargs(study))
    headers = {"X-Requested-With": "fetch"} if name == "study-images" else {}
    add(0, 2)
    two, _ = _count(lambda: client.get(url, headers=headers))
    add(2, 8)
    ten, response = _count(lambda: client.get(url, headers=headers))
    html = response.content.decode()
    shown = html.count('class="card image-card') if per_study else len(response.context["studies"])
    assert shown == (10 if per_study else 11)  # the worklist and the patient's page show ``study`` too
    assert ten == two


def test_qido_study_and_instance_searches_do_not_grow_with_their_rows(integrator, model_version):  # noqa: F811
    from pydicom.uid import generate_uid

    from patients.services import dicom_instance_receive
    from tests.dicom_samples import dicom_bytes

    client = _token_client(integrator)
    study_uid = generate_uid()

    def receive(start: int, count: int) -> None:
        for n in range(start, start + count):  # a study of its own each, and one more instance of a shared one
            for uid in (generate_uid(), study_uid):
                data = dicom_bytes(patient_id=f"MRN-Q{n}" if uid != study_uid else "MRN-Q", study_uid=uid)
                dicom_instance_receive(clinic=integrator.clinic, data=data, received_by=integrator, source="test")

    accept = {"HTTP_ACCEPT": "application/dicom+json"}
    urls = ["/dicomweb/studies", f"/dicomweb/studies/{study_uid}/instances"]
    receive(0, 2)
    two = [_count(lambda url=url: client.get(url, **accept))[0] for url in urls]
    receive(2, 8)
    counted = [_count(lambda url=url: client.get(url, **accept)) for url in urls]
    studies, instances = (response.json() for _, response in counted)
    assert (len(studies), len(instances)) == (11, 10)
    assert [count for count, _ in counted] == two
