"""fetalsite.core.ranges: one byte range of a file (206), the whole file (200), or a range it cannot give (416)."""

from __future__ import annotations

import io

import pytest
from django.test import RequestFactory

from fetalsite.core.ranges import RangeNotSatisfiable, ranged_file_response, requested_range

DATA = bytes(range(256)) * 4  # 1024 bytes, each position recognisable


class _Handle(io.BytesIO):
    closed_by_response = False

    def close(self):
        self.closed_by_response = True
        super().close()


def _get(range_header: str | None = None, *, method: str = "get"):
    headers = {"Range": range_header} if range_header is not None else {}
    request = getattr(RequestFactory(), method)("/clip", headers=headers)
    handle = _Handle(DATA)
    response = ranged_file_response(request, handle, size=len(DATA), content_type="video/mp4")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    response.close()
    return response, body, handle


class TestRequestedRange:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("bytes=0-99", (0, 99)),
            ("bytes=100-", (100, 1023)),
            ("bytes=-24", (1000, 1023)),
            ("bytes=-5000", (0, 1023)),  # a suffix longer than the file is the whole file
            ("bytes=1000-9999", (1000, 1023)),  # a last byte past the end is the end
            ("BYTES = 5-6", (5, 6)),
            (None, None),
            ("items=0-5", None),  # another unit is ignored
            ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ],
    )
    def test_reads_one_range(self, header, expected):
        assert requested_range(header, 1024) == expected

    @pytest.mark.parametrize(
        "header", ["bytes=1024-", "bytes=2000-3000", "bytes=9-3", "bytes=-0", "bytes=-", "bytes=a-b"]
    )
    def test_refuses_a_range_it_cannot_give(self, header):
        with pytest.raises(RangeNotSatisfiable):
            requested_range(header, 1024)


# Closing a response sends request_finished, whose handler looks at the database connection that earlier tests
# left open: allowed here, as for any request.
@pytest.mark.django_db
class TestRangedFileResponse:
    def test_without_range_sends_the_whole_file_and_says_ranges_are_accepted(self):
        response, body, handle = _get()

        assert response.status_code == 200
        assert body == DATA
        assert response["Content-Length"] == "1024"
        assert response["Accept-Ranges"] == "bytes"
        assert response["Content-Type"] == "video/mp4"
        assert "Content-Range" not in response
        assert handle.closed_by_response

    def test_a_range_is_a_206_with_just_those_bytes(self):
        response, body, handle = _get("bytes=300-309")

        assert response.status_code == 206
        assert body == DATA[300:310]
        assert response["Content-Length"] == "10"
        assert response["Content-Range"] == "bytes 300-309/1024"
        assert handle.closed_by_response

    def test_an_open_range_runs_to_the_end(self):
        response, body, _ = _get("bytes=1000-")

        assert response.status_code == 206
        assert body == DATA[1000:]
        assert response["Content-Range"] == "bytes 1000-1023/1024"

    def test_a_range_past_the_end_is_a_416_naming_the_size(self):
        response, body, handle = _get("bytes=5000-")

        assert response.status_code == 416
        assert response["Content-Range"] == "bytes */1024"
        assert body == b""
        assert handle.closed_by_response

    def test_the_file_is_closed_when_the_body_is_never_read(self):
        request = RequestFactory().head("/clip", headers={"Range": "bytes=0-9"})
        handle = _Handle(DATA)

        ranged_file_response(request, handle, size=len(DATA), content_type="video/mp4").close()

        assert handle.closed_by_response
