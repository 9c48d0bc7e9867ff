"""Record every successful read of patient data, replayed answers and refused attempts; give every
request an id."""

from __future__ import annotations

import logging

from fetalsite.accounts.selectors import visible_clinic_ids
from fetalsite.audit.models import AccessLogEntry
from fetalsite.audit.routes import AccessTarget, access_target_resolve, admin_refused_target
from fetalsite.audit.selectors import PatientRef, patient_ids_listed, patient_ref_get
from fetalsite.audit.services import access_log_record
from fetalsite.core.api_utils import REPLAYED_HEADER
from fetalsite.core.client_ip import client_ip
from fetalsite.core.request_id import HEADER as REQUEST_ID_HEADER
from fetalsite.core.request_id import accepted_request_id
from fetalsite.core.shown import note_listed, shown_records

logger = logging.getLogger(__name__)

READ_METHODS = ("GET", "HEAD")
Action = AccessLogEntry.Action
NO_PATIENT = PatientRef(None, None)


def request_id_for(request) -> str:
    """The id fetalsite.core.request_id's middleware (first in MIDDLEWARE) gave the request, so the access log, the
    job and every log line share one; a request that did not pass through it gets one by the same rule."""
    return getattr(request, "request_id", "") or accepted_request_id(request.headers.get(REQUEST_ID_HEADER))


READ, REPLAY, REFUSAL = "read", "replay", "refusal"


def _event(request, response) -> str | None:
    """Which kind of entry the response may call for, from the method, status and headers alone."""
    status = response.status_code
    if request.method in READ_METHODS and 200 <= status < 300:
        return READ
    if response.get(REPLAYED_HEADER) == "true":
        return REPLAY
    if status in (302, 403, 404) and getattr(getattr(request, "user", None), "is_authenticated", False):
        return REFUSAL
    return None


class AccessLogMiddleware:
    """After the response, on a patient-data URL (decided by ``routes``):

    * a 2xx GET/HEAD is a read; a list's entry carries the patients it showed (``notes``);
    * an answer replayed for a reused Idempotency-Key is a ``REPLAY``;
    * a signed-in user's 403 (here or anywhere in the admin), or a 404 (an admin redirect) for a record
      that exists in another clinic, is a ``DENIED`` security event, kept under the user's clinic.

    Reads are by signed-in users; should a patient-data URL ever answer 2xx to an anonymous request,
    that read is logged too, with no user.

    The user is read after the view ran, so API token authentication (done by DRF inside the view,
    which also sets it on the Django request) counts as well as the session. Writing the log never
    breaks the response; a failure is logged and the response goes out.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_for(request)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        event = _event(request, response)
        if event is not None:
            try:
                self._record(request, response, event)
            except Exception:
                logger.exception("Could not write the access log entry for request %s", request.request_id)
        return response

    def _record(self, request, response, event: str) -> None:
        match = getattr(request, "resolver_match", None)
        if match is None:
            return
        admin = "admin" in match.namespaces
        if event == REFUSAL and response.status_code == 302 and not admin:
            return  # only the admin answers a record outside the user's clinic with a redirect
        target = access_target_resolve(
            route=match.route or "",
            url_name=match.url_name,
            namespaces=match.namespaces,
            kwargs=match.kwargs,
            args=match.args,
        )
        if event == REFUSAL and admin and target is None and response.status_code == 403:
            target = admin_refused_target(url_name=match.url_name, kwargs=match.kwargs, args=match.args)
        if target is None:
            return
        if event == REFUSAL:
            self._record_refusal(request, response, target)
        elif event == REPLAY:
            self._record_replay(request, response, target)
        else:
            self._record_read(request, response, target, admin=admin)

    def _record_read(self, request, response, target: AccessTarget, *, admin: bool) -> None:
        if admin and target.action == Action.LIST and hasattr(response, "context_data"):
            changelist = (response.context_data or {}).get("cl")  # the admin's page of results
            note_listed(request, getattr(changelist, "result_list", None) or [])
        ref = patient_ref_get(object_type=target.lookup_type, object_id=target.lookup_id)
        patient_ids = _shown_patient_ids(request, target, ref)
        self._write(request, response, target, ref, action=target.action, patient_ids=patient_ids)

    def _record_replay(self, request, response, target: AccessTarget) -> None:
        # A creation route names no object; the replayed answer does (its "id").
        body = getattr(response, "data", None)
        created_id = body.get("id") if isinstance(body, dict) else None
        if target.object_id is None and type(created_id) is int:
            target = AccessTarget(Action.REPLAY, target.object_type, created_id, target.object_type, created_id)
        ref = patient_ref_get(object_type=target.lookup_type, object_id=target.lookup_id)
        self._write(request, response, target, ref, action=Action.REPLAY)

    def _record_refusal(self, request, response, target: AccessTarget) -> None:
        """A 403, or a 404/redirect that hid a record of another clinic; missing records are not logged.

        The entry belongs to the user's clinic, so that clinic's admin reviews it: it names the object
        asked for (the id the user sent) but never the other clinic's patient.
        """
        user = request.user
        ref = NO_PATIENT
        if target.lookup_id is not None:
            ref = patient_ref_get(object_type=target.lookup_type, object_id=target.lookup_id)
        visible = visible_clinic_ids(user=user)
        other_clinic = ref.clinic_id is not None and visible is not None and ref.clinic_id not in visible
        if response.status_code != 403 and not other_clinic:
            return  # a missing record, or an own-clinic 404 such as an image without a job yet
        object_type, object_id = target.object_type, target.object_id
        if object_id is None and target.lookup_id is not None:
            object_type, object_id = target.lookup_type, target.lookup_id  # a list below a refused object
        refused = AccessTarget(Action.DENIED, object_type, object_id)
        own_patient = NO_PATIENT if other_clinic else PatientRef(ref.patient_id, None)
        self._write(request, response, refused, own_patient, action=Action.DENIED, clinic_id=user.clinic_id)

    def _write(
        self,
        request,
        response,
        target: AccessTarget,
        ref: PatientRef,
        *,
        action: str,
        patient_ids: list[int] | None = None,
        clinic_id: int | None = None,
    ) -> None:
        access_log_record(
            user=getattr(request, "user", None),
            action=action,
            object_type=target.object_type,
            object_id=target.object_id,
            patient_id=ref.patient_id,
            patient_ids=patient_ids,
            clinic_id=clinic_id if clinic_id is not None else ref.clinic_id,
            path=request.path,
            method=request.method,
            status_code=response.status_code,
            ip=client_ip(request),
            request_id=request.request_id,
        )


def _shown_patient_ids(request, target: AccessTarget, ref: PatientRef) -> list[int] | None:
    """The patients a response showed: the view's note (one query for items that are not patients or
    studies) and, for a list below one record (a study's images/), that record's patient.

    None when nothing says (a single record's page: its patient_id says it all).
    """
    shown = shown_records(request)
    nested_patient = ref.patient_id if target.action == Action.LIST else None
    if shown is None and nested_patient is None:
        return None
    patient_ids = set() if nested_patient is None else {nested_patient}
    if shown is not None:
        patient_ids |= shown.patient_ids | patient_ids_listed(shown.listed)
    return sorted(patient_ids)
