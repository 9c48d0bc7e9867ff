"""Which requests read patient data, and what they read: decided from the resolved URL alone.

The rules are tables over URL kwargs and route segments, not a list of views, so a page or API
endpoint added later is covered as soon as its URL follows the project's conventions:

* a URL kwarg named in ``ID_KWARGS`` (``patient_id``, ``study_id``, ...) names the object read;
  the most specific one wins (an image inside a study is an image);
* the route segments after that kwarg say what was done with it: nothing is a VIEW, a segment in
  ``SUFFIX_TARGETS`` has its own action and type (``file/`` is a DOWNLOAD of ``image_file``), a
  collection (``images/``, ``images.json``) is a LIST of that collection with no object id, and any
  other segment (``edit/``, ``studies/new/``) shows the object itself, so it is a VIEW of it;
* under ``/api/v1/`` (except the prefixes in ``API_NOT_PATIENT_DATA``) any ``<int:..._id>`` names the
  object, known or not (``reports/<int:report_id>/`` is a VIEW of a ``report``), a route without
  an id is a LIST of its last segment (``patients/`` -> patient), and a lookup by another key
  (``patients/by-mrn/<path:mrn>/``) a LIST of its collection, naming the patients its view noted;
* pages without an id are counted only when named in ``PAGE_TARGETS``;
* the admin's patient-data models are counted through ``ADMIN_MODELS``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fetalsite.audit.models import AccessLogEntry

Action = AccessLogEntry.Action

# URL kwarg -> object type, most specific first.
ID_KWARGS: dict[str, str] = {
    "measurement_id": "measurement",  # biometry's head measurements (an image's)
    "prediction_id": "prediction",
    "job_id": "job",
    "image_id": "image",
    "study_id": "study",
    "patient_id": "patient",
}

# A route segment after the object's id that is not a plain view of the object.
SUFFIX_TARGETS: dict[str, tuple[str, str | None]] = {
    "file": (Action.DOWNLOAD, "image_file"),  # an image's display rendition
    "original": (Action.DOWNLOAD, "image_original"),  # the bytes uploaded for an image
    "playback": (Action.DOWNLOAD, "image_playback"),  # a cine loop's video (H.264 MP4)
    "download": (Action.DOWNLOAD, None),  # None: the object's own type
    "heatmap": (Action.DOWNLOAD, "heatmap"),
    "report": (Action.DOWNLOAD, "study_report"),  # a signed-off study's report (PDF): report.pdf, report/
    "history": (Action.VIEW, "history"),
    "export": (Action.EXPORT, None),
}

# Collection names (a route segment, before any extension) -> the type of their items.
COLLECTIONS: dict[str, str] = {
    "patients": "patient",
    "studies": "study",
    "images": "image",
    "jobs": "job",
    "predictions": "prediction",
    "reviews": "prediction",
}

# API routes (below /api/v1/) that carry no patient data.
API_PREFIX = "api/v1/"
API_NOT_PATIENT_DATA = ("auth/", "models/", "model-versions/", "schema/", "webhooks/")

# Pages with no id in their URL that still show patient data, by URL name.
PAGE_TARGETS: dict[str, tuple[str, str]] = {
    "home": (Action.LIST, "study"),  # the worklist: patients and their studies
}

# DICOMweb (dicom.urls, namespace "dicomweb"): its routes name objects by DICOM UID, not by id, so the views note
# what they showed (the patients come from the note). By URL name.
DICOMWEB_TARGETS: dict[str, tuple[str, str]] = {
    "studies": (Action.LIST, "study"),
    "series": (Action.LIST, "series"),
    "study-instances": (Action.LIST, "image"),
    "instances": (Action.LIST, "image"),
    "instance": (Action.DOWNLOAD, "image_original"),  # WADO-RS: the stored bytes
    "study": (Action.DOWNLOAD, "image_original"),  # WADO-RS: every stored instance of the study (a GET)
    "series-retrieve": (Action.DOWNLOAD, "image_original"),
    "frames": (Action.DOWNLOAD, "image_original"),  # WADO-RS frames: the original's pixel data
    "instance-rendered": (Action.DOWNLOAD, "image_file"),  # WADO-RS rendered: the display rendition
    "frame-rendered": (Action.DOWNLOAD, "image_file"),
    "study-metadata": (Action.VIEW, "image"),  # WADO-RS metadata: the instances' headers, patient data included
    "series-metadata": (Action.VIEW, "image"),
    "instance-metadata": (Action.VIEW, "image"),
}

# Admin models holding patient data ("<app_label>_<model_name>") -> object type.
ADMIN_MODELS: dict[str, str] = {
    "patients_patient": "patient",
    "patients_historicalpatient": "patient",
    "patients_study": "study",
    "patients_historicalstudy": "study",
    "patients_ultrasoundimage": "image",
    "patients_historicalultrasoundimage": "image",
    "classifier_classificationjob": "job",
    "classifier_historicalclassificationjob": "job",
    "classifier_prediction": "prediction",
    "classifier_historicalprediction": "prediction",
}
ADMIN_VIEWS: dict[str, str] = {"change": Action.VIEW, "history": Action.VIEW, "changelist": Action.LIST}

_CONVERTER = re.compile(r"^<(?:\w+:)?(\w+)>$")


@dataclass(frozen=True)
class AccessTarget:
    action: str
    object_type: str
    object_id: int | None = None
    # The id kwarg whose record leads to the patient (for lists nested below an object as well).
    lookup_type: str | None = None
    lookup_id: int | None = None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _segments(route: str) -> list[str]:
    return [segment for segment in route.strip("/").split("/") if segment]


def _collection_type(segment: str) -> str | None:
    name = segment.split(".", 1)[0]
    if name in COLLECTIONS:
        return COLLECTIONS[name]
    return None


def _id_kwarg(segments: list[str], kwargs: dict, *, any_id: bool) -> tuple[str, str] | None:
    """(kwarg, object type) of the object the URL names, or None."""
    present = [name for name in ID_KWARGS if _int(kwargs.get(name)) is not None]
    if present:
        return present[0], ID_KWARGS[present[0]]
    if any_id:
        # An API route with an id of a kind this table does not know yet: the last one names the object.
        names = [m.group(1) for s in segments if (m := _CONVERTER.match(s))]
        names = [name for name in names if name.endswith("_id") and _int(kwargs.get(name)) is not None]
        if names:
            return names[-1], names[-1].removesuffix("_id")[:32]
    return None


def _kwarg_target(segments: list[str], kwargs: dict, *, any_id: bool = False) -> AccessTarget | None:
    found = _id_kwarg(segments, kwargs, any_id=any_id)
    if found is None:
        return None
    kwarg, object_type = found
    object_id = _int(kwargs[kwarg])
    lookup = {"lookup_type": object_type, "lookup_id": object_id}
    position = next((i for i, s in enumerate(segments) if (m := _CONVERTER.match(s)) and m.group(1) == kwarg), None)
    suffix = [s for s in segments[position + 1 :] if not _CONVERTER.match(s)] if position is not None else []
    if not suffix:
        return AccessTarget(Action.VIEW, object_type, object_id, **lookup)
    first = suffix[0].split(".", 1)[0]
    if first in SUFFIX_TARGETS:
        action, suffix_type = SUFFIX_TARGETS[first]
        return AccessTarget(action, suffix_type or object_type, object_id, **lookup)
    collection = _collection_type(suffix[0])
    if collection and len(suffix) == 1:
        return AccessTarget(Action.LIST, collection, None, **lookup)
    # A form or sub-page about the object (edit/, studies/new/, review/): it shows the object.
    return AccessTarget(Action.VIEW, object_type, object_id, **lookup)


def _api_excluded(segments: list[str]) -> bool:
    rest = "/".join(segments[2:]) + "/"
    return any(rest.startswith(prefix) for prefix in API_NOT_PATIENT_DATA)


def _api_list_target(segments: list[str]) -> AccessTarget | None:
    # A lookup by another key (patients/by-mrn/<path:mrn>/) reads like a search of the collection before it:
    # a LIST whose entry names the patients the view noted.
    if len(segments) > 4 and _CONVERTER.match(segments[-1]) and segments[-2].startswith("by-"):
        segments = segments[:-2]
    last = segments[-1]
    if not re.fullmatch(r"[\w.-]+", last):
        return None  # a regex catch-all (the JSON 404), not a collection
    object_type = _collection_type(last) or last.split(".", 1)[0].replace("-", "_")[:32]
    return AccessTarget(Action.LIST, object_type)


def _admin_target(url_name: str, kwargs: dict, args: tuple) -> AccessTarget | None:
    if url_name.endswith("_simple_history") and args:
        # django-simple-history's page of one past version: positional (object id, history id).
        url_name, kwargs = url_name.removesuffix("_simple_history") + "_history", {"object_id": args[0]}
    model, _, view = url_name.rpartition("_")
    if model not in ADMIN_MODELS or view not in ADMIN_VIEWS:
        return None
    object_type = ADMIN_MODELS[model]
    if view == "changelist":
        return AccessTarget(Action.LIST, object_type)
    object_id = _int(kwargs.get("object_id"))
    return AccessTarget(ADMIN_VIEWS[view], object_type, object_id, lookup_type=object_type, lookup_id=object_id)


def admin_refused_target(*, url_name: str | None, kwargs: dict, args: tuple = ()) -> AccessTarget:
    """What a refused request to any admin page asked for: the model ("auth_user") and the object id.

    Patient-data models keep their object type and lead to the patient; other pages name their model.
    """
    target = _admin_target(url_name or "", kwargs, tuple(args))
    if target is not None:
        return target
    model = (url_name or "").removesuffix("_simple_history").rpartition("_")[0]
    object_id = _int(kwargs.get("object_id"))
    if model in ADMIN_MODELS:
        object_type = ADMIN_MODELS[model]
        return AccessTarget(Action.DENIED, object_type, object_id, lookup_type=object_type, lookup_id=object_id)
    return AccessTarget(Action.DENIED, model[:32] or "admin", object_id)


def access_target_resolve(
    *, route: str, url_name: str | None, namespaces: list[str], kwargs: dict, args: tuple = ()
) -> AccessTarget | None:
    """What a successful GET of this resolved URL read, or None when it read no patient data."""
    if "admin" in namespaces:
        return _admin_target(url_name or "", kwargs, tuple(args))
    if "dicomweb" in namespaces:
        found = DICOMWEB_TARGETS.get(url_name or "")
        return AccessTarget(*found) if found else None
    segments = _segments(route)
    api = "/".join(segments[:2]) + "/" == API_PREFIX and len(segments) > 2
    if api and _api_excluded(segments):
        return None
    target = _kwarg_target(segments, kwargs, any_id=api)
    if target is not None:
        return target
    if api:
        return _api_list_target(segments)
    if url_name in PAGE_TARGETS:
        action, object_type = PAGE_TARGETS[url_name]
        return AccessTarget(action, object_type)
    return None
