"""Reads of patients, studies and images, always scoped to the user's clinic."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Exists, F, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from biometry.models import MeasurementJob
from biometry.selectors import measurements_prefetch
from classifier.labels import FetalPlane, plane_display
from classifier.models import CineFrames, ClassificationJob, Prediction
from classifier.selectors import (
    CineTimeline,
    cine_timeline,
    image_awaits_review,
    image_latest_cine_frames,
    image_latest_prediction,
    image_latest_prediction_subquery,
    latest_jobs_prefetch,
)
from fetalsite.accounts.selectors import scope_to_user
from fetalsite.core.errors import ApplicationError
from fetalsite.core.text import search_words
from patients.models import Patient, Study, UltrasoundImage


def patient_search(search: str, *, through: str = "") -> Q:
    """Patients (or, with ``through="patient__"``, their studies) whose names and MRN hold every word of
    ``search``, in any order, accents and case aside: "zoe nunez" and "Nunez, Zoë" both find Zoë Núñez.

    Matches ``Patient.search_text``, which the services fold by the same rule (fetalsite.core.text), so it
    works alike on PostgreSQL and SQLite. Punctuation splits words ("N-2024-0815" is n, 2024 and 0815)."""
    words = search_words(search)
    return Q(*(Q(**{f"{through}search_text__contains": word}) for word in words))


def patient_list(*, user, search: str = "") -> QuerySet[Patient]:
    patients = scope_to_user(Patient.objects.select_related("clinic"), user=user)
    if search:
        patients = patients.filter(patient_search(search))
    return patients.order_by("family_name", "given_name", "id")


def patient_get(*, user, patient_id: int) -> Patient:
    return get_object_or_404(scope_to_user(Patient.objects.select_related("clinic"), user=user), id=patient_id)


def patient_get_by_mrn(*, user, mrn: str) -> Patient:
    """The patient of the user's own clinic with this MRN (404 otherwise). MRNs are unique only within a
    clinic, so a user without one (a superuser) finds none. Surrounding spaces are dropped, as when MRNs are stored,
    and case does not matter, as in the clinic's uniqueness rule."""
    patients = scope_to_user(Patient.objects.select_related("clinic"), user=user).filter(clinic_id=user.clinic_id)
    return get_object_or_404(patients, mrn__iexact=mrn.strip())  # one per clinic in any case (a constraint)


def study_list(*, user, filters: dict | None = None) -> QuerySet[Study]:
    filters = filters or {}
    studies = scope_to_user(Study.objects.select_related("patient", "created_by"), user=user)
    if filters.get("patient"):
        studies = studies.filter(patient_id=filters["patient"])
    if filters.get("status"):
        studies = studies.filter(status=filters["status"])
    if filters.get("search"):
        studies = studies.filter(patient_search(filters["search"], through="patient__"))
    studies = studies.annotate(
        image_count=Count("images", distinct=True),
        classified_count=Count(
            "images__jobs", filter=Q(images__jobs__status=ClassificationJob.Status.SUCCEEDED), distinct=True
        ),
    )
    return studies.order_by("-exam_date", "-id")


def study_get(*, user, study_id: int) -> Study:
    studies = scope_to_user(Study.objects.select_related("patient", "patient__clinic", "created_by"), user=user)
    return get_object_or_404(studies, id=study_id)


def _images_with_latest_job(queryset: QuerySet[UltrasoundImage]) -> QuerySet[UltrasoundImage]:
    """Images ready for ``classifier.selectors.image_latest_job``/``image_latest_prediction``, a clip's
    ``cine_timeline`` and ``biometry.selectors.image_measurements`` (no more queries)."""
    # dicom: the facts of a DICOM file, if it was one; clip: the clip a key frame was taken from (its card names it)
    related = ("study", "study__patient", "uploaded_by", "dicom", "clip")
    # A clip's key-frame stills, only what names them: one query for the whole list, clips or not.
    stills = UltrasoundImage.objects.only("id", "clip_id", "clip_frame_index").order_by("clip_frame_index", "id")
    # The head measurements and their jobs (biometry): the study page's card and the image API show them.
    measurement_jobs = Prefetch("measurement_jobs", queryset=MeasurementJob.objects.order_by("queued_at", "id"))
    return queryset.select_related(*related).prefetch_related(
        latest_jobs_prefetch(), Prefetch("key_frames", queryset=stills), measurements_prefetch(), measurement_jobs
    )


