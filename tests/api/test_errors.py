"""Every error is JSON in one shape, with the right status; never an HTML page."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from rest_framework.test import APIClient


class TestErrorShape:
    def test_unknown_api_path_is_a_json_404(self, api_client):
        response = api_client.get("/api/v1/nothing-here/")

        assert response.status_code == 404
        assert response.json() == {"detail": "There is no API endpoint at this path.", "code": "not_found"}

    def test_unknown_path_with_a_newline_is_a_json_404(self, api_client):
        response = api_client.get("/api/v1/images/1%0A2/")

        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"

    def test_missing_trailing_slash_says_so(self, api_client):
        response = api_client.get("/api/v1/patients")

        assert response.status_code == 404
        assert "/api/v1/patients/" in response.json()["detail"]

    def test_no_credentials_is_a_401(self, db):
        response = APIClient().get("/api/v1/images/")

        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"

    def test_malformed_json_is_a_400(self, api_client):
        response = api_client.post("/api/v1/patients/", data="{not json", content_type="application/json")

        assert response.status_code == 400
        assert response.json()["code"] == "parse_error"

    def test_a_huge_json_body_is_a_413(self, api_client, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
        body = json.dumps({"mrn": "x", "given_name": "y" * 5000, "family_name": "z"})

        response = api_client.post("/api/v1/patients/", data=body, content_type="application/json")

        assert response.status_code == 413
        assert response.json()["code"] == "too_large"

    def test_a_malformed_content_length_is_no_500(self, api_client, study):
        response = api_client.post(
            f"/api/v1/studies/{study.id}/images/", data=b"x", content_type="text/plain", CONTENT_LENGTH="abc"
        )

        assert response.status_code == 400
        assert set(response.json()) >= {"detail", "code"}

    def test_unsupported_content_type_is_a_415(self, api_client):
        response = api_client.post("/api/v1/patients/", data="mrn=1", content_type="text/plain")

        assert response.status_code == 415

    @pytest.mark.parametrize("body_format", ["form", "multipart"])
    def test_a_form_body_to_a_json_endpoint_is_a_415(self, api_client, body_format):
        # JSON bodies only (the schema offers a generated client nothing else); uploads alone are multipart.
        fields = {"mrn": "N-1", "given_name": "Ada", "family_name": "Byron"}
        if body_format == "form":
            response = api_client.post(
                "/api/v1/patients/", data=urlencode(fields), content_type="application/x-www-form-urlencoded"
            )
        else:
            response = api_client.post("/api/v1/patients/", fields, format="multipart")

        assert response.status_code == 415
        assert response["Content-Type"] == "application/json"
        assert response.json()["code"] == "unsupported_media_type"
        assert set(response.json()) == {"detail", "code"}

    def test_out_of_range_id_is_a_404_not_a_500(self, api_client):
        response = api_client.get("/api/v1/images/99999999999999999999999/")

        assert response.status_code == 404

    def test_options_is_a_json_405_the_schema_describes_the_api(self, api_client):
        response = api_client.options("/api/v1/images/")

        assert response.status_code == 405
        assert response.json()["code"] == "method_not_allowed"

    def test_a_post_to_an_unknown_path_is_json_not_a_csrf_page(self, db):
        from django.test import Client

        response = Client(enforce_csrf_checks=True).post("/api/v1/nothing/", {"a": 1})

        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
