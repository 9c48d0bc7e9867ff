"""DICOMweb (PS3.18) under /dicomweb/: STOW-RS stores, QIDO-RS searches, WADO-RS retrieves, for the caller's clinic.

Thin views over the same service as an upload and the C-STORE receiver (patients.services.dicom_instance_receive:
permissions, clinic, history, classification) and over dicom.dicomweb_selectors, which scope every read to the
caller's clinic. Token or session authentication and throttling are the API's; the answers are DICOM's media types.
Not in the OpenAPI schema: DICOMweb is its own standard, documented in docs/dicom.md."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import date

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import reverse
from PIL import Image
from pydicom.datadict import tag_for_keyword
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer

from classifier.ml.frames import iter_frames
from dicom import dicomweb
from dicom.dicomweb_selectors import (
    QidoMatch,
    qido_instance_list,
    qido_series_list,
    qido_study_list,
    qido_study_sop_classes,
    wado_instance_get,
    wado_instance_list,
)
from dicom.receiver import OTHER_REFUSAL, OUT_OF_RESOURCES, STATUS_BY_CODE, refusal_code
from fetalsite.accounts.roles import require_permission
from fetalsite.core.api_utils import RequestTooLarge, content_length, parse_whole_number
from fetalsite.core.api_views import REPEATED_QUERY_PARAMETER, check_query_parameters
from fetalsite.core.api_views import ApiView as _ApiView
from fetalsite.core.errors import ApplicationError
from fetalsite.core.shown import note_listed
from fetalsite.core.stored_files import partial_reader
from patients.services import dicom_instance_receive

logger = logging.getLogger(__name__)

QIDO_MAX_LIMIT = 200
QIDO_DEFAULT_LIMIT = 100
HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")
# Matching keys by keyword or tag (PS3.18 8.3.4.1), and the standard parameters accepted but not acted on.
MATCH_KEYS = {
    "PatientID": "patient_id", "00100020": "patient_id",
    "PatientName": "patient_name", "00100010": "patient_name",
    "AccessionNumber": "accession_number", "00080050": "accession_number",
    "StudyDate": "study_date", "00080020": "study_date",
    "StudyInstanceUID": "study_uids", "0020000D": "study_uids",
    "SeriesInstanceUID": "series_uids", "0020000E": "series_uids",
    "SOPInstanceUID": "sop_instance_uids", "00080018": "sop_instance_uids",
}  # fmt: skip
QIDO_PARAMETERS = (*MATCH_KEYS, "limit", "offset", "includefield", "fuzzymatching")


class LengthRequired(ApplicationError):
    http_status = 411
    code = "length_required"


class DicomJsonRenderer(JSONRenderer):
    media_type = dicomweb.DICOM_JSON_MEDIA_TYPE


class DicomwebView(_ApiView):
    """A DICOMweb endpoint: the API's authentication, throttles and error bodies; DICOM media types."""

    schema = None  # not part of the REST API's OpenAPI document
    renderer_classes = [DicomJsonRenderer, JSONRenderer]

    def perform_content_negotiation(self, request, force=False):
        # DICOMweb clients ask for multipart/related or application/dicom+json; errors still answer JSON.
        return super().perform_content_negotiation(request, force=True)

    def accepted_query_parameters(self, method: str) -> tuple[str, ...]:
        return QIDO_PARAMETERS if method == "GET" else ()

    def initial(self, request, *args, **kwargs):
        # QIDO-RS allows includefield more than once; any other repeated or unknown parameter is a 400.
        query = request.query_params.copy()
        if "includefield" in query:
            query.setlist("includefield", query.getlist("includefield")[:1])
        super(_ApiView, self).initial(request, *args, **kwargs)
        check_query_parameters(query, self.accepted_query_parameters(request.method))


def _retrieve_url(request, instance) -> str:
    return request.build_absolute_uri(
        reverse(
            "dicomweb:instance",
            kwargs={
                "study_uid": instance.study_instance_uid,
                "series_uid": instance.series_instance_uid,
                "instance_uid": instance.sop_instance_uid,
            },
        )
    )