def image_list(*, user, study_id: int | None = None) -> QuerySet[UltrasoundImage]:
    images = scope_to_user(UltrasoundImage.objects.all(), user=user)
    if study_id is not None:
        images = images.filter(study_id=study_id)
    return _images_with_latest_job(images).order_by("uploaded_at", "id")


def image_get(*, user, image_id: int) -> UltrasoundImage:
    images = _images_with_latest_job(scope_to_user(UltrasoundImage.objects.all(), user=user))
    return get_object_or_404(images, id=image_id)


class OriginalNotKept(ApplicationError):
    http_status = 404
    code = "original_not_kept"


def image_original_get(*, user, image_id: int) -> UltrasoundImage:
    """An image of the user's clinic whose uploaded bytes were kept (404 for another clinic's or none)."""
    image = get_object_or_404(scope_to_user(UltrasoundImage.objects.all(), user=user), id=image_id)
    if not image.original:
        raise OriginalNotKept(
            "This image was uploaded before originals were kept; only its display rendition (file/) exists."
        )
    return image


# ---- Cine loops: a clip's analysis, key frames and video ------------------------------------------


class NotACine(ApplicationError):
    http_status = 404
    code = "not_a_cine"


class ClipNotAnalysed(ApplicationError):
    http_status = 409
    code = "not_classified"  # as a still's review before its prediction: the answer is not there yet


class PlaybackNotKept(ApplicationError):
    http_status = 404
    code = "playback_not_kept"


@dataclass(frozen=True)
class ClipFrames:
    """A clip, what its latest job found in each frame, and its timeline (with the key frames)."""

    image: UltrasoundImage
    frames: CineFrames
    timeline: CineTimeline


def _clip_check(image: UltrasoundImage) -> UltrasoundImage:
    if not image.is_cine:
        raise NotACine("This image is a still, not a cine loop: it has no frames or video of its own.")
    return image


def clip_frames_get(*, user, image_id: int) -> ClipFrames:
    """A clip of the user's clinic with its latest per-frame analysis (404 for a still or another clinic's
    image, 409 while it is not analysed)."""
    image = _clip_check(image_get(user=user, image_id=image_id))
    frames, timeline = image_latest_cine_frames(image), cine_timeline(image)
    if frames is None or timeline is None:
        raise ClipNotAnalysed("This clip has no per-frame analysis yet: its job is queued, running or failed.")
    return ClipFrames(image=image, frames=frames, timeline=timeline)


def clip_playback_get(*, user, image_id: int) -> UltrasoundImage:
    """A clip of the user's clinic with its video (404 for a still, another clinic's image or no video)."""
    image = _clip_check(get_object_or_404(scope_to_user(UltrasoundImage.objects.all(), user=user), id=image_id))
    if not image.playback:
        raise PlaybackNotKept("This clip has no video to play.")
    return image


# ---- Web pages: the worklist and an image's history ----------------------------------------------


# The worklist's sortable columns: each name (ascending; "-name" descending) and what it orders by. The id
# comes last in every order, so pages never repeat or skip a study whose sort values tie.
WORKLIST_SORTS: dict[str, tuple[str, ...]] = {
    "patient": ("patient__family_name", "patient__given_name"),
    "mrn": ("patient__mrn",),
    "exam_date": ("exam_date",),
    "ga": ("gestational_age_weeks", "gestational_age_days"),
    "operator": ("operator_sort",),
    "images": ("image_count",),
    "classified": ("classified_count",),
    "awaiting": ("needs_review_count",),
    "unreviewed": ("unreviewed_count",),
    "pending": ("pending_count",),
    "status": ("status",),
}
WORKLIST_DEFAULT_SORT = "-exam_date"


def _study_image_count(images: QuerySet[UltrasoundImage]):
    """How many of a study's (``OuterRef("pk")``) ``images`` there are, as an annotation (0 for none)."""
    count = images.filter(study=OuterRef("pk")).order_by().values("study").annotate(n=Count("id")).values("n")[:1]
    return Coalesce(Subquery(count, output_field=IntegerField()), 0)


def _worklist_order(sort: str) -> list:
    name = sort.removeprefix("-")
    descending = sort.startswith("-")
    fields = WORKLIST_SORTS.get(name, WORKLIST_SORTS["exam_date"])
    order = [F(field).desc(nulls_last=True) if descending else F(field).asc(nulls_last=True) for field in fields]
    return [*order, "-id" if descending else "id"]


