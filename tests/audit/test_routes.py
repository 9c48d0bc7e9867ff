"""The URL-to-object mapping is generic: every id route in the URLconf, today's and later ones, is covered."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from fetalsite.audit.models import AccessLogEntry
from fetalsite.audit.routes import ID_KWARGS, access_target_resolve
from tests.urlconf import all_routes, fill_route


def id_routes():
    """(route, URL name, id kwargs) of every non-admin URL whose ids are all patient-data ids."""
    routes = []
    for route, pattern in all_routes():
        converters = getattr(pattern.pattern, "converters", {})
        if not route.startswith("admin/") and converters and set(converters) <= set(ID_KWARGS):
            routes.append((route, pattern.name, tuple(converters)))
    return routes


def _resolve(route, name, kwargs):
    return access_target_resolve(route=route, url_name=name, namespaces=[], kwargs=kwargs)


class TestAccessTargetResolve:
    @pytest.mark.parametrize(("route", "name", "names"), id_routes(), ids=[r for r, _, _ in id_routes()])
    def test_every_id_route_names_an_object_that_leads_to_a_patient(self, route, name, names):
        target = _resolve(route, name, dict.fromkeys(names, "7"))

        assert target is not None
        assert target.lookup_type in ID_KWARGS.values() and target.lookup_id == 7

    @pytest.mark.parametrize(
        ("route", "kwargs", "expected"),
        [
            ("studies/<int:study_id>/", {"study_id": 3}, ("VIEW", "study", 3, "study")),
            ("images/<int:image_id>/file/", {"image_id": 4}, ("DOWNLOAD", "image_file", 4, "image")),
            ("images/<int:image_id>/heatmap/", {"image_id": 4}, ("DOWNLOAD", "heatmap", 4, "image")),
            ("studies/<int:study_id>/report.pdf", {"study_id": 3}, ("DOWNLOAD", "study_report", 3, "study")),
            ("api/v1/studies/<int:study_id>/report/", {"study_id": 3}, ("DOWNLOAD", "study_report", 3, "study")),
            ("api/v1/images/<int:image_id>/original/", {"image_id": 4}, ("DOWNLOAD", "image_original", 4, "image")),
            ("api/v1/images/<int:image_id>/playback/", {"image_id": 4}, ("DOWNLOAD", "image_playback", 4, "image")),
            ("api/v1/images/<int:image_id>/frames/", {"image_id": 4}, ("VIEW", "image", 4, "image")),
            ("api/v1/images/<int:image_id>/history/", {"image_id": 4}, ("VIEW", "history", 4, "image")),
            ("studies/<int:study_id>/images/", {"study_id": 3}, ("LIST", "image", None, "study")),
            ("studies/<int:study_id>/images.json", {"study_id": 3}, ("LIST", "image", None, "study")),
            ("api/v1/studies/<int:study_id>/images/", {"study_id": 3}, ("LIST", "image", None, "study")),
            ("patients/<int:patient_id>/studies/new/", {"patient_id": 2}, ("VIEW", "patient", 2, "patient")),
            ("api/v1/jobs/", {}, ("LIST", "job", None, None)),
            ("api/v1/patients/by-mrn/<path:mrn>/", {"mrn": "N-1"}, ("LIST", "patient", None, None)),
            # Routes nobody has written yet.
            ("api/v1/predictions/<int:prediction_id>/", {"prediction_id": 5}, ("VIEW", "prediction", 5, "prediction")),
            (
                "studies/<int:study_id>/images/<int:image_id>/",
                {"study_id": 3, "image_id": 4},
                ("VIEW", "image", 4, "image"),
            ),
            ("api/v1/reports/<int:report_id>/", {"report_id": 9}, ("VIEW", "report", 9, "report")),
            ("api/v1/measurements/", {}, ("LIST", "measurements", None, None)),
            ("sonographer/studies/<int:study_id>/export/", {"study_id": 3}, ("EXPORT", "study", 3, "study")),
        ],
    )
    def test_route_maps_to_action_and_object(self, route, kwargs, expected):
        target = _resolve(route, None, kwargs)

        assert (target.action, target.object_type, target.object_id, target.lookup_type) == expected

    @pytest.mark.parametrize(
        "route", ["login/", "patients/new/", "api/v1/auth/token/", "api/v1/model-versions/<int:model_version_id>/"]
    )
    def test_routes_without_patient_data_are_not_logged(self, route):
        assert _resolve(route, None, {"model_version_id": 1}) is None

    def test_admin_views_of_patient_models_are_reads(self):
        change = access_target_resolve(
            route="admin/patients/patient/<path:object_id>/change/",
            url_name="patients_patient_change",
            namespaces=["admin"],
            kwargs={"object_id": "12"},
        )
        changelist = access_target_resolve(
            route="admin/patients/study/", url_name="patients_study_changelist", namespaces=["admin"], kwargs={}
        )

        assert (change.action, change.object_type, change.object_id) == ("VIEW", "patient", 12)
        assert (changelist.action, changelist.object_type) == ("LIST", "study")


# Routes whose GET must succeed for the owner here, so the walk below is known to log real reads.
READABLE = {
    "patient-detail",
    "study-detail",
    "study-images",
    "image-file",
    "image-heatmap",
    "api-patient",
    "api-study",
    "api-image",
    "api-image-original",
    "api-job",
    "api-measurement",
}


@pytest.mark.django_db
class TestEveryRouteEndToEnd:
    @pytest.mark.parametrize(("route", "name", "names"), id_routes(), ids=[r for r, _, _ in id_routes()])
    def test_successful_get_of_an_id_route_logs_the_patient(
        self, client, route, name, names, north_records, sonographer, integrator
    ):
        url = fill_route(route, {n: north_records[n] for n in names})
        if route.startswith("api/"):
            token, _ = Token.objects.get_or_create(user=integrator)
            user, response = integrator, client.get(url, HTTP_AUTHORIZATION=f"Token {token.key}")
        else:
            client.force_login(sonographer)
            user, response = sonographer, client.get(url)

        entries = list(AccessLogEntry.objects.all())
        if name in READABLE:
            assert 200 <= response.status_code < 300, f"GET {url}: {response.status_code}"
        if 200 <= response.status_code < 300:
            assert len(entries) == 1, f"GET {url} answered {response.status_code} but was not logged"
            assert (entries[0].user, entries[0].patient_id) == (user, north_records["patient_id"])
            assert entries[0].clinic_id == sonographer.clinic_id
        else:  # no read; a page the role may not open (a sonographer's sign-off/) logs the refusal only
            assert [entry.action for entry in entries] in ([], ["DENIED"])
