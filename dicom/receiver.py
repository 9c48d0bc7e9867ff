"""The DIMSE receiver (storage and Modality Worklist SCP): C-ECHO, C-STORE and C-FIND (worklist) from known
senders, run by `manage.py dicom_receiver`.

Each association runs in its own pynetdicom thread, so every handler opens and closes its own database connection
and never lets an exception out: a failing instance answers a failure status and the receiver goes on. The handlers
translate only; who the sender is comes from dicom.selectors and what a received instance does from
patients.services.dicom_instance_receive, the same path (permissions, clinic, history, classification) as an upload.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import close_old_connections, connections
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityWorklistInformationFind, Verification

from dicom.selectors import PeerNotAllowed, dicom_peer_for_association, worklist_studies
from dicom.worklist import QueryNotUnderstood, WorklistCriteria, worklist_identifier
from fetalsite.audit.models import AccessLogEntry
from fetalsite.audit.services import access_log_record
from fetalsite.core.errors import ApplicationError
from fetalsite.core.request_id import new_request_id, request_id_scope
from patients.dicom_files import SOP_CLASSES, TRANSFER_SYNTAXES
from patients.services import dicom_instance_receive

logger = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # an unexpected error on our side: the sender may try again later
# Failure statuses of C-STORE (PS3.4 B.2.3): A900 "data set does not match SOP class", Cxxx "cannot understand";
# the Cxxx codes below are ours, one per refusal, and the Error Comment names the refusal's code.
STATUS_BY_CODE = {
    "dicom_no_pixels": 0xA900,
    "not_dicom": 0xC000,
    "dicom_corrupt": 0xC000,
    "dicom_unsupported": 0xC001,
    "too_many_pixels": 0xC002,
    "too_large": 0xC002,
    "decoded_too_large": 0xC002,
    "patient_details_differ": 0xC003,
    "cine_too_many_frames": 0xC004,  # a cine loop over CINE_MAX_FRAMES or CINE_MAX_DURATION_S
    "cine_too_long": 0xC004,
    "cine_corrupt": 0xC000,
    "sender_not_allowed": 0xC005,
    "permission_denied": 0xC005,
    "invalid": 0xC006,
    "dicom_patient_incomplete": 0xC007,
}
OTHER_REFUSAL = 0xC0FF
ERROR_COMMENT_MAX = 64  # LO


def _status(code: int, comment: str = "") -> Dataset:
    status = Dataset()
    status.Status = code
    if comment:
        # Printable ASCII only: the comment is an LO in the command set, sent as the default character repertoire.
        status.ErrorComment = "".join(c if 0x20 <= ord(c) < 0x7F and c != "\\" else "?" for c in comment)[
            :ERROR_COMMENT_MAX
        ]
    return status


@contextmanager
def _own_connection() -> Iterator[None]:
    """pynetdicom calls handlers from its association threads: each call gets a fresh connection and closes it,
    so no thread keeps a connection (or a transaction) open after its association."""
    close_old_connections()
    try:
        yield
    finally:
        connections.close_all()


def _calling(assoc) -> tuple[str, str]:
    """The calling AE title and the peer's address of an association (the title before negotiation too)."""
    title = assoc.requestor.primitive.calling_ae_title if assoc.requestor.primitive else assoc.requestor.ae_title
    return str(title).strip(), str(assoc.requestor.address)


@contextmanager
def _association_scope(assoc) -> Iterator[str]:
    """One request id per association, as the web app has one per request: the log lines of its handlers and
    the jobs (and so the webhooks) of all its C-STOREs carry it."""
    if not getattr(assoc, "fetal_request_id", ""):
        assoc.fetal_request_id = new_request_id()
    with request_id_scope(assoc.fetal_request_id) as request_id:
        yield request_id


def on_association_requested(event) -> None:
    """EVT_REQUESTED: refuse (A-ASSOCIATE-RJ, calling AE title not recognised) unknown, inactive or misplaced
    senders before anything is negotiated."""
    with _association_scope(event.assoc):
        _association_vet(event)


def _association_vet(event) -> None:
    title, address = _calling(event.assoc)
    with _own_connection():
        try:
            dicom_peer_for_association(ae_title=title, address=address)
        except PeerNotAllowed as refusal:
            logger.warning("DICOM association from %s refused: %s", address, refusal)
            _reject(event.assoc, 0x01, 0x03)  # rejected-permanent: calling AE title not recognised
        except Exception:
            logger.exception("DICOM association from %s (%r) refused: sender lookup failed", address, title)
            _reject(event.assoc, 0x02, 0x01)  # rejected-transient, no reason given: the sender may retry


def _reject(assoc, result: int, diagnostic: int) -> None:
    assoc.acse.send_reject(result, 0x01, diagnostic)  # source: the service user (us)
    # As pynetdicom's own negotiation does: wait until the A-ASSOCIATE-RJ is out and the peer has closed, or the
    # association thread would close the socket under the reply.
    assoc.kill()


def on_c_echo(event) -> int:
    return SUCCESS


def refusal_code(error: Exception) -> str:
    if isinstance(error, ApplicationError):
        code = error.code
    elif isinstance(error, PeerNotAllowed):
        code = "sender_not_allowed"
    elif isinstance(error, PermissionDenied):
        code = "permission_denied"
    else:
        code = "invalid"
    return code


