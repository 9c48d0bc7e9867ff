"""Reading part of a stored file without fetching all of it.

On object storage (django-storages' S3 backend) a file downloads the whole object on its first read or seek.
Serving a byte range of a clip's video, or reading a DICOM header that sits before megabytes of pixel data,
needs only a part: ``partial_reader`` gives a seekable, buffered file that fetches what is read with HTTP range
requests, a block at a time. A file on local disk is already that, and comes back as it is.
"""

from __future__ import annotations

import io
from typing import BinaryIO

# One range request fetches at least this much: a DICOM header in one request, a video range in a few.
BLOCK_BYTES = 1024 * 1024


class _RangedObject(io.RawIOBase):
    """A remote object (a boto3 ``s3.Object``) read through range requests; seeking costs nothing."""

    def __init__(self, remote, *, size: int, source: BinaryIO):
        self._remote, self._size, self._source, self._position = remote, size, source, 0
        self.name = getattr(source, "name", "")  # the stored name, as a file object has (pydicom records it)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def readinto(self, buffer) -> int:
        if self._position >= self._size or len(buffer) == 0:
            return 0
        last = min(self._position + len(buffer), self._size) - 1
        body = self._remote.get(Range=f"bytes={self._position}-{last}")["Body"]
        try:
            data = body.read()
        finally:
            body.close()
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        self._source.close()
        super().close()


def _remote_object(handle):
    """The boto3 object behind an opened S3 file (or a FieldFile holding one), or None. Looks only at attributes
    that are already there: touching an S3 file's ``file`` would download it."""
    remote = getattr(handle, "obj", None)
    if remote is None and not hasattr(handle, "_storage"):  # a FieldFile or a File: its underlying file
        remote = getattr(getattr(handle, "file", None), "obj", None)
    return remote if hasattr(remote, "get") and hasattr(remote, "content_length") else None


def partial_reader(handle: BinaryIO, *, block_bytes: int = BLOCK_BYTES) -> BinaryIO:
    """``handle`` (an opened stored file) as a seekable file that fetches only what is read; closing it closes
    ``handle``. A local file, or any other file object, is returned unchanged."""
    remote = _remote_object(handle)
    if remote is None:
        return handle
    raw = _RangedObject(remote, size=remote.content_length, source=handle)
    return io.BufferedReader(raw, buffer_size=block_bytes)
