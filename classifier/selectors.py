"""Reads of jobs, predictions and model versions, scoped to the user's clinic."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Prefetch, QuerySet, Subquery
from django.shortcuts import get_object_or_404

from classifier.models import CineFrames, ClassificationJob, ModelVersion, Prediction, WebhookDelivery
from fetalsite.accounts.selectors import scope_to_user


def job_get(*, user, job_id: int) -> ClassificationJob:
    jobs = scope_to_user(ClassificationJob.objects.select_related("model_version"), user=user)
    return get_object_or_404(jobs, id=job_id)


def prediction_get(*, user, prediction_id: int) -> Prediction:
    predictions = scope_to_user(
        Prediction.objects.select_related("job", "job__model_version", "job__image", "reviewed_by"), user=user
    )
    return get_object_or_404(predictions, id=prediction_id)


def job_request_id(*, job_id: int) -> str:
    """The request id a job was created under, for the worker's log scope ("" when none or gone)."""
    return ClassificationJob.objects.filter(id=job_id).values_list("request_id", flat=True).first() or ""


def prediction_job_request_id(*, prediction_id: int) -> tuple[int | None, str]:
    """(job id, request id) of a prediction's job, for the heatmap task's log scope ((None, "") when gone)."""
    row = Prediction.objects.filter(id=prediction_id).values_list("job_id", "job__request_id").first()
    return row or (None, "")


def webhook_delivery_request_id(*, delivery_id: int) -> str:
    """The request id a webhook delivery was recorded under ("" when none or gone)."""
    return WebhookDelivery.objects.filter(id=delivery_id).values_list("request_id", flat=True).first() or ""


# ---- An image's latest job and prediction, and whether it awaits review -------------------------
# The one definition that the pages, the image API, the list filters, the worklist and the review service
# share: an image's latest job is its newest (ClassificationJobQuerySet.newest_first), and its latest
# prediction is that job's, so it has none while its newest job is queued, running or failed. It awaits
# review when that prediction was flagged by the model and no clinician has reviewed it yet.
# The images are the patients app's; this app names them only through the ORM (``image``, ``jobs``).

_JOBS_NEWEST_FIRST = "jobs_newest_first"


def latest_jobs_prefetch() -> Prefetch:
    """For an image queryset: each image's jobs (with model, prediction, reviewer and a clip's per-frame
    analysis), newest first, so that ``image_latest_job`` and ``image_latest_prediction`` need no query of their
    own."""
    jobs = ClassificationJob.objects.select_related(
        "model_version", "prediction", "prediction__reviewed_by", "cine_frames"
    )
    return Prefetch("jobs", queryset=jobs.newest_first(), to_attr=_JOBS_NEWEST_FIRST)


def image_latest_job(image) -> ClassificationJob | None:
    jobs = getattr(image, _JOBS_NEWEST_FIRST, None)
    if jobs is None:
        newest = ClassificationJob.objects.filter(image=image).newest_first()
        jobs = list(newest.select_related("model_version", "prediction", "prediction__reviewed_by")[:1])
    return jobs[0] if jobs else None


def job_prediction(job: ClassificationJob | None) -> Prediction | None:
    """The job's prediction, or None, without a query when it was select_related."""
    if job is None:
        return None
    try:
        return job.prediction
    except Prediction.DoesNotExist:
        return None


def image_latest_prediction(image) -> Prediction | None:
    return job_prediction(image_latest_job(image))


def image_latest_prediction_subquery() -> QuerySet[Prediction]:
    """The same latest prediction inside a query over images (``OuterRef("pk")`` is the image), for filters
    and annotations: ``Subquery(image_latest_prediction_subquery().values("label")[:1])``."""
    newest_job = ClassificationJob.objects.filter(image=OuterRef(OuterRef("pk"))).newest_first()
    return Prediction.objects.filter(job_id=Subquery(newest_job.values("id")[:1]))


def image_awaits_review() -> Exists:
    """True for an image (``OuterRef("pk")``) whose latest prediction awaits a clinician's review."""
    return Exists(image_latest_prediction_subquery().awaiting_review())


# ---- A cine loop's timeline ----------------------------------------------------------------------
# What the study page draws under a clip (and the API may give): its frames as runs of one predicted plane,
# flagged or not, and its key frames with the stills made of them. Read from the latest job's CineFrames.


@dataclass(frozen=True)
class CineSegment:
    """Frames ``start`` to ``end`` (exclusive) all predicted ``label`` and all flagged, or all not."""

    start: int
    end: int
    label: str
    flagged: bool


@dataclass(frozen=True)
class CineKeyFrame:
    """The best frame of a plane; ``image_id`` is the still made of it (None until it is stored)."""

    frame_index: int
    label: str
    confidence: float
    image_id: int | None