def worklist_study_list(*, user, filters: dict | None = None) -> QuerySet[Study]:
    """``study_list`` with the review-state counts of each study's images (excluded images and cine clips, which
    have no label of their own, aside): ``needs_review_count`` whose latest prediction the model flagged and no
    clinician has reviewed yet, ``unreviewed_count`` still only suggested (flagged or not), ``pending_count``
    not classified yet; and ``operator_sort``, the first of its operators by name (the uploaders of its images,
    else whoever opened it), to sort by.

    ``filters``: those of ``study_list``, ``needs_review`` (any awaiting review), ``exam_date_from``/``_to``
    (inclusive) and ``sort`` (a ``WORKLIST_SORTS`` name, "-" first for descending; default newest exam first)."""
    filters = filters or {}
    counted = UltrasoundImage.objects.filter(excluded_reason="", kind=UltrasoundImage.Kind.STILL)
    latest = image_latest_prediction_subquery()
    first_uploader = (
        UltrasoundImage.objects.filter(study=OuterRef("pk"))
        .order_by("uploaded_by__username")
        .values("uploaded_by__username")[:1]
    )
    studies = study_list(user=user, filters=filters).annotate(
        needs_review_count=_study_image_count(counted.filter(image_awaits_review())),
        unreviewed_count=_study_image_count(counted.filter(Exists(latest.reviewed(False)))),
        pending_count=_study_image_count(counted.filter(~Exists(latest))),
        operator_sort=Coalesce(Subquery(first_uploader), F("created_by__username")),
    )
    if filters.get("needs_review"):
        studies = studies.filter(needs_review_count__gt=0)
    if filters.get("exam_date_from"):
        studies = studies.filter(exam_date__gte=filters["exam_date_from"])
    if filters.get("exam_date_to"):
        studies = studies.filter(exam_date__lte=filters["exam_date_to"])
    return studies.order_by(*_worklist_order(filters.get("sort") or WORKLIST_DEFAULT_SORT))


def study_operators(studies: Iterable[Study]) -> dict[int, list[str]]:
    """Who uploaded each study's images (user names, sorted), in one query for a page of the worklist. A study
    without images has none here; the page then names whoever opened it."""
    operators: dict[int, list[str]] = {study.id: [] for study in studies}
    rows = (
        UltrasoundImage.objects.filter(study_id__in=operators)
        .values_list("study_id", "uploaded_by__username")
        .distinct()
        .order_by("study_id", "uploaded_by__username")
    )
    for study_id, username in rows:
        operators[study_id].append(username)
    return operators


# ---- Review states and the study's plane summary -------------------------------------------------
# Until a clinician has confirmed or corrected it, the model's label is a suggestion. A plane counts as
# present ("confirmed") only with a clinician's plane; unflagged suggestions make it "suggested"; flagged
# suggestions, not-a-plane and excluded images never count. A cine clip has no prediction of its own and is
# not counted; its key-frame stills are, like any image.

IMAGE_REVIEW_STATES = ("pending", "suggested", "confirmed", "corrected", "not_a_plane", "excluded")


def image_review_state(image: UltrasoundImage) -> str:
    """One word for where an image stands: excluded, else its latest prediction's review state, else pending.

    Works on images fetched through ``image_list``/``image_get`` (no further queries)."""
    if image.is_excluded:
        return "excluded"
    prediction = image_latest_prediction(image)
    return "pending" if prediction is None else prediction.review_state


@dataclass(frozen=True)
class PlaneRow:
    """One of the four planes in a study: ``images`` are those that make it confirmed (a clinician's plane)
    or, for a suggested plane, its unflagged suggestions; none for a missing plane."""

    label: str
    display: str
    state: str  # confirmed, suggested, missing
    images: list[UltrasoundImage]


@dataclass(frozen=True)
class PlaneSummary:
    planes: list[PlaneRow]
    unreviewed: list[UltrasoundImage]  # suggestions not yet reviewed, flagged or not (excluded ones left out)
    pending: list[UltrasoundImage]  # not classified yet (queued, running or failed), excluded ones left out
    missing: list[str]  # the labels of the planes with state missing

    @property
    def complete(self) -> bool:
        return not (self.unreviewed or self.pending or self.missing)


