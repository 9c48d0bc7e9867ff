"""Strict query parameters (issue 17): no operation ignores a query parameter.

An unknown, repeated or empty parameter, a boolean other than `true`/`false`, a page size outside 1..200
or an offset that is not a whole number answers 400 naming the parameter, and nothing changes. The
operations and their filters come from the URLconf and the views' FilterSets, so a route or filter added
later is covered without editing this file."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.test import APIClient
from rest_framework.views import APIView

from fetalsite.accounts.roles import Role
from fetalsite.core.api_views import ApiView
from fetalsite.core.filters import StrictBooleanFilter
from fetalsite.core.lists import FilteredListApi
from tests.api.conftest import classify, upload
from tests.conftest import _token_client
from tests.dbstate import database_snapshot
from tests.factories import UserFactory
from tests.test_role_route_matrix import _body, _records
from tests.urlconf import all_routes

# drf-spectacular's documentation views (outside /api/v1/) take their own parameters (?lang, ?script).
NOT_API_VIEWS = {SpectacularAPIView, SpectacularSwaggerSplitView}
_PATH_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


def _drf_routes() -> list[tuple[str, type[APIView]]]:
    return sorted(
        (route, pattern.callback.cls)
        for route, pattern in all_routes()
        if issubclass(getattr(pattern.callback, "cls", object), APIView)
    )


def _api_operations() -> list[tuple[str, str]]:
    """(route, method) of every API operation."""
    return [
        (route, method)
        for route, view in _drf_routes()
        if view not in NOT_API_VIEWS
        for method in ("get", "post", "put", "patch", "delete")
        if hasattr(view, method)
    ]


def _list_routes() -> list[tuple[str, type[FilteredListApi]]]:
    return [(route, view) for route, view in _drf_routes() if issubclass(view, FilteredListApi)]


def _filters(view: type[FilteredListApi]) -> dict:
    filterset_class = getattr(view, "filterset_class", None)
    return dict(filterset_class.base_filters) if filterset_class is not None else {}


def _list_filters(kind=object) -> list[tuple[str, str]]:
    """(route, filter name) of every list's filters of class ``kind``."""
    return [
        (route, name)
        for route, view in _list_routes()
        for name, filter_ in _filters(view).items()
        if isinstance(filter_, kind)
    ]


def _url(route: str, records: dict) -> str:
    def fill(match: re.Match) -> str:
        assert match[1] in records, f"add a {match[1]!r} to the records fixture for {route}"
        return str(records[match[1]])

    return "/" + _PATH_PARAMETER.sub(fill, route)


@pytest.fixture
def records(study, model_version, settings):
    settings.API_THROTTLE_RATES = {"user": "100000/minute", "anon": "100000/minute", "login": "100000/minute"}
    image = upload(study, seed=1)
    prediction = classify(image, needs_review=True)
    return {
        "patient_id": study.patient_id,
        "mrn": study.patient.mrn,
        "study_id": study.id,
        "image_id": image.id,
        "job_id": prediction.job_id,
        "prediction_id": prediction.id,
        "model_version": "fetalnet:1.0",
    }


@pytest.fixture
def matrix_records(sonographer, settings, route):
    """The role matrix's records, for its bodies: each write would succeed but for the query parameter."""
    settings.API_THROTTLE_RATES = {"user": "100000/minute", "anon": "100000/minute", "login": "100000/minute"}
    return _records({"sonographer": sonographer}, route)


@pytest.fixture
def client(clinician):
    """A clinician may make every API call (reviews included), so no call is refused for its role first."""
    return _token_client(clinician)


def _send(client, route: str, method: str, records: dict, query: str):
    url = f"{_url(route, records)}?{query}"
    if method == "get":
        return client.get(url)
    body = _body(route, method, records)
    if any(isinstance(value, SimpleUploadedFile) for value in body.values()):
        return client.post(url, body, format="multipart")
    return getattr(client, method)(url, json.dumps(body), content_type="application/json")


def _assert_refused(response, name: str, message: str | None = None) -> None:
    assert response.status_code == 400, (name, response.content)
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["fields"]) == [name], body
    if message is not None:
        assert body["fields"][name] == [message]


