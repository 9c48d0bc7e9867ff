"""Walk every URL that takes an object id as a user of the other clinic: always 404.

The walk reads the URLconf, so pages and API endpoints added later are covered too.
"""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from biometry.services import measurement_job_start, measurement_request, measurement_save
from classifier.services import classification_job_run
from patients.services import image_upload
from tests.biometry.conftest import card_without_model, drawn_head
from tests.images import png_bytes
from tests.urlconf import all_routes, fill_route


def id_routes():
    """(route, kwarg names) for every non-admin URL that has an <int:...> id."""
    routes = []
    for route, pattern in all_routes():
        if route.startswith("admin/"):
            continue
        converters = pattern.pattern.converters
        if converters and all(c.__class__.__name__ == "IntConverter" for c in converters.values()):
            routes.append((route, tuple(converters)))
    return routes


@pytest.fixture
def north_records(study, sonographer, active_model, settings, tmp_path):
    image = image_upload(study=study, data=png_bytes(), filename="n.png", uploaded_by=sonographer).image
    job = classification_job_run(job_id=image.jobs.get().id)
    settings.BIOMETRY_MODEL_CARD = card_without_model(tmp_path)
    measurement_job = measurement_request(image=image)
    measurement_job_start(job_id=measurement_job.id)
    measurement_save(job_id=measurement_job.id, finding=drawn_head(), runtime="keras")
    return {
        "patient_id": study.patient_id,
        "study_id": study.id,
        "image_id": image.id,
        "job_id": job.id,
        "prediction_id": job.prediction.id,
        "measurement_id": measurement_job.measurement.id,
    }


def test_the_walk_finds_the_core_routes():
    routes = {route for route, _ in id_routes()}
    assert {"studies/<int:study_id>/", "api/v1/images/<int:image_id>/", "images/<int:image_id>/file/"} <= routes


@pytest.mark.parametrize(("route", "names"), id_routes(), ids=[r for r, _ in id_routes()])
def test_other_clinic_gets_404_everywhere(client, route, names, north_records, south_sonographer, settings):
    unknown = [name for name in names if name not in north_records]
    assert not unknown, f"teach this test the id kwarg(s) {unknown} of {route}"
    url = fill_route(route, {name: north_records[name] for name in names})
    if route.startswith("api/"):
        token, _ = Token.objects.get_or_create(user=south_sonographer)
        headers = {"HTTP_AUTHORIZATION": f"Token {token.key}"}
    else:
        client.force_login(south_sonographer)
        headers = {}
    for method in ("get", "post", "put", "patch", "delete"):
        response = getattr(client, method)(url, **headers)
        assert response.status_code in (404, 405), f"{method.upper()} {url}: {response.status_code}"
        assert b"MRN" not in response.content and b"n.png" not in response.content


def test_another_clinics_ids_and_missing_ids_answer_alike(client, north_records, south_sonographer):
    client.force_login(south_sonographer)
    foreign = client.get(f"/studies/{north_records['study_id']}/")
    missing = client.get("/studies/987654321/")
    assert foreign.status_code == missing.status_code == 404
