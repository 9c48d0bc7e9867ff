"""The one error vocabulary (fetalsite.core.api_errors.error_describe) that the API and the pages share."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, RequestDataTooBig, ValidationError
from django.http import Http404

from classifier.services import ImageNotClassified
from fetalsite.core.api_errors import error_describe


class TestErrorDescribe:
    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (ValidationError({"file": "The file is empty."}), (400, "invalid", "The file is empty.")),
            (ValidationError("Too big.", code="too_large"), (413, "too_large", "Too big.")),
            (ImageNotClassified("No prediction yet."), (409, "not_classified", "No prediction yet.")),
            (
                PermissionDenied("Only clinicians can review predictions."),
                (403, "permission_denied", "Only clinicians can review predictions."),
            ),
            (PermissionDenied(), (403, "permission_denied", "You do not have permission to perform this action.")),
            (RequestDataTooBig(), (413, "too_large", "The request body is larger than this server accepts.")),
        ],
    )
    def test_maps_each_error_to_status_code_and_message(self, error, expected):
        described = error_describe(error)

        assert (described.status, described.code, described.message) == expected

    def test_a_404_says_the_same_whatever_its_message(self):
        # Another clinic's record and a missing one must read alike: the message never names the record.
        assert error_describe(Http404("No Study matches the given query.")).message == "Not found."

    def test_a_validation_error_keeps_its_fields(self):
        described = error_describe(ValidationError({"label": ["Bad."], "__all__": ["Also bad."]}))

        assert described.fields == {"label": ["Bad."], "non_field_errors": ["Also bad."]}

    def test_other_errors_are_not_described(self):
        assert error_describe(RuntimeError("boom")) is None

    def test_a_too_large_file_is_a_413_without_fields(self):
        described = error_describe(
            ValidationError({"file[0]": ValidationError("Too big.", code="too_large"), "file[1]": "Broken."})
        )

        assert (described.status, described.code, described.message, described.fields) == (
            413,
            "too_large",
            "file[0]: Too big.",
            None,
        )