# ---- STOW-RS -----------------------------------------------------------------------------------------


class StowView(DicomwebView):
    """POST /dicomweb/studies[/{study}]: store the instances of a multipart/related request."""

    def post(self, request, study_uid: str | None = None):
        user = request.user
        if user.clinic_id is None:
            raise PermissionDenied("DICOMweb stores into your clinic; this account belongs to none.")
        require_permission(user, "patients.add_ultrasoundimage", clinic_id=user.clinic_id, action="store instances")
        parts = _request_parts(request)
        referenced, failed = [], []
        for data in parts:
            outcome = _store_one(request, data, study_uid=study_uid)
            (referenced if "00081190" in outcome else failed).append(outcome)
        if study_uid is None:
            study_url = request.build_absolute_uri(reverse("dicomweb:studies"))
        else:
            study_url = request.build_absolute_uri(reverse("dicomweb:study", kwargs={"study_uid": study_uid}))
        body = dicomweb.store_response(retrieve_url=study_url, referenced=referenced, failed=failed)
        status = 200 if not failed else 202 if referenced else 409
        return HttpResponse(
            DicomJsonRenderer().render(body), status=status, content_type=dicomweb.DICOM_JSON_MEDIA_TYPE
        )


def _request_parts(request) -> list[bytes]:
    """The request's DICOM parts, read from the raw stream (past Django's form limits), bounded in size and count."""
    boundary = dicomweb.multipart_boundary(request.content_type or request.META.get("CONTENT_TYPE", ""))
    body = _request_body(request._request, limit=settings.UPLOAD_MAX_BYTES)
    return dicomweb.multipart_parts(body, boundary=boundary, max_parts=settings.UPLOAD_MAX_FILES_PER_REQUEST)


def _request_body(http_request, *, limit: int) -> bytes:
    """The body, at most ``limit`` bytes (413 past it). Sent chunked (Transfer-Encoding: chunked, no Content-Length;
    Orthanc's default), it is read to its end from the WSGI input where the server has decoded the chunks and says
    so (``wsgi.input_terminated``: gunicorn does); Django reads no body without a Content-Length, and a server that
    passes the chunks on undecoded (Django's runserver) would hand over nothing, so that gets a 411 naming the fix."""
    meta = http_request.META
    too_large = RequestTooLarge(f"A STOW-RS request may carry at most {limit} bytes.")
    if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower() and not meta.get("CONTENT_LENGTH"):
        if not meta.get("wsgi.input_terminated"):
            raise LengthRequired(
                "This server cannot read a chunked body: send a Content-Length (for Orthanc, "
                '"ChunkedTransfers": false in its DicomWeb server entry), or run the app under gunicorn.'
            )
        stream = meta["wsgi.input"]
    elif content_length(meta) > limit:
        raise too_large
    else:
        stream = http_request
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise too_large
    return body


def _store_one(request, data: bytes, *, study_uid: str | None) -> dict:
    """One part through the upload's service: a ReferencedSOPSequence item, or a FailedSOPSequence item."""
    sop_class, sop_instance, part_study = dicomweb.instance_uids(data)
    user = request.user
    if study_uid is not None and part_study != study_uid:
        # PS3.18 10.5.1: an instance of another study than the URL names is not stored.
        return dicomweb.failed_sop(sop_class_uid=sop_class, sop_instance_uid=sop_instance, reason=0xA900)
    try:
        result = dicom_instance_receive(
            clinic=user.clinic, data=data, received_by=user, source=f"dicomweb:{user.get_username()}"
        )
    except (ApplicationError, PermissionDenied, ValidationError) as error:
        code = refusal_code(error)
        logger.warning("STOW-RS from %s: instance %s refused (%s): %s", user, sop_instance or "?", code, error)
        reason = STATUS_BY_CODE.get(code, OTHER_REFUSAL)
        return dicomweb.failed_sop(sop_class_uid=sop_class, sop_instance_uid=sop_instance, reason=reason)
    except Exception:
        logger.exception("STOW-RS from %s: instance %s failed unexpectedly", user, sop_instance or "?")
        return dicomweb.failed_sop(sop_class_uid=sop_class, sop_instance_uid=sop_instance, reason=OUT_OF_RESOURCES)
    instance = result.image.dicom
    return dicomweb.referenced_sop(
        sop_class_uid=instance.sop_class_uid,
        sop_instance_uid=instance.sop_instance_uid,
        retrieve_url=_retrieve_url(request, instance),
    )


