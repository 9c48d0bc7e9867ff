"""DICOMweb (PS3.18) under /dicomweb/: STOW-RS stores, QIDO-RS searches, WADO-RS retrieves, for the caller's clinic.

Thin views over the same service as an upload and the C-STORE receiver (patients.services.dicom_instance_receive:
permissions, clinic, history, classification) and over dicom.dicomweb_selectors, which scope every read to the
caller's clinic. Token or session authentication and throttling are the API's; the answers are DICOM's media types.
Not in the OpenAPI schema: DICOMweb is its own standard, documented in docs/dicom.md."""

from __future__ import annotations

import logging
import uuid
from datetime import date

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.urls import reverse
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer

from dicom import dicomweb
from dicom.dicomweb_selectors import (
    QidoMatch,
    qido_instance_list,
    qido_series_list,
    qido_study_list,
    qido_study_sop_classes,
    wado_instance_get,
)
from dicom.receiver import OTHER_REFUSAL, OUT_OF_RESOURCES, STATUS_BY_CODE, refusal_code
from fetalsite.accounts.roles import require_permission
from fetalsite.core.api_utils import RequestTooLarge, content_length, parse_whole_number
from fetalsite.core.api_views import REPEATED_QUERY_PARAMETER, check_query_parameters
from fetalsite.core.api_views import ApiView as _ApiView
from fetalsite.core.errors import ApplicationError
from fetalsite.core.shown import note_listed
from patients.services import dicom_instance_receive

logger = logging.getLogger(__name__)

QIDO_MAX_LIMIT = 200
# Matching keys by keyword or tag (PS3.18 8.3.4.1), and the standard parameters accepted but not acted on.
MATCH_KEYS = {
    "PatientID": "patient_id", "00100020": "patient_id",
    "AccessionNumber": "accession_number", "00080050": "accession_number",
    "StudyDate": "study_date", "00080020": "study_date",
    "StudyInstanceUID": "study_uids", "0020000D": "study_uids",
    "SeriesInstanceUID": "series_uids", "0020000E": "series_uids",
    "SOPInstanceUID": "sop_instance_uids", "00080018": "sop_instance_uids",
}  # fmt: skip
QIDO_PARAMETERS = (*MATCH_KEYS, "limit", "offset", "includefield", "fuzzymatching")


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
    limit = settings.UPLOAD_MAX_BYTES
    if content_length(request.META) > limit:
        raise RequestTooLarge(f"A STOW-RS request may carry at most {limit} bytes.")
    body = request._request.read(limit + 1)
    if len(body) > limit:
        raise RequestTooLarge(f"A STOW-RS request may carry at most {limit} bytes.")
    return dicomweb.multipart_parts(body, boundary=boundary, max_parts=settings.UPLOAD_MAX_FILES_PER_REQUEST)


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
    """The search's matching keys, limit and offset from the query string (400 for a value that cannot match)."""
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
    limit = _page_number(query, "limit", 100, QIDO_MAX_LIMIT)
    offset = _page_number(query, "offset", 0, 10**9)
    return QidoMatch(**values, limit=limit or QIDO_MAX_LIMIT, offset=offset)


def _dicom_json(body: dict | list, *, status: int = 200) -> HttpResponse:
    return HttpResponse(DicomJsonRenderer().render(body), status=status, content_type=dicomweb.DICOM_JSON_MEDIA_TYPE)


def _modality(sop_classes) -> list[str]:
    return sorted({dicomweb.MODALITY_BY_SOP_CLASS[c] for c in sop_classes if c in dicomweb.MODALITY_BY_SOP_CLASS})


class StudiesView(StowView):
    """GET /dicomweb/studies: QIDO-RS search for studies; POST: STOW-RS."""

    def get(self, request):
        studies = list(qido_study_list(user=request.user, match=qido_match(request.query_params)))
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
        return _dicom_json(rows)


class StudyView(StowView):
    """POST /dicomweb/studies/{study}: STOW-RS of that study's instances only."""


class SeriesView(DicomwebView):
    """GET /dicomweb/studies/{study}/series: QIDO-RS search for the study's series."""

    def get(self, request, study_uid: str):
        series = qido_series_list(user=request.user, study_uid=study_uid, match=qido_match(request.query_params))
        rows = [
            {
                "0020000D": dicomweb.element("UI", study_uid),
                "0020000E": dicomweb.element("UI", row["series_instance_uid"]),
                "00080060": dicomweb.element("CS", *_modality([row["sop_class_uid"]])),
                "00201209": dicomweb.element("IS", row["instance_count"]),
            }
            for row in series
        ]
        return _dicom_json(rows)


class InstancesView(DicomwebView):
    """GET /dicomweb/studies/{study}[/series/{series}]/instances: QIDO-RS search for instances."""

    def get(self, request, study_uid: str, series_uid: str | None = None):
        match = qido_match(request.query_params)
        instances = list(qido_instance_list(user=request.user, study_uid=study_uid, series_uid=series_uid, match=match))
        note_listed(request, [instance.image for instance in instances])
        rows = [
            {
                "00080016": dicomweb.element("UI", instance.sop_class_uid),
                "00080018": dicomweb.element("UI", instance.sop_instance_uid),
                "00080060": dicomweb.element("CS", *_modality([instance.sop_class_uid])),
                "0020000D": dicomweb.element("UI", instance.study_instance_uid),
                "0020000E": dicomweb.element("UI", instance.series_instance_uid),
                "00280008": dicomweb.element("IS", instance.number_of_frames),
                "00081190": dicomweb.element("UR", _retrieve_url(request, instance)),
            }
            for instance in instances
        ]
        return _dicom_json(rows)


# ---- WADO-RS -----------------------------------------------------------------------------------------


class InstanceView(DicomwebView):
    """GET /dicomweb/studies/{study}/series/{series}/instances/{instance}: the stored bytes, unchanged."""

    def accepted_query_parameters(self, method: str) -> tuple[str, ...]:
        return ()

    def get(self, request, study_uid: str, series_uid: str, instance_uid: str):
        instance = wado_instance_get(
            user=request.user, study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
        )
        note_listed(request, [instance.image])
        with instance.image.original.open("rb") as original:
            data = original.read()
        boundary = uuid.uuid4().hex
        response = HttpResponse(
            dicomweb.multipart_body([data], boundary=boundary),
            content_type=f'multipart/related; type="{dicomweb.DICOM_MEDIA_TYPE}"; boundary={boundary}',
        )
        response["Cache-Control"] = "private, no-store"
        return response


class RenderedView(DicomwebView):
    """GET .../instances/{instance}/rendered and .../frames/1/rendered: the display rendition (the same 8-bit image
    the pages show), PNG, or JPEG when the Accept header asks for image/jpeg and not PNG. Frame 1 only: a stored
    instance has one frame until cine loops come."""

    def accepted_query_parameters(self, method: str) -> tuple[str, ...]:
        return ()

    def get(self, request, *, study_uid: str, series_uid: str, instance_uid: str, frames: str = "1"):
        instance = wado_instance_get(
            user=request.user, study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
        )
        if frames != "1":
            raise Http404("Only frame 1 is stored for an instance.")
        note_listed(request, [instance.image])
        with instance.image.file.open("rb") as display:
            data, media_type = display.read(), "image/png"
        accept = request.headers.get("Accept", "")
        if "image/jpeg" in accept and "image/png" not in accept:
            data, media_type = dicomweb.png_as_jpeg(data), "image/jpeg"
        response = HttpResponse(data, content_type=media_type)
        response["Cache-Control"] = "private, no-store"
        return response