def plane_summary(images: Iterable[UltrasoundImage]) -> PlaneSummary:
    """The summary of these images (fetched through ``image_list``: no further queries)."""
    confirmed: dict[str, list[UltrasoundImage]] = {plane.value: [] for plane in FetalPlane}
    suggested: dict[str, list[UltrasoundImage]] = {plane.value: [] for plane in FetalPlane}
    unreviewed: list[UltrasoundImage] = []
    pending: list[UltrasoundImage] = []
    for image in images:
        if image.is_cine:
            continue
        state = image_review_state(image)
        if state == "pending":
            pending.append(image)
        elif state in ("confirmed", "corrected"):
            prediction = image_latest_prediction(image)
            confirmed[prediction.reviewed_label].append(image)
        elif state == "suggested":
            unreviewed.append(image)
            prediction = image_latest_prediction(image)
            if not prediction.needs_review:
                suggested[prediction.label].append(image)
    planes = []
    for plane in FetalPlane:
        if confirmed[plane.value]:
            row = PlaneRow(plane.value, plane.label, "confirmed", confirmed[plane.value])
        elif suggested[plane.value]:
            row = PlaneRow(plane.value, plane.label, "suggested", suggested[plane.value])
        else:
            row = PlaneRow(plane.value, plane.label, "missing", [])
        planes.append(row)
    missing = [row.label for row in planes if row.state == "missing"]
    return PlaneSummary(planes=planes, unreviewed=unreviewed, pending=pending, missing=missing)


def study_plane_summary(*, study: Study) -> PlaneSummary:
    """Per plane of a study (already scoped to the user by ``study_get``): confirmed, only suggested or missing,
    with its unreviewed and pending images."""
    images = _images_with_latest_job(UltrasoundImage.objects.filter(study=study)).order_by("uploaded_at", "id")
    return plane_summary(images)


@dataclass(frozen=True)
class HistoryEvent:
    at: datetime
    actor: str
    kind: str  # upload, calibration, job, prediction, review, exclusion
    text: str


def _actor(row, fallback: str) -> str:
    user = row.history_user
    return user.username if user else fallback


def _job_event_text(row, previous) -> str | None:
    status = ClassificationJob.Status
    model = f"{row.model_version.name} v{row.model_version.version}" if row.model_version_id else "no active model"
    if previous is None:
        return f"Queued for classification ({model})."
    if row.status == previous.status:
        return None
    if row.status == status.RUNNING:
        return f"Classification started (attempt {row.attempts})."
    if row.status == status.SUCCEEDED:
        return "Classification finished."
    if row.status == status.FAILED:
        return f"Classification failed: {row.error}"
    if previous.status == status.FAILED:
        return f"Queued again ({model})."
    return f"Queued again after an error: {row.error}"


def _prediction_event(row, previous) -> tuple[str, str] | None:
    if previous is None:
        text = f"Model predicted {plane_display(row.label)} ({row.confidence:.0%})"
        return "prediction", text + (", flagged for review." if row.needs_review else ".")
    fields = ("review_state", "reviewed_label", "not_plane_reason", "review_comment")
    if all(getattr(row, name) == getattr(previous, name) for name in fields):
        return None
    if row.review_state == Prediction.ReviewState.NOT_A_PLANE:
        reason = Prediction.NotPlaneReason(row.not_plane_reason).label.lower()
        text = f"Marked not a standard fetal plane ({reason}; model said {plane_display(row.label)})"
    elif row.review_state == Prediction.ReviewState.CONFIRMED:
        text = f"Confirmed {plane_display(row.reviewed_label)}"
    else:
        text = f"Corrected to {plane_display(row.reviewed_label)} (model said {plane_display(row.label)})"
    return "review", text + (f": “{row.review_comment}”" if row.review_comment else ".")


def _calibration_text(row, *, reason: str = "") -> str:
    """An image's pixel size as its history row has it, with where it came from (and the change's reason)."""
    if row.pixel_size_mm is None:
        return "Not calibrated."
    source = UltrasoundImage.PixelSizeSource(row.pixel_size_source).label
    return f"Pixel size {row.pixel_size_mm:.4g} mm ({source}{f': {reason}' if reason else ''})."


def _image_event(row, previous) -> tuple[str, str] | None:
    """An image's upload (with its pixel size, if any), a change of its pixel size, and a clinician's exclusion of
    it or its inclusion again."""
    if row.history_type == "+":
        text = f"Uploaded {row.original_filename or 'an image'} ({row.format}, {row.width}×{row.height} px)."
        return "upload", text + (f" {_calibration_text(row)}" if row.pixel_size_mm is not None else "")
    if previous is not None and (row.pixel_size_mm, row.pixel_size_source) != (
        previous.pixel_size_mm,
        previous.pixel_size_source,
    ):
        return "calibration", _calibration_text(row, reason=row.history_change_reason or "")
    if previous is None or row.excluded_reason == previous.excluded_reason:
        return None
    if not row.excluded_reason:
        return "exclusion", "Included again."
    label = UltrasoundImage.ExclusionReason(row.excluded_reason).label.lower()
    reason = row.history_change_reason
    said = f": “{reason}”" if reason and not reason.startswith("Excluded:") else "."
    return "exclusion", f"Excluded ({label}){said}"


