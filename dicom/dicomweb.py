"""DICOMweb's wire formats (PS3.18), kept apart from the views: the multipart/related body of STOW-RS and
WADO-RS, and the DICOM JSON model (Annex F) of store responses and QIDO-RS results.

The multipart parser is small and strict on purpose: a body is read whole (bounded by the caller), split on its
boundary, and anything that is not a well-formed sequence of parts is refused rather than guessed at."""

from __future__ import annotations

import io
from email.message import Message

import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError
from pydicom.uid import UltrasoundImageStorage, UltrasoundMultiFrameImageStorage

from fetalsite.core.api_utils import RequestTooLarge
from fetalsite.core.errors import ApplicationError

DICOM_MEDIA_TYPE = "application/dicom"
DICOM_JSON_MEDIA_TYPE = "application/dicom+json"
CRLF = b"\r\n"
MAX_BOUNDARY_LENGTH = 200

# Modality (0008,0060) is not stored per instance; the ultrasound SOP classes say it, Secondary Capture does not.
MODALITY_BY_SOP_CLASS = {UltrasoundImageStorage: "US", UltrasoundMultiFrameImageStorage: "US"}


class MultipartMalformed(ApplicationError):
    http_status = 400
    code = "multipart_malformed"


class MediaTypeUnsupported(ApplicationError):
    http_status = 415
    code = "unsupported_media_type"


def _content_type(value: str) -> Message:
    message = Message()
    message["Content-Type"] = value
    return message


def multipart_boundary(content_type: str) -> str:
    """The boundary of a ``multipart/related; type="application/dicom"`` request (415 for any other media type)."""
    header = _content_type(content_type)
    if header.get_content_type() != "multipart/related":
        raise MediaTypeUnsupported(f'Send multipart/related; type="{DICOM_MEDIA_TYPE}" (got {content_type or "none"}).')
    part_type = (header.get_param("type") or DICOM_MEDIA_TYPE).strip().lower()
    if part_type != DICOM_MEDIA_TYPE:
        raise MediaTypeUnsupported(f'Only type="{DICOM_MEDIA_TYPE}" parts are stored (got {part_type}).')
    boundary = header.get_param("boundary")
    # RFC 2046 caps a boundary at 70 characters, but Orthanc's DICOMweb plugin sends 73 (two UUIDs joined):
    # taken up to a bound that still keeps the delimiter search cheap.
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= MAX_BOUNDARY_LENGTH:
        raise MultipartMalformed("The Content-Type has no usable boundary parameter.")
    return boundary


def _part_headers(block: bytes) -> str:
    """The part's Content-Type (DICOM when it names none); other headers are allowed and ignored."""
    part_type = DICOM_MEDIA_TYPE
    for line in block.split(CRLF) if block else []:
        name, colon, value = line.partition(b":")
        if not colon:
            raise MultipartMalformed("A part header line has no colon.")
        if name.strip().lower() == b"content-type":
            part_type = _content_type(value.decode("latin-1").strip()).get_content_type()
    return part_type


def multipart_parts(body: bytes, *, boundary: str, max_parts: int) -> list[bytes]:
    """The bodies of the parts, in order; 400 when the body is not a closed multipart, 413 past ``max_parts``."""
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0 or (start > 0 and body[start - 2 : start] != CRLF):
        raise MultipartMalformed("The body does not start with the boundary of its Content-Type.")
    parts: list[bytes] = []
    position = start + len(delimiter)
    while not body.startswith(b"--", position):  # "--" after a delimiter closes the body
        line_end = body.find(CRLF, position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise MultipartMalformed("A boundary line is not followed by a line break.")
        if body.startswith(CRLF, line_end + 2):
            headers, content_start = b"", line_end + 4
        else:
            headers_end = body.find(CRLF + CRLF, line_end + 2)
            if headers_end < 0:
                raise MultipartMalformed("A part's headers never end.")
            headers, content_start = body[line_end + 2 : headers_end], headers_end + 4
        if _part_headers(headers) != DICOM_MEDIA_TYPE:
            raise MediaTypeUnsupported(f"Every part must be {DICOM_MEDIA_TYPE}.")
        next_delimiter = body.find(CRLF + delimiter, content_start)
        if next_delimiter < 0:
            raise MultipartMalformed("The body ends before its closing boundary.")
        parts.append(body[content_start:next_delimiter])
        if len(parts) > max_parts:
            raise RequestTooLarge(f"A request may carry at most {max_parts} instances.")
        position = next_delimiter + len(CRLF + delimiter)
    if not parts:
        raise MultipartMalformed("The body has no parts.")
    return parts


def multipart_body(parts: list[bytes], *, boundary: str) -> bytes:
    """A multipart/related body of DICOM parts (WADO-RS)."""
    delimiter = b"--" + boundary.encode("ascii")
    chunks = []
    for part in parts:
        chunks += [delimiter, CRLF, b"Content-Type: ", DICOM_MEDIA_TYPE.encode(), CRLF, CRLF, part, CRLF]
    chunks += [delimiter, b"--", CRLF]
    return b"".join(chunks)


def png_as_jpeg(png: bytes) -> bytes:
    """A rendered frame as JPEG (WADO-RS rendered, for a client that accepts no PNG)."""
    with Image.open(io.BytesIO(png)) as image:
        out = io.BytesIO()
        image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode).save(out, format="JPEG", quality=90)
    return out.getvalue()


def instance_uids(data: bytes) -> tuple[str, str, str]:
    """(SOP Class, SOP Instance, Study Instance UID) as far as the bytes say them ("" for what they do not)."""
    try:
        header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        return tuple(
            str(header.get(keyword, "") or "") for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID")
        )
    except (InvalidDicomError, ValueError, TypeError, AttributeError, OSError, EOFError, KeyError):
        return "", "", ""


# ---- The DICOM JSON model (PS3.18 Annex F) -------------------------------------------------------------


def element(vr: str, *values) -> dict:
    """One attribute; empty values (None, "") leave the attribute present but empty, as Annex F writes it."""
    present = [value for value in values if value not in (None, "")]
    return {"vr": vr, "Value": present} if present else {"vr": vr}


def person_name(family: str, given: str) -> dict:
    return element("PN", {"Alphabetic": f"{family}^{given}"})


def da(value) -> dict:
    return element("DA", value.strftime("%Y%m%d") if value else None)


def store_response(*, retrieve_url: str, referenced: list[dict], failed: list[dict]) -> dict:
    """The STOW-RS response (PS3.18 10.5.3): the stored (or already stored) and the refused instances."""
    response = {"00081190": element("UR", retrieve_url)}
    if referenced:
        response["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        response["00081198"] = {"vr": "SQ", "Value": failed}
    return response


def referenced_sop(*, sop_class_uid: str, sop_instance_uid: str, retrieve_url: str) -> dict:
    return {
        "00081150": element("UI", sop_class_uid),
        "00081155": element("UI", sop_instance_uid),
        "00081190": element("UR", retrieve_url),
    }


def failed_sop(*, sop_class_uid: str, sop_instance_uid: str, reason: int) -> dict:
    return {
        "00081150": element("UI", sop_class_uid),
        "00081155": element("UI", sop_instance_uid),
        "00081197": element("US", reason),
    }
