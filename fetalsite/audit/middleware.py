"""Record every successful read of patient data, and give every request an id."""

from __future__ import annotations

import logging
import re
import uuid

from fetalsite.audit.routes import access_target_resolve
from fetalsite.audit.selectors import patient_ref_get
from fetalsite.audit.services import access_log_record
from fetalsite.client_ip import client_ip

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only when it is short and plain; anything else is replaced by a fresh uuid4.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
READ_METHODS = ("GET", "HEAD")


def request_id_for(request) -> str:
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    return supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex


class AccessLogMiddleware:
    """After the response: a 2xx GET/HEAD of a patient-data URL is logged.

    Reads are by signed-in users; should a patient-data URL ever answer 2xx to an anonymous request,
    that read is logged too, with no user.

    The user is read after the view ran, so API token authentication (done by DRF inside the view,
    which also sets it on the Django request) counts as well as the session. Errors answer as they
    are and are not logged as reads: a 404 for another clinic's id shows nothing, so nothing was read.
    Writing the log never breaks the response; a failure is logged and the response goes out.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_for(request)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        if request.method in READ_METHODS and 200 <= response.status_code < 300:
            try:
                self._record(request, response)
            except Exception:
                logger.exception("Could not write the access log entry for request %s", request.request_id)
        return response

    def _record(self, request, response) -> None:
        user = getattr(request, "user", None)
        match = getattr(request, "resolver_match", None)
        if match is None:
            return
        target = access_target_resolve(
            route=match.route or "",
            url_name=match.url_name,
            namespaces=match.namespaces,
            kwargs=match.kwargs,
            args=match.args,
        )
        if target is None:
            return
        ref = patient_ref_get(object_type=target.lookup_type, object_id=target.lookup_id)
        access_log_record(
            user=user,
            action=target.action,
            object_type=target.object_type,
            object_id=target.object_id,
            patient_id=ref.patient_id,
            clinic_id=ref.clinic_id,
            path=request.path,
            method=request.method,
            status_code=response.status_code,
            ip=client_ip(request),
            request_id=request.request_id,
        )