# ---- QIDO-RS -----------------------------------------------------------------------------------------


def _invalid(name: str, message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({name: [message]})


def _dicom_date(raw: str) -> date | None:
    if not raw:
        return None
    try:
        return date(int(raw[0:4]), int(raw[4:6]), int(raw[6:8])) if len(raw) == 8 and raw.isdigit() else None
    except ValueError:
        return None


def _date_range(name: str, raw: str) -> tuple[date | None, date | None]:
    """A DA matching value: one date, or a range "from-to" with either end open (PS3.4 C.2.2.2.5)."""
    low, dash, high = raw.partition("-")
    first, last = _dicom_date(low), _dicom_date(high if dash else low)
    if (low and first is None) or (dash and high and last is None) or (first is None and last is None):
        raise _invalid(name, "Give a date as YYYYMMDD or a range YYYYMMDD-YYYYMMDD (either end may be left out).")
    return first, last


def _page_number(query, name: str, default: int, maximum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    number = parse_whole_number(raw)
    if number is None or not 0 <= number <= maximum:
        raise _invalid(name, f"Give a whole number from 0 to {maximum}.")
    return number


def qido_match(query) -> QidoMatch:
    """The search's matching keys, limit and offset from the query string (400 for a value that cannot match).
    A limit above QIDO_MAX_LIMIT, or none, is the server's (PS3.18 8.3.4.4): see _qido_page."""
    values: dict = {}
    for name, key in MATCH_KEYS.items():
        raw = query.get(name)
        if raw is None:
            continue
        if key in values:
            raise _invalid(name, REPEATED_QUERY_PARAMETER)
        if key == "study_date":
            values["study_date_from"], values["study_date_to"] = _date_range(name, raw)
            values[key] = True
        elif key.endswith("_uids"):
            values[key] = tuple(uid.strip() for uid in raw.replace("\\", ",").split(",") if uid.strip())
        else:
            values[key] = raw
    values.pop("study_date", None)
    limit = _page_number(query, "limit", QIDO_DEFAULT_LIMIT, 10**9)
    offset = _page_number(query, "offset", 0, 10**9)
    return QidoMatch(**values, limit=min(limit or QIDO_MAX_LIMIT, QIDO_MAX_LIMIT), offset=offset)


def include_fields(query) -> frozenset[str] | None:
    """The attributes ``includefield`` asks for, as tags ("00200013"), each given by keyword or tag, repeated or
    comma-separated; None for ``all``. 400 naming a value that is no attribute."""
    tags: set[str] = set()
    for raw in query.getlist("includefield"):
        for value in (item.strip() for item in raw.split(",")):
            if value == "all":
                return None
            tag = tag_for_keyword(value)
            if tag is None and HEX_TAG.fullmatch(value):
                tag = int(value, 16)
            if tag is None:
                raise _invalid("includefield", f"{value!r} is no DICOM attribute keyword or tag (or all).")
            tags.add(f"{tag:08X}")
    return frozenset(tags)


def _one_more(match: QidoMatch) -> QidoMatch:
    """The same search with one row past the page, which says whether the page is all there is."""
    return replace(match, limit=match.limit + 1)


def _qido_page(request, found: list, match: QidoMatch) -> tuple[list, str | None]:
    """The page of ``found`` (searched with _one_more) and the Warning PS3.18 8.3.4.4 asks for when the server's
    limit, not the caller's, cut it short."""
    page = found[: match.limit]
    requested = parse_whole_number(request.query_params.get("limit", "")) or None
    if len(found) <= match.limit or (requested is not None and requested <= QIDO_MAX_LIMIT):
        return page, None
    service = request.build_absolute_uri(reverse("dicomweb:studies")).removesuffix("/studies")
    return page, (
        f'299 {service}: "The number of results exceeded the maximum supported by the server. '
        f'Additional results can be requested."'
    )


def _dicom_json(body: dict | list, *, status: int = 200, warning: str | None = None) -> HttpResponse:
    response = HttpResponse(
        DicomJsonRenderer().render(body), status=status, content_type=dicomweb.DICOM_JSON_MEDIA_TYPE
    )
    if warning:
        response["Warning"] = warning
    return response


def _modality(sop_classes) -> list[str]:
    return sorted({dicomweb.MODALITY_BY_SOP_CLASS[c] for c in sop_classes if c in dicomweb.MODALITY_BY_SOP_CLASS})


class StudiesView(StowView):
    """GET /dicomweb/studies: QIDO-RS search for studies; POST: STOW-RS."""

    def get(self, request):
        match = qido_match(request.query_params)
        include_fields(request.query_params)  # validated; a study's attributes are the fixed set below
        found = list(qido_study_list(user=request.user, match=_one_more(match)))
        studies, warning = _qido_page(request, found, match)
        note_listed(request, studies)
        sop_classes = qido_study_sop_classes(user=request.user, studies=studies)
        rows = [
            {
                "0020000D": dicomweb.element("UI", study.study_instance_uid),
                "00080020": dicomweb.da(study.exam_date),
                "00080050": dicomweb.element("SH", study.accession_number),
                "00080061": dicomweb.element("CS", *_modality(sop_classes.get(study.id, ()))),
                "00100010": dicomweb.person_name(study.patient.family_name, study.patient.given_name),
                "00100020": dicomweb.element("LO", study.patient.mrn),
                "00100030": dicomweb.da(study.patient.birth_date),
                "00201206": dicomweb.element("IS", study.series_count),
                "00201208": dicomweb.element("IS", study.instance_count),
                "00081190": dicomweb.element(
                    "UR",
                    request.build_absolute_uri(
                        reverse("dicomweb:study", kwargs={"study_uid": study.study_instance_uid})
                    ),
                ),
            }
            for study in studies
        ]
        return _dicom_json(rows, warning=warning)


class SeriesView(DicomwebView):
    """GET /dicomweb/studies/{study}/series: QIDO-RS search for the study's series."""

    def get(self, request, study_uid: str):
        match = qido_match(request.query_params)
        include_fields(request.query_params)  # validated; a series' attributes are the fixed set below
        found = qido_series_list(user=request.user, study_uid=study_uid, match=_one_more(match))
        series, warning = _qido_page(request, found, match)
        rows = [
            {
                "0020000D": dicomweb.element("UI", study_uid),
                "0020000E": dicomweb.element("UI", row["series_instance_uid"]),
                "00080060": dicomweb.element("CS", *_modality([row["sop_class_uid"]])),
                "00201209": dicomweb.element("IS", row["instance_count"]),
                "00081190": dicomweb.element(
                    "UR",
                    request.build_absolute_uri(
                        reverse(
                            "dicomweb:series-retrieve",
                            kwargs={"study_uid": study_uid, "series_uid": row["series_instance_uid"]},
                        )
                    ),
                ),
            }
            for row in series
        ]
        return _dicom_json(rows, warning=warning)


def _instance_row(request, instance, *, fields: frozenset[str] | None) -> dict:
    """One QIDO-RS instance: the recorded attributes, Instance Number from the stored header, and the header's
    attributes ``includefield`` names (``fields``; None: all of them, Pixel Data aside)."""
    # The header only: on object storage, range requests for its first block(s), not the whole file.
    with partial_reader(instance.image.original.open("rb")) as original:
        header = dicomweb.instance_metadata(original)
    row = {tag: value for tag, value in header.items() if fields is None or tag in fields}
    return row | {
        "00080016": dicomweb.element("UI", instance.sop_class_uid),
        "00080018": dicomweb.element("UI", instance.sop_instance_uid),
        "00080060": dicomweb.element("CS", *_modality([instance.sop_class_uid])),
        "00200013": header.get("00200013", {"vr": "IS"}),
        "0020000D": dicomweb.element("UI", instance.study_instance_uid),
        "0020000E": dicomweb.element("UI", instance.series_instance_uid),
        "00280008": dicomweb.element("IS", instance.number_of_frames),
        "00081190": dicomweb.element("UR", _retrieve_url(request, instance)),
    }


class InstancesView(DicomwebView):
    """GET /dicomweb/studies/{study}[/series/{series}]/instances: QIDO-RS search for instances."""

    def get(self, request, study_uid: str, series_uid: str | None = None):
        match = qido_match(request.query_params)
        fields = include_fields(request.query_params)
        found = list(
            qido_instance_list(user=request.user, study_uid=study_uid, series_uid=series_uid, match=_one_more(match))
        )
        instances, warning = _qido_page(request, found, match)
        note_listed(request, [instance.image for instance in instances])
        return _dicom_json([_instance_row(request, instance, fields=fields) for instance in instances], warning=warning)


# ---- WADO-RS -----------------------------------------------------------------------------------------


class RetrieveView(DicomwebView):
    """A WADO-RS resource: no query parameters of its own."""

    def accepted_query_parameters(self, method: str) -> tuple[str, ...]:
        return ()


def _chunks(stored) -> Iterator[bytes]:
    """A stored file chunk by chunk, opened only when the response reaches it and closed after."""
    with stored.open("rb") as file:
        yield from file.chunks()


def _dicom_parts(request, instances: list) -> StreamingHttpResponse:
    """The instances' originals, byte for byte, as one multipart/related body streamed a file at a time."""
    dicomweb.dicom_parts_negotiate(
        request.headers.get("Accept", ""),
        transfer_syntaxes={instance.transfer_syntax_uid for instance in instances},
    )
    note_listed(request, [instance.image for instance in instances])
    boundary = uuid.uuid4().hex
    response = StreamingHttpResponse(
        dicomweb.multipart_stream((_chunks(instance.image.original) for instance in instances), boundary=boundary),
        content_type=f'multipart/related; type="{dicomweb.DICOM_MEDIA_TYPE}"; boundary={boundary}',
    )
    response["Cache-Control"] = "private, no-store"
    return response


class StudyView(StowView, RetrieveView):
    """GET /dicomweb/studies/{study}: WADO-RS, every stored instance of the study; POST: STOW-RS of that study's
    instances only."""

    def get(self, request, study_uid: str):
        return _dicom_parts(request, wado_instance_list(user=request.user, study_uid=study_uid))


class SeriesRetrieveView(RetrieveView):
    """GET /dicomweb/studies/{study}/series/{series}: WADO-RS, every stored instance of the series."""

    def get(self, request, study_uid: str, series_uid: str):
        return _dicom_parts(request, wado_instance_list(user=request.user, study_uid=study_uid, series_uid=series_uid))


class InstanceView(RetrieveView):
    """GET /dicomweb/studies/{study}/series/{series}/instances/{instance}: the stored bytes, unchanged."""

    def get(self, request, study_uid: str, series_uid: str, instance_uid: str):
        instance = wado_instance_get(
            user=request.user, study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
        )
        return _dicom_parts(request, [instance])


class MetadataView(RetrieveView):
    """GET .../metadata of a study, a series or an instance: each instance's header as DICOM JSON (PS3.18 F.2),
    Pixel Data left out (dicomweb.instance_metadata says why)."""

    def get(self, request, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None):
        user = request.user
        if instance_uid is None:
            instances = wado_instance_list(user=user, study_uid=study_uid, series_uid=series_uid)
        else:
            instances = [
                wado_instance_get(user=user, study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid)
            ]
        dicomweb.metadata_negotiate(request.headers.get("Accept", ""))
        note_listed(request, [instance.image for instance in instances])
        rows = []
        for instance in instances:
            with partial_reader(instance.image.original.open("rb")) as original:
                rows.append(dicomweb.instance_metadata(original))
        return _dicom_json(rows)


def _frame_numbers(frames: str, *, count: int) -> list[int]:
    """The frames a request names ("1", "1,3,5"): 400 for a malformed list, 404 past the instance's frames."""
    numbers = [parse_whole_number(number) for number in frames.split(",")]
    if any(number is None or number < 1 for number in numbers):
        raise dicomweb.FrameListInvalid(f"Frame numbers are whole numbers from 1, separated by commas (got {frames}).")
    beyond = [number for number in numbers if number > count]
    if beyond:
        plural = "s" if count != 1 else ""
        raise dicomweb.FrameNotFound(f"The instance has {count} frame{plural}; no frame {beyond[0]}.")
    return numbers


def _frame_number(frames: str | None, *, count: int) -> int:
    """The one frame a rendered request names (1 for the instance itself)."""
    if frames is None:
        return 1
    numbers = _frame_numbers(frames, count=count)
    if len(numbers) > 1:
        raise dicomweb.FrameListInvalid("A rendered frame is one image: ask for one frame per request.")
    return numbers[0]


class FramesView(RetrieveView):
    """GET .../instances/{instance}/frames/{list}: the pixel data of those frames, as stored (what a viewer such as
    OHIF loads images by), one part per frame in the order asked."""

    def get(self, request, *, study_uid: str, series_uid: str, instance_uid: str, frames: str):
        instance = wado_instance_get(
            user=request.user, study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
        )
        numbers = _frame_numbers(frames, count=instance.number_of_frames)
        part_type = dicomweb.frames_negotiate(
            request.headers.get("Accept", ""), transfer_syntax=instance.transfer_syntax_uid
        )
        note_listed(request, [instance.image])
        with instance.image.original.open("rb") as original:
            parts = dicomweb.frame_bytes(original.read(), numbers)
        boundary = uuid.uuid4().hex
        media_type = part_type.partition(";")[0]
        response = HttpResponse(
            b"".join(dicomweb.multipart_stream(([part] for part in parts), boundary=boundary, part_type=part_type)),
            content_type=f'multipart/related; type="{media_type}"; boundary={boundary}',
        )
        response["Cache-Control"] = "private, no-store"
        return response


def _frame_image(instance, number: int) -> Image.Image:
    """Frame ``number`` (from 1) of a multi-frame instance, decoded from the original one frame at a time."""
    with instance.image.original.open("rb") as original:
        data = original.read()
    for index, frame in enumerate(iter_frames(data), start=1):
        if index == number:
            return frame
    raise dicomweb.FrameNotFound(f"The instance's pixel data holds fewer than {number} frames.")


class RenderedView(RetrieveView):
    """GET .../instances/{instance}/rendered and .../frames/{n}/rendered: an 8-bit rendition, PNG, or JPEG when the
    Accept header prefers it. A single-frame instance's frame 1 is the display image the pages show; a multi-frame
    instance's frames are decoded from the original one at a time (classifier.ml.frames.iter_frames). The instance
    itself (no frame named) is its first frame, or, for a cine loop asked for as video/mp4, its playback video."""

    def get(self, request, *, study_uid: str, series_uid: str, instance_uid: str, frames: str | None = None):
        instance = wado_instance_get(
            user=request.user, study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
        )
        number = _frame_number(frames, count=instance.number_of_frames)
        playback = instance.image.playback if frames is None and instance.number_of_frames > 1 else None
        media_type = dicomweb.rendered_media_type(request.headers.get("Accept", ""), video=bool(playback))
        note_listed(request, [instance.image])
        if media_type == "video/mp4":
            response = StreamingHttpResponse(_chunks(playback), content_type=media_type)
        elif instance.number_of_frames <= 1:
            with instance.image.file.open("rb") as display:
                data = display.read()
            data = dicomweb.png_as_jpeg(data) if media_type == "image/jpeg" else data
            response = HttpResponse(data, content_type=media_type)
        else:
            image = _frame_image(instance, number)
            response = HttpResponse(dicomweb.image_bytes(image, media_type=media_type), content_type=media_type)
        response["Cache-Control"] = "private, no-store"
        return response
