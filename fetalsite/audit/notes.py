"""How a view tells the access log which patients its response showed.

Only the code that built a page knows its items, so it notes them on the request and
``AccessLogMiddleware`` reads the note when it writes the entry. Two callers cover every list:
``fetalsite.api_utils.ApiPagination`` notes the page of every API list, and the worklist view notes
the studies and the patient search results it shows. Noting runs no query: patients and studies carry
their patient's id; the patients behind other items (images, jobs, predictions) are looked up in one
query when the entry is written, and only when the URL is patient data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fetalsite.audit.selectors import PATIENT_PATHS

NOTE_ATTRIBUTE = "audit_shown"

# model label ("patients.Study") -> object type ("study")
_LISTED_TYPES: dict[str, str] = {model_label: object_type for object_type, (model_label, _, _) in PATIENT_PATHS.items()}


@dataclass
class ShownRecords:
    patient_ids: set[int] = field(default_factory=set)
    # object type -> ids of items whose patient is looked up when the entry is written
    object_ids: dict[str, set[int]] = field(default_factory=dict)


def _shown(request) -> ShownRecords:
    # DRF wraps the HttpRequest; the middleware sees the inner one.
    http_request = getattr(request, "_request", request)
    shown = getattr(http_request, NOTE_ATTRIBUTE, None)
    if shown is None:
        shown = ShownRecords()
        setattr(http_request, NOTE_ATTRIBUTE, shown)
    return shown


def note_patients(request, patient_ids: Iterable[int | None]) -> None:
    """The response showed these patients (None values are skipped)."""
    _shown(request).patient_ids.update(patient_id for patient_id in patient_ids if patient_id is not None)


def note_listed(request, objects: Iterable) -> None:
    """The response showed these model instances; items that hold no patient data are ignored.

    An empty page is noted too, so its entry says that it showed nobody.
    """
    shown = _shown(request)
    for item in objects:
        object_type = _LISTED_TYPES.get(getattr(getattr(item, "_meta", None), "label", ""))
        if object_type is None:
            continue
        patient_path = PATIENT_PATHS[object_type][1]
        if "__" not in patient_path:
            shown.patient_ids.add(getattr(item, patient_path))  # the item's own column: no query
        else:
            shown.object_ids.setdefault(object_type, set()).add(item.pk)


def shown_records(request) -> ShownRecords | None:
    return getattr(request, NOTE_ATTRIBUTE, None)