def _history_rows(image: UltrasoundImage) -> list[tuple[str, type, QuerySet]]:
    """The one reader of an image's recorded changes: (record, model, rows) for the image, its jobs and their
    predictions, each record's rows oldest first. The page's story (``image_history``) and the API's change
    log (``image_change_list``) are two renderings of these rows."""
    sources = [
        ("image", UltrasoundImage, UltrasoundImage.history.filter(id=image.id)),
        ("job", ClassificationJob, ClassificationJob.history.filter(image_id=image.id).select_related("model_version")),
        ("prediction", Prediction, Prediction.history.filter(job__image_id=image.id)),
    ]
    return [
        (record, model, rows.select_related("history_user").order_by("id", "history_date", "history_id"))
        for record, model, rows in sources
    ]


def image_history(*, user, image_id: int) -> list[HistoryEvent]:
    """Upload, job runs, prediction and reviews of one image, oldest first, with who and when."""
    image = image_get(user=user, image_id=image_id)
    (_, _, image_rows), (_, _, job_rows), (_, _, prediction_rows) = _history_rows(image)
    events: list[tuple[datetime, int, HistoryEvent]] = []
    previous = None
    for row in image_rows:
        event = _image_event(row, previous)
        previous = row
        if event:
            kind, text = event
            actor = _actor(row, image.uploaded_by.username if kind == "upload" else "unknown")
            events.append((row.history_date, 0, HistoryEvent(row.history_date, actor, kind, text)))

    previous = None
    for row in job_rows:
        if previous is not None and previous.id != row.id:
            previous = None
        text = _job_event_text(row, previous)
        if text:
            events.append((row.history_date, 1, HistoryEvent(row.history_date, _actor(row, "system"), "job", text)))
        previous = row

    previous = None
    for row in prediction_rows:
        if previous is not None and previous.id != row.id:
            previous = None
        event = _prediction_event(row, previous)
        if event:
            kind, text = event
            fallback = "model" if kind == "prediction" else "unknown"
            events.append((row.history_date, 2, HistoryEvent(row.history_date, _actor(row, fallback), kind, text)))
        previous = row
    events.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in events]


# ---- API: an image's change log ------------------------------------------------------------------

# Storage paths (a clip's video too) stay inside.
_HISTORY_HIDDEN_FIELDS = {"id", "file", "original", "playback", "heatmap", "celery_task_id", "request_id"}


def _history_value(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def _history_changes(row, previous, field_names: list[str]) -> dict:
    changes = {}
    for name in field_names:
        new = _history_value(getattr(row, name))
        old = _history_value(getattr(previous, name)) if previous is not None else None
        if previous is None or new != old:
            changes[name.removesuffix("_id") if name.endswith("_id") else name] = {"from": old, "to": new}
    return changes


def image_change_list(*, user, image_id: int) -> list[dict]:
    """Every recorded change to an image, its jobs and their predictions, oldest first: what
    changed (from → to), who changed it (None for the worker) and when."""
    image = image_get(user=user, image_id=image_id)
    actions = {"+": "created", "~": "changed", "-": "deleted"}
    entries = []
    for rank, (record, model, rows) in enumerate(_history_rows(image)):
        field_names = [f.attname for f in model._meta.concrete_fields if f.name not in _HISTORY_HIDDEN_FIELDS]
        previous_by_id = {}
        for row in rows:
            previous = previous_by_id.get(row.id)
            changes = _history_changes(row, previous, field_names)
            previous_by_id[row.id] = row
            if previous is not None and not changes and row.history_type == "~":
                continue  # a save that changed nothing we show
            entries.append(
                (
                    (row.history_date, rank, row.history_id),
                    {
                        "at": row.history_date,
                        "actor": row.history_user.username if row.history_user else None,
                        "record": record,
                        "record_id": row.id,
                        "action": actions[row.history_type],
                        "changes": changes,
                    },
                )
            )
    entries.sort(key=lambda item: item[0])
    return [entry for _, entry in entries]
