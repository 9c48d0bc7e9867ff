"""How a view tells the access log which patients its response showed.

Only the code that built a page knows its items, so it notes them on the request and the access log
(``fetalsite.audit.middleware``) reads the note when it writes the entry. Two callers cover every list:
``fetalsite.core.api_utils.ApiPagination`` notes the page of every API list, and the worklist view notes
the studies and the patient search results it shows. Noting runs no query and knows no model: the items are
kept by model label, and the audit app, which knows where each model keeps its patient, reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

NOTE_ATTRIBUTE = "audit_shown"


@dataclass
class ShownRecords:
    patient_ids: set[int] = field(default_factory=set)
    # model label ("patients.Study") -> the instances of that model the response showed
    listed: dict[str, list] = field(default_factory=dict)


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
    """The response showed these model instances (anything that is not one is ignored).

    An empty page is noted too, so its entry says that it showed nobody.
    """
    shown = _shown(request)
    for item in objects:
        label = getattr(getattr(item, "_meta", None), "label", None)
        if label is not None:
            shown.listed.setdefault(label, []).append(item)


def shown_records(request) -> ShownRecords | None:
    return getattr(request, NOTE_ATTRIBUTE, None)