class TestEveryRoute:
    def test_every_drf_view_is_an_api_view(self):
        routes = _drf_routes()
        assert any(route.startswith("api/v1/") for route, _ in routes)  # the walk finds the API

        skipping = [route for route, view in routes if view not in NOT_API_VIEWS and not issubclass(view, ApiView)]

        assert not skipping, f"derive these views from fetalsite.core.api_views.ApiView: {skipping}"

    @pytest.mark.parametrize(("route", "method"), _api_operations())
    def test_an_unknown_parameter_is_a_400_naming_it_and_changes_nothing(self, client, matrix_records, route, method):
        before = database_snapshot()

        response = _send(client, route, method, matrix_records, "colour=blue")

        _assert_refused(response, "colour", "Unknown query parameter.")
        assert database_snapshot() == before

    def test_format_is_no_longer_a_parameter(self, client, records):
        response = client.get(f"/api/v1/images/{records['image_id']}/file/?format=json")

        _assert_refused(response, "format", "Unknown query parameter.")

    def test_filters_are_refused_on_writes(self, client, records):
        before = database_snapshot()

        response = _send(client, "api/v1/patients/", "post", records, "search=Rossi")

        _assert_refused(response, "search", "Unknown query parameter.")
        assert database_snapshot() == before

    def test_authentication_and_role_answer_before_the_parameters(self, north):
        clinic_admin = UserFactory(clinic=north, role=Role.CLINIC_ADMIN)  # may read patients, not register them

        anonymous = APIClient().get("/api/v1/images/?colour=blue")
        refused = _token_client(clinic_admin).post("/api/v1/patients/?colour=blue", {}, format="json")

        assert anonymous.status_code == 401
        assert refused.status_code == 403

    def test_every_operation_documents_a_400(self):
        schema = SchemaGenerator().get_schema(request=None, public=True)

        missing = [
            f"{method.upper()} {path}"
            for path, item in schema["paths"].items()
            for method, operation in item.items()
            if "400" not in {str(status) for status in operation["responses"]}
        ]

        assert not missing

    def test_the_schema_lists_exactly_the_parameters_each_operation_accepts(self):
        schema = SchemaGenerator().get_schema(request=None, public=True)
        differ = {}
        for route, method in _api_operations():
            if _view_of(route).schema is None:
                continue  # DICOMweb: a standard of its own, left out of the schema (docs/dicom.md)
            operation = schema["paths"][_PATH_PARAMETER.sub(r"{\1}", "/" + route)][method]
            documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            accepted = set(_view_of(route)().accepted_query_parameters(method.upper()))
            if documented != accepted:
                differ[f"{method.upper()} /{route}"] = {"schema": documented, "accepted": accepted}

        assert not differ


def _view_of(route: str) -> type[ApiView]:
    return dict(_drf_routes())[route]


class TestRepeatedAndEmpty:
    @pytest.mark.parametrize(("route", "name"), _list_filters())
    def test_an_empty_filter_is_a_400(self, client, records, route, name):
        response = client.get(f"/{route}?{name}=")

        _assert_refused(response, name, "This parameter cannot be empty; leave it out instead.")

    @pytest.mark.parametrize("route", [route for route, _ in _list_routes()])
    def test_a_repeated_parameter_is_a_400(self, client, records, route):
        response = client.get(f"/{route}?limit=1&limit=2")

        _assert_refused(response, "limit", "Give this parameter once.")


class TestBooleans:
    def test_every_boolean_filter_is_strict(self):
        loose = [
            (route, name)
            for route, view in _list_routes()
            for name, filter_ in _filters(view).items()
            if "Boolean" in filter_.field_class.__name__ and not isinstance(filter_, StrictBooleanFilter)
        ]

        assert _list_filters(StrictBooleanFilter)  # the lists have boolean filters to check below
        assert not loose

    @pytest.mark.parametrize(("route", "name"), _list_filters(StrictBooleanFilter))
    @pytest.mark.parametrize("spelling", ["1", "0", "yes", "no", "TRUE", "True", "on", "maybe", "2", " true"])
    def test_only_true_and_false_are_booleans(self, client, records, route, name, spelling):
        response = client.get(f"/{route}", {name: spelling})

        _assert_refused(response, name, "Enter true or false.")

    @pytest.mark.parametrize("route", ["api/v1/images/", "api/v1/predictions/"])
    def test_true_and_false_narrow_the_list(self, client, records, study, route):
        upload(study, seed=2)  # another image, classified confidently and reviewed below
        classify(study.images.get(original_filename="scan-2.png"), needs_review=False)
        client.post(
            f"/api/v1/images/{study.images.get(original_filename='scan-2.png').id}/review/",
            {"label": "fetal_brain"},
            format="json",
        )

        def ids(query: str) -> list[int]:
            response = client.get(f"/{route}?{query}")
            assert response.status_code == 200, response.content
            return [row["id"] for row in response.json()["results"]]

        everything = ids("limit=200")
        flagged, confident = ids("needs_review=true"), ids("needs_review=false")
        reviewed, unreviewed = ids("reviewed=true"), ids("reviewed=false")
        assert len(everything) == 2
        assert len(flagged) == len(confident) == len(reviewed) == len(unreviewed) == 1
        assert sorted(flagged + confident) == sorted(reviewed + unreviewed) == sorted(everything)
        assert flagged == unreviewed and confident == reviewed


