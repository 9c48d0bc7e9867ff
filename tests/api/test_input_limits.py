"""Hostile input is a 4xx with a clear message, never a 500: deeply nested or oversized JSON bodies,
and integers in list filters and pagination outside the database's range."""

from __future__ import annotations

import io
import json

import pytest

from fetalsite.core.api_utils import JSON_MAX_DEPTH, LimitedJSONParser, RequestTooLarge, json_nesting_depth
from patients.models import Patient

BIGINT_MAX = 2**63 - 1


def _post_json(client, body: str | bytes):
    return client.post("/api/v1/patients/", data=body, content_type="application/json")


class TestJsonNestingDepth:
    @pytest.mark.parametrize(
        ("text", "depth"),
        [
            ("{}", 1),
            ('{"a": [1, {"b": []}]}', 4),
            ("[[], [[]], []]", 3),
            ('"[[[[["', 0),
            ('{"a": "brackets [[[ {{{ and an escaped quote \\" [[["}', 1),
            ('["\\\\", [["\\\\\\""]]]', 3),
            ("12", 0),
        ],
    )
    def test_counts_brackets_outside_strings(self, text, depth):
        assert json_nesting_depth(text) == depth

    def test_a_deep_body_is_measured_without_recursion(self):
        assert json_nesting_depth("[" * 1_000_000 + "]" * 1_000_000) == 1_000_000


class TestDeepJson:
    def test_the_probe_50000_levels_deep_is_a_400(self, api_client):
        """The probe that found it: a RecursionError and a 500 before."""
        response = _post_json(api_client, "[" * 50_000 + "]" * 50_000)

        assert response.status_code == 400
        assert response.json() == {
            "detail": f"The JSON body nests arrays and objects more than {JSON_MAX_DEPTH} levels deep.",
            "code": "too_deep",
        }
        assert not Patient.objects.exists()

    def test_deep_objects_inside_a_valid_body_are_refused(self, api_client):
        nested = {"x": 1}
        for _ in range(JSON_MAX_DEPTH):
            nested = {"x": nested}
        body = json.dumps({"mrn": "M-1", "given_name": "A", "family_name": "B", "extra": nested})

        response = _post_json(api_client, body)

        assert response.status_code == 400 and response.json()["code"] == "too_deep"
        assert not Patient.objects.exists()

    def test_brackets_inside_strings_do_not_count(self, api_client):
        body = json.dumps({"mrn": "M-1", "given_name": "[" * 90, "family_name": "{" * 90})

        response = _post_json(api_client, body)

        assert response.status_code == 201
        assert Patient.objects.get().given_name == "[" * 90

    def test_nesting_at_the_limit_still_parses(self, api_client):
        body = "[" * JSON_MAX_DEPTH + "]" * JSON_MAX_DEPTH

        response = _post_json(api_client, body)

        # Parsed, then refused by the serializer for its shape, not for its depth.
        assert response.status_code == 400 and response.json()["code"] == "invalid"

    def test_a_stream_without_a_declared_length_is_cut_off_at_the_limit(self, settings):
        """A body whose size is not declared (no Content-Length) is read only up to the limit."""
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
        body = json.dumps({"given_name": "y" * 5000}).encode()

        with pytest.raises(RequestTooLarge):
            LimitedJSONParser().parse(io.BytesIO(body), "application/json", {})


# Every integer query parameter of every list, with a filter row to hit where it matters.
INTEGER_PARAMETERS = [
    ("/api/v1/studies/", "patient"),
    ("/api/v1/images/", "study"),
    ("/api/v1/jobs/", "image"),
    ("/api/v1/jobs/", "study"),
    ("/api/v1/predictions/", "image"),
    ("/api/v1/predictions/", "study"),
    ("/api/v1/patients/", "limit"),
    ("/api/v1/patients/", "offset"),
    ("/api/v1/model-versions/", "offset"),
]


class TestIntegerParametersInRange:
    def test_the_probe_patient_99999999999999999999_is_a_400(self, api_client):
        response = api_client.get("/api/v1/studies/?patient=99999999999999999999")

        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "invalid" and list(body["fields"]) == ["patient"]

    @pytest.mark.parametrize(("path", "parameter"), INTEGER_PARAMETERS)
    @pytest.mark.parametrize("value", [str(BIGINT_MAX + 1), str(-(2**63) - 1), "9" * 5000])
    def test_out_of_range_integers_are_a_400_naming_the_parameter(self, api_client, study, path, parameter, value):
        response = api_client.get(path, {parameter: value})

        assert response.status_code == 400, response.content
        body = response.json()
        assert body["code"] == "invalid"
        assert list(body["fields"]) == [parameter]

    @pytest.mark.parametrize(("path", "parameter"), INTEGER_PARAMETERS)
    def test_the_largest_id_is_accepted(self, api_client, study, path, parameter):
        largest = 200 if parameter == "limit" else BIGINT_MAX  # a page holds at most 200 (tests/api/test_query_params)
        response = api_client.get(path, {parameter: str(largest)})

        assert response.status_code == 200