def on_c_store(event) -> Dataset | int:
    """EVT_C_STORE: store one instance through the same service as an upload, as the sender's account."""
    with _association_scope(event.assoc):
        return _c_store(event)


def _c_store(event) -> Dataset | int:
    title, address = _calling(event.assoc)
    with _own_connection():
        try:
            # Looked up again: the sender may have been switched off since the association began.
            peer = dicom_peer_for_association(ae_title=title, address=address)
            result = dicom_instance_receive(
                clinic=peer.clinic,
                data=event.encoded_dataset(include_meta=True),  # Part 10: preamble, file meta, the bytes as sent
                received_by=peer.acting_user,
                source=f"dicom:{peer.ae_title}@{address}",
            )
        except (ApplicationError, PeerNotAllowed, PermissionDenied, ValidationError) as error:
            code = refusal_code(error)
            logger.warning("C-STORE from %s@%s refused (%s): %s", title, address, code, error)
            return _status(STATUS_BY_CODE.get(code, OTHER_REFUSAL), f"{code}: {error}")
        except Exception:
            logger.exception("C-STORE from %s@%s failed unexpectedly", title, address)
            return _status(OUT_OF_RESOURCES, "internal error; see the receiver's log")
    logger.info(
        "C-STORE from %s@%s: image %s %s", title, address, result.image.id, "stored" if result.created else "known"
    )
    return SUCCESS


PENDING = 0xFF00
FIND_NOT_UNDERSTOOD = 0xC000  # C-FIND failure "unable to process" (PS3.4 C.4.1.1.4): a malformed query key
FIND_CANCELLED = 0xFE00


def on_c_find(event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """EVT_C_FIND (Modality Worklist): one pending answer per scheduled study of the caller's clinic that matches,
    then success. The identifiers are built before the first is sent, so the database connection is closed
    while the machine reads them."""
    with _association_scope(event.assoc):
        yield from _c_find(event)


def _c_find(event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    title, address = _calling(event.assoc)
    try:
        criteria = WorklistCriteria.from_identifier(event.identifier)
        with _own_connection():
            peer = dicom_peer_for_association(ae_title=title, address=address)
            studies = [] if criteria.asks_for_other(calling_ae_title=peer.ae_title) else None
            if studies is None:
                studies = worklist_studies(clinic_id=peer.clinic_id, criteria=criteria)
            answers = [worklist_identifier(study, station_ae_title=peer.ae_title) for study in studies]
            # The worklist discloses names, MRNs and birth dates: the access log records who was shown, as a list.
            access_log_record(
                user=peer.acting_user,
                action=AccessLogEntry.Action.LIST,
                object_type="study",
                patient_ids=[study.patient_id for study in studies],
                clinic_id=peer.clinic_id,
                path=f"dicom:C-FIND worklist {peer.ae_title}",
                method="C-FIND",
                status_code=SUCCESS,
                ip=address,
            )
    except (QueryNotUnderstood, PeerNotAllowed) as refusal:
        logger.warning("C-FIND from %s@%s refused: %s", title, address, refusal)
        yield _status(FIND_NOT_UNDERSTOOD, str(refusal)), None
        return
    except Exception:
        logger.exception("C-FIND from %s@%s failed unexpectedly", title, address)
        yield _status(OUT_OF_RESOURCES, "internal error; see the receiver's log"), None
        return
    logger.info("C-FIND (worklist) from %s@%s: %d scheduled studies", title, address, len(answers))
    for answer in answers:
        if event.is_cancelled:
            yield FIND_CANCELLED, None
            return
        yield PENDING, answer
    yield SUCCESS, None


class DicomReceiver:
    """A storage SCP that answers Verification and the three storage SOP classes in the transfer syntaxes that
    patients.dicom_files decodes; anything else is refused at negotiation."""

    def __init__(self, *, host: str, port: int, ae_title: str):
        self.host, self.port, self.ae_title = host, port, ae_title
        self._ae: AE | None = None
        self._server = None

    def _application_entity(self) -> AE:
        ae = AE(ae_title=self.ae_title)
        ae.add_supported_context(Verification)
        ae.add_supported_context(ModalityWorklistInformationFind)
        for sop_class in SOP_CLASSES:
            ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
        ae.require_called_aet = True  # a sender configured with another AE title for us is told so
        ae.acse_timeout, ae.dimse_timeout, ae.network_timeout = 30, 60, 60
        return ae

    def start(self) -> tuple[str, int]:
        """Listen in background threads; returns the address bound (port 0 picks a free one)."""
        self._ae = self._application_entity()
        handlers = [
            (evt.EVT_REQUESTED, on_association_requested),
            (evt.EVT_C_ECHO, on_c_echo),
            (evt.EVT_C_STORE, on_c_store),
            (evt.EVT_C_FIND, on_c_find),
        ]
        self._server = self._ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        host, port = self._server.server_address[:2]
        return host, port

    def stop(self, *, grace_s: float = 10.0) -> None:
        """Stop listening, let the associations under way finish (at most ``grace_s``), then abort the rest."""
        if self._server is None or self._ae is None:
            return
        self._server.shutdown()
        deadline = time.monotonic() + grace_s
        for association in list(self._ae.active_associations):
            association.join(timeout=max(0.0, deadline - time.monotonic()))
        self._ae.shutdown()
        self._server = None
