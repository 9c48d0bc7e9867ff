"""DICOMweb's wire formats (PS3.18), kept apart from the views: the multipart/related body of STOW-RS and
WADO-RS, and the DICOM JSON model (Annex F) of store responses and QIDO-RS results.

The multipart parser is small and strict on purpose: a body is read whole (bounded by the caller), split on its
boundary, and anything that is not a well-formed sequence of parts is refused rather than guessed at."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from email.message import Message
from typing import BinaryIO

import pydicom
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from fetalsite.core.api_utils import RequestTooLarge
from fetalsite.core.errors import ApplicationError

DICOM_MEDIA_TYPE = "application/dicom"
DICOM_JSON_MEDIA_TYPE = "application/dicom+json"
OCTET_STREAM = "application/octet-stream"
NATIVE_SYNTAXES = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian})
# A compressed frame's own media type (PS3.18 8.7.3.3.2); anything else compressed goes as application/octet-stream.
FRAME_MEDIA_TYPES = {JPEGBaseline8Bit: "image/jpeg", RLELossless: "image/dicom-rle"}
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


class NotAcceptable(ApplicationError):
    http_status = 406
    code = "not_acceptable"


class FrameListInvalid(ApplicationError):
    http_status = 400
    code = "invalid_frame_list"


class FrameNotFound(ApplicationError):
    http_status = 404
    code = "frame_not_found"


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


def multipart_stream(
    parts: Iterable[Iterable[bytes]], *, boundary: str, part_type: str = DICOM_MEDIA_TYPE
) -> Iterator[bytes]:
    """A multipart/related body (WADO-RS) whose parts are all ``part_type``, chunk by chunk: each part is an iterable
    of byte chunks, so a study goes out one file (and one chunk of it) at a time, never whole in memory."""
    delimiter = b"--" + boundary.encode("ascii")
    for part in parts:
        yield delimiter + CRLF + b"Content-Type: " + part_type.encode("ascii") + CRLF + CRLF
        yield from part
        yield CRLF
    yield delimiter + b"--" + CRLF


def multipart_body(parts: list[bytes], *, boundary: str) -> bytes:
    """A multipart/related body of DICOM parts, whole (small answers and tests)."""
    return b"".join(multipart_stream(([part] for part in parts), boundary=boundary))


def image_bytes(image: Image.Image, *, media_type: str) -> bytes:
    """A rendered frame encoded as ``media_type`` (image/png or image/jpeg)."""
    out = io.BytesIO()
    if media_type == "image/jpeg":
        image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode).save(out, format="JPEG", quality=90)
    else:
        image.save(out, format="PNG")
    return out.getvalue()


def png_as_jpeg(png: bytes) -> bytes:
    """A rendered frame as JPEG (WADO-RS rendered, for a client that prefers it to PNG)."""
    with Image.open(io.BytesIO(png)) as image:
        return image_bytes(image, media_type="image/jpeg")


def instance_uids(data: bytes) -> tuple[str, str, str]:
    """(SOP Class, SOP Instance, Study Instance UID) as far as the bytes say them ("" for what they do not)."""
    try:
        header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        return tuple(
            str(header.get(keyword, "") or "") for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID")
        )
    except (InvalidDicomError, ValueError, TypeError, AttributeError, OSError, EOFError, KeyError):
        return "", "", ""


# ---- Content negotiation (PS3.18 8.7) ----------------------------------------------------------------


def accepted_media_types(accept: str) -> list[tuple[str, dict[str, str]]]:
    """The Accept header's media ranges with their parameters, most preferred first (by q, then order); those
    with q=0 are refused ranges and left out. No header (or an empty one) accepts anything."""
    ranked = []
    for position, item in enumerate(value for value in (accept or "*/*").split(",") if value.strip()):
        header = _content_type(item.strip())
        params = {name.lower(): value for name, value in header.get_params()[1:]}
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        if quality > 0:
            ranked.append((-quality, position, header.get_content_type(), params))
    return [(media_type, params) for _, _, media_type, params in sorted(ranked)]


def _dicom_part_range(media_type: str, params: dict[str, str]) -> bool:
    """Whether a media range takes a multipart/related body of application/dicom parts."""
    if media_type in ("*/*", "multipart/*"):
        return True
    return media_type == "multipart/related" and params.get("type", DICOM_MEDIA_TYPE).lower() in (
        DICOM_MEDIA_TYPE,
        "application/*",
        "*/*",
    )


def dicom_parts_negotiate(accept: str, *, transfer_syntaxes: set[str]) -> None:
    """406 unless the Accept header takes multipart/related application/dicom parts in the stored transfer
    syntaxes: instances go out exactly as stored, never transcoded. A range without a transfer-syntax parameter
    (dicomweb-client's default) or with ``*`` takes them as stored."""
    wanted: set[str] = set()
    for media_type, params in accepted_media_types(accept):
        if not _dicom_part_range(media_type, params):
            continue
        syntax = params.get("transfer-syntax", "*").strip()
        if syntax == "*":
            return
        wanted.add(syntax)
    if wanted and transfer_syntaxes <= wanted:
        return
    stored = ", ".join(sorted(transfer_syntaxes)) or "none"
    raise NotAcceptable(
        f'Instances are sent as multipart/related; type="{DICOM_MEDIA_TYPE}" in the transfer syntax they were '
        f"stored in ({stored}), never transcoded: accept that, with transfer-syntax=* or one of those."
    )


def rendered_media_type(accept: str, *, video: bool = False) -> str:
    """image/png or image/jpeg, as the Accept header prefers (PNG for image/* and */*), or video/mp4 where ``video``
    (a whole cine loop) and the header names it; 406 for none of these."""
    for media_type, _ in accepted_media_types(accept):
        if media_type in ("image/png", "image/*", "*/*"):
            return "image/png"
        if media_type == "image/jpeg":
            return "image/jpeg"
        if video and media_type in ("video/mp4", "video/*"):
            return "video/mp4"
    raise NotAcceptable(
        f"Rendered frames are sent as image/png or image/jpeg{' (a cine loop: or video/mp4)' if video else ''}."
    )


def metadata_negotiate(accept: str) -> None:
    """406 unless the Accept header takes application/dicom+json (XML metadata is not offered)."""
    for media_type, _ in accepted_media_types(accept):
        if media_type in (DICOM_JSON_MEDIA_TYPE, "application/json", "application/*", "*/*"):
            return
    raise NotAcceptable(f"Metadata is sent as {DICOM_JSON_MEDIA_TYPE} only.")


def frames_negotiate(accept: str, *, transfer_syntax: str) -> str:
    """The Content-Type of each frame of an instance stored in ``transfer_syntax`` (406 when the Accept header takes
    none). Frames go out as stored, never transcoded: native pixel data as application/octet-stream in Explicit VR
    Little Endian (a range without transfer-syntax means that), a compressed frame as its own type (image/jpeg,
    image/dicom-rle) or as application/octet-stream where the range says transfer-syntax=* (OHIF's request)."""
    native = transfer_syntax in NATIVE_SYNTAXES
    wire_syntax = ExplicitVRLittleEndian if native else transfer_syntax
    own = OCTET_STREAM if native else FRAME_MEDIA_TYPES.get(transfer_syntax, OCTET_STREAM)
    for media_type, params in accepted_media_types(accept):
        if media_type in ("*/*", "multipart/*"):
            part, syntax = "*/*", "*"
        elif media_type == "multipart/related":
            part, syntax = params.get("type", OCTET_STREAM).lower(), params.get("transfer-syntax")
        else:
            continue
        if part == "*/*" or (part == own and syntax in (None, "*", wire_syntax)):
            return f"{own}; transfer-syntax={wire_syntax}"
        if part == OCTET_STREAM and syntax in ("*", wire_syntax):  # a compressed frame, labelled with its syntax
            return f"{OCTET_STREAM}; transfer-syntax={wire_syntax}"
    raise NotAcceptable(
        f"This instance's frames are stored as {wire_syntax} and sent as stored, never transcoded: accept "
        f'multipart/related; type="{own}" (or type="{OCTET_STREAM}"; transfer-syntax=*).'
    )


def frame_bytes(data: bytes, numbers: list[int]) -> list[bytes]:
    """Frames ``numbers`` (from 1) of a Part 10 file's Pixel Data, as stored: a slice of native pixel data, or a
    compressed frame's bytes from its encapsulated fragments. Frames past the data's end come back empty."""
    dataset = pydicom.dcmread(io.BytesIO(data))
    count = int(dataset.get("NumberOfFrames") or 1)
    if dataset.file_meta.TransferSyntaxUID.is_encapsulated:
        wanted, found = set(numbers), {}
        for index, frame in enumerate(generate_frames(dataset.PixelData, number_of_frames=count), start=1):
            if index in wanted:
                found[index] = frame
        return [found.get(number, b"") for number in numbers]
    size = dataset.Rows * dataset.Columns * dataset.SamplesPerPixel * (dataset.BitsAllocated // 8)
    pixels = dataset.PixelData
    return [pixels[(number - 1) * size : number * size] for number in numbers]


# ---- Metadata (PS3.18 F.2) ----------------------------------------------------------------------------


def instance_metadata(file: BinaryIO) -> dict:
    """An instance's attributes in the DICOM JSON model, read from its header only. Pixel Data (and what follows
    it, such as trailing padding) is left out rather than given a BulkDataURI: the pixels are retrieved as the
    instance itself or as rendered frames. The file meta group is not part of the data set and is left out too;
    other binary values (palettes, small LUTs) come inline as InlineBinary."""
    header = pydicom.dcmread(file, stop_before_pixels=True)
    return header.to_json_dict(bulk_data_threshold=2**31, suppress_invalid_tags=True)


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