@dataclass(frozen=True)
class CineTimeline:
    frame_count: int
    frame_rate: float | None
    segments: tuple[CineSegment, ...]
    key_frames: tuple[CineKeyFrame, ...]

    def plane_frames(self) -> dict[str, tuple[int, int]]:
        """Per predicted plane, in first-seen order: (frames, of which flagged)."""
        counts: dict[str, tuple[int, int]] = {}
        for segment in self.segments:
            frames, flagged = counts.get(segment.label, (0, 0))
            length = segment.end - segment.start
            counts[segment.label] = (frames + length, flagged + (length if segment.flagged else 0))
        return counts


def frame_runs(labels: list[str], flags: list[bool]) -> tuple[CineSegment, ...]:
    """Consecutive frames with the same plane and the same flag, as segments (a flag change starts a new one)."""
    segments: list[CineSegment] = []
    start = 0
    for index in range(1, len(labels) + 1):
        if index == len(labels) or (labels[index], flags[index]) != (labels[start], flags[start]):
            segments.append(CineSegment(start=start, end=index, label=labels[start], flagged=flags[start]))
            start = index
    return tuple(segments)


def image_latest_cine_frames(image) -> CineFrames | None:
    """A clip's per-frame analysis by its latest job; None for a still, or while that job has none (no query for
    an image fetched with ``latest_jobs_prefetch``)."""
    if not getattr(image, "is_cine", False):
        return None
    job = image_latest_job(image)
    if job is None:
        return None
    try:
        return job.cine_frames
    except CineFrames.DoesNotExist:
        return None


def cine_timeline(image) -> CineTimeline | None:
    """The clip's timeline from its latest job, or None for a still, or while that job has not analysed it.

    The key frames' stills are the clip's ``key_frames`` (prefetch them for a list of clips)."""
    frames = image_latest_cine_frames(image)
    if frames is None:
        return None
    flags = frames.flag_list()
    stills = {still.clip_frame_index: still.id for still in image.key_frames.all()}
    key_frames = sorted(
        (
            CineKeyFrame(
                frame_index=int(row["frame_index"]),
                label=row["label"],
                confidence=float(row["confidence"]),
                image_id=stills.get(int(row["frame_index"])),
            )
            for row in frames.key_frames
        ),
        key=lambda key_frame: key_frame.frame_index,
    )
    return CineTimeline(
        frame_count=frames.frame_count,
        frame_rate=image.frame_rate,
        segments=frame_runs(frames.frame_labels(), flags),
        key_frames=tuple(key_frames),
    )


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.order_by("-registered_at", "-id")


def active_model_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def model_card_figures(*, model_version: ModelVersion) -> dict:
    """The figures of a model card that the model page shows, tolerant of cards that lack some."""
    from classifier.labels import plane_display

    card = model_version.card or {}
    metrics = model_version.metrics or card.get("metrics") or {}
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
    ci = test.get("ci") or {}
    per_class = test.get("per_class") or {}
    data = card.get("data") or {}
    return {
        "intended_use": card.get("intended_use", ""),
        "architecture": card.get("architecture", ""),
        "preprocessing": card.get("preprocessing", ""),
        "classes": [plane_display(label) for label in model_version.class_labels],
        "test": {
            "accuracy": test.get("accuracy"),
            "accuracy_ci": ci.get("accuracy"),
            "macro_f1": test.get("macro_f1"),
            "macro_f1_ci": ci.get("macro_f1"),
            "n": test.get("n"),
        }
        if test
        else None,
        "per_class": [
            {"name": plane_display(label), **row} for label, row in per_class.items() if isinstance(row, dict)
        ],
        "data_counts": [
            {"split": split, "source": source, "labels": labels}
            for split, sources in (data.get("counts") or {}).items()
            for source, labels in sources.items()
        ],
        "citations": data.get("citations") or [],
        "limits": card.get("limits") or [],
        "bar_misses": (metrics.get("bar") or {}).get("misses") or [],
        "other_metrics": {} if test else metrics,
    }


# ---- API lists ----------------------------------------------------------------------------------


def job_list(*, user) -> QuerySet[ClassificationJob]:
    jobs = scope_to_user(ClassificationJob.objects.select_related("model_version"), user=user)
    return jobs.order_by("-queued_at", "-id")


def prediction_list(*, user) -> QuerySet[Prediction]:
    predictions = scope_to_user(
        Prediction.objects.select_related("job", "job__model_version", "reviewed_by"), user=user
    )
    return predictions.order_by("-created_at", "-id")


def model_version_get(*, key: str) -> ModelVersion:
    """A version by ``name:version``, the string jobs and predictions show (404 if unknown)."""
    name, _, version = key.rpartition(":")
    return get_object_or_404(ModelVersion.objects.all(), name=name, version=version)