class TestPages:
    @pytest.mark.parametrize("route", [route for route, _ in _list_routes()])
    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("limit", "abc"),
            ("limit", "0"),
            ("limit", "201"),
            ("limit", "-1"),
            ("limit", "1.5"),
            ("limit", "+5"),
            ("limit", " 5"),
            ("limit", "1e2"),
            ("offset", "-5"),
            ("offset", "abc"),
            ("offset", "1.0"),
            ("offset", str(2**63)),
        ],
    )
    def test_a_bad_page_is_a_400_naming_it(self, client, records, route, name, value):
        response = client.get(f"/{route}", {name: value})

        _assert_refused(response, name)

    def test_good_pages_are_served(self, client, records, study):
        upload(study, seed=2)

        first = client.get("/api/v1/images/?limit=1&offset=0&ordering=uploaded_at").json()
        second = client.get("/api/v1/images/?limit=1&offset=1&ordering=uploaded_at").json()
        widest = client.get("/api/v1/images/?limit=200&offset=007").json()

        assert first["count"] == 2 and len(first["results"]) == 1
        assert first["results"][0]["id"] != second["results"][0]["id"]
        assert widest["results"] == []  # offset 7 of 2

    def test_the_schema_states_the_bounds(self):
        schema = SchemaGenerator().get_schema(request=None, public=True)
        parameters = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/images/"]["get"]["parameters"]}

        assert (parameters["limit"]["minimum"], parameters["limit"]["maximum"]) == (1, 200)
        assert parameters["offset"]["minimum"] == 0


class TestTypedValues:
    @pytest.mark.parametrize(
        ("path", "name", "value"),
        [
            ("/api/v1/studies/", "status", "DONE"),
            ("/api/v1/studies/", "status", "open"),
            ("/api/v1/studies/", "exam_date_after", "2026-13-01"),
            ("/api/v1/studies/", "exam_date_before", "yesterday"),
            ("/api/v1/studies/", "patient", "1.5"),
            ("/api/v1/studies/", "ordering", "nonsense"),
            ("/api/v1/studies/", "ordering", "exam_date,"),
            ("/api/v1/images/", "study", "1.5"),
            ("/api/v1/images/", "study", "1.0"),
            ("/api/v1/images/", "study", "٣"),  # an Arabic-Indic three: int() takes it, the API does not
            ("/api/v1/images/", "label", "brain"),
            ("/api/v1/images/", "uploaded_after", "2026-02-30T00:00:00Z"),
            ("/api/v1/jobs/", "status", "DONE"),
            ("/api/v1/jobs/", "image", "abc"),
            ("/api/v1/predictions/", "label", "FETAL_BRAIN"),
            ("/api/v1/patients/", "ordering", "-given_name"),
        ],
    )
    def test_a_malformed_value_is_a_400_naming_it(self, client, records, path, name, value):
        response = client.get(path, {name: value})

        _assert_refused(response, name)

    def test_well_formed_values_filter(self, client, records, study):
        by_study = client.get(f"/api/v1/images/?study={records['study_id']}").json()
        other_study = client.get(f"/api/v1/images/?study={records['study_id'] + 1000}").json()
        open_studies = client.get("/api/v1/studies/?status=OPEN&ordering=-exam_date").json()

        assert by_study["count"] == 1 and other_study["count"] == 0
        assert [row["id"] for row in open_studies["results"]] == [study.id]
