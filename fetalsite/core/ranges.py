"""Byte ranges (RFC 9110 §14) for the files a page plays: a browser seeks in a video by asking for parts of it.

Django's FileResponse always sends the whole file, and a browser given no ``Accept-Ranges`` cannot seek a
video it has not wholly downloaded (Chromium leaves ``currentTime`` at 0). ``ranged_file_response`` answers
one range ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` with 206 and ``Content-Range``, streaming only those
bytes; a range that starts past the end, or one that is malformed, with 416 and ``Content-Range: bytes */size``.
A header in another unit, or asking for several ranges, is ignored as the RFC allows: the whole file, 200.
On object storage only the bytes sent are fetched (``fetalsite.core.stored_files``), a block at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from fetalsite.core.stored_files import partial_reader

CHUNK_BYTES = 64 * 1024
_BYTES_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Exception):
    pass


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range asked for as (first, last) byte, inclusive, or None for the whole file.

    Raises RangeNotSatisfiable for a malformed bytes range or one that starts at or past ``size``."""
    spec = (header or "").lower().replace(" ", "").replace("\t", "")
    if not spec.startswith("bytes="):
        return None  # no Range, or a unit this server does not know: ignored (RFC 9110 §14.2)
    if "," in spec:
        return None  # several ranges: the whole file is an allowed answer, and simpler than multipart
    match = _BYTES_RANGE.match(spec)
    if match is None or match.group(1) == match.group(2) == "":
        raise RangeNotSatisfiable(header)
    first, last = match.group(1), match.group(2)
    if first == "":  # bytes=-n: the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        raise RangeNotSatisfiable(header)
    return start, end


class _ByteSpan:
    """``length`` bytes of the file from ``start``, in chunks; the response closes the file when it is done with
    it (also when the body is never read, as for HEAD)."""

    def __init__(self, handle: BinaryIO, start: int, length: int):
        self.handle, self.start, self.length = handle, start, length

    def __iter__(self) -> Iterator[bytes]:
        self.handle.seek(self.start)
        remaining = self.length
        while remaining > 0:
            chunk = self.handle.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.handle.close()


def ranged_file_response(
    request: HttpRequest, handle: BinaryIO, *, size: int, content_type: str
) -> StreamingHttpResponse | HttpResponse:
    """The file (open, positioned anywhere; closed here) whole or in the range the request asks for."""
    handle = partial_reader(handle)  # on object storage: fetch the range asked for, not the whole object
    try:
        byte_range = requested_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        handle.close()
        response = HttpResponse(status=416, content_type="text/plain")
        response["Content-Range"] = f"bytes */{size}"
        response["Accept-Ranges"] = "bytes"
        return response
    start, end = byte_range if byte_range is not None else (0, size - 1)
    length = max(end - start + 1, 0)
    response = StreamingHttpResponse(
        _ByteSpan(handle, start, length), status=206 if byte_range else 200, content_type=content_type
    )
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    if byte_range is not None:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    return response
