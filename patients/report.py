"""The study report: one A4 page of PDF, rendered on the server by WeasyPrint from ``patients/report.html``.

It is made only for a signed-off study, from what a clinician has confirmed: the plane table of
``selectors.study_plane_summary`` with the confirmed images as small thumbnails, who reviewed each and who
signed. Nothing is fetched while rendering: the thumbnails are made here from this study's stored files and
embedded as ``data:`` URIs, the stylesheet is in the template, and the only files WeasyPrint may open are the
DejaVu fonts of Debian's fonts-dejavu-core (``REPORT_FONTS``); any other URL is refused (``_url_fetcher``).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone
from PIL import Image

from biometry.growth_points import GrowthChart, study_growth_chart
from biometry.models import Measurement
from biometry.presentation import CENTILE_SOURCE, GA_SOURCE, gestational_summary
from biometry.selectors import image_measurements
from classifier.selectors import image_latest_job, image_latest_prediction
from patients import selectors
from patients.models import Study, UltrasoundImage
from patients.services import StudyNotSigned

# Debian's fonts-dejavu-core (.ci/lib.sh installs it): the report names them by path, so it looks the same on
# every machine and embeds only these.
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
REPORT_FONTS = {"regular": FONT_DIR / "DejaVuSans.ttf", "bold": FONT_DIR / "DejaVuSans-Bold.ttf"}
REPORT_MEDIA_TYPE = "application/pdf"
# A thumbnail's longest side in pixels: sharp at the 35 mm it is printed at (about 260 dpi).
THUMBNAIL_PX = 360
# The most thumbnails shown for one plane; the rest are counted, so that a typical study stays on one page.
THUMBNAILS_PER_PLANE = 4


@dataclass(frozen=True)
class ReportImage:
    image: UltrasoundImage
    thumbnail: str  # a data: URI
    label: str  # the plane display name the clinician set
    corrected_from: str  # the model's plane display name when the clinician corrected it, else ""
    reviewed_by: str
    reviewed_at: datetime | None


@dataclass(frozen=True)
class ReportPlane:
    label: str
    display: str
    state: str  # confirmed, suggested, missing
    images: list[ReportImage]  # confirmed planes only, at most THUMBNAILS_PER_PLANE
    more: int  # confirmed images beyond those shown
    suggested: int  # a suggested plane's unconfirmed images


@dataclass(frozen=True)
class ReportMeasurement:
    """One head measurement of the study: the figures only when a clinician accepted or adjusted it."""

    measurement: Measurement
    state: str  # the review state's display name
    reviewed_by: str
    reported: bool  # accepted or adjusted: its figures are the study's
    growth: dict  # biometry.presentation.gestational_summary


@dataclass(frozen=True)
class ReportBiometry:
    measurements: list[ReportMeasurement]
    chart: GrowthChart | None
    models: list[str]  # the segmentation models that measured
    ga_source: str = GA_SOURCE
    centile_source: str = CENTILE_SOURCE


def study_report_pdf(*, study: Study, user) -> bytes:
    """The signed-off study's report as PDF bytes. 404 when the user may not read the study, 409 before sign-off."""
    study = selectors.study_get(user=user, study_id=study.id)
    if study.status != Study.Status.COMPLETED or study.signed_by_id is None:
        raise StudyNotSigned("The report is made once a clinician has signed the study off.")
    html = render_to_string("patients/report.html", _report_context(study=study, user=user))
    return _weasyprint().HTML(string=html, url_fetcher=_url_fetcher()).write_pdf()


def _weasyprint():
    """WeasyPrint, imported on first use (it loads Pango, which only the report needs).

    Importing it sets Pillow's process-wide ``ImageFile.LOAD_TRUNCATED_IMAGES`` to True, after which every
    upload in this process would accept a truncated image as whole. The upload check relies on it being False,
    so it is put back at once; the report's own images are ours, made whole from stored files."""
    import weasyprint
    from PIL import ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    return weasyprint


def report_response(pdf: bytes, *, study: Study) -> HttpResponse:
    """The report as an attachment, for the page and the API alike. The file name holds no patient data (it
    stays in download folders and lists); Cache-Control is left to the middleware: ``no-store``, as for every
    answer with patient data (a reopened and re-signed study has a new report)."""
    response = HttpResponse(pdf, content_type=REPORT_MEDIA_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{report_filename(study)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def report_filename(study: Study) -> str:
    return f"study-{study.id}-report.pdf"


def _report_context(*, study: Study, user) -> dict:
    summary = selectors.study_plane_summary(study=study)
    images = list(selectors.image_list(user=user, study_id=study.id))
    states = [selectors.image_review_state(image) for image in images if not image.is_cine]
    models = sorted(
        {
            f"{job.model_version.name} v{job.model_version.version}"
            for image in images
            if not image.is_excluded
            and (job := image_latest_job(image)) is not None
            and job.model_version_id is not None
            and image_latest_prediction(image) is not None
        }
    )
    return {
        "study": study,
        "patient": study.patient,
        "clinic": study.patient.clinic,
        "planes": [_report_plane(row) for row in summary.planes],
        "excluded": states.count("excluded"),
        "not_a_plane": states.count("not_a_plane"),
        "unreviewed": len(summary.unreviewed),
        "pending": len(summary.pending),
        "models": models,
        "signed_by": _person(study.signed_by),
        "signed_at": study.signed_at,
        "generated_at": timezone.now(),
        "fonts": {weight: path.as_uri() for weight, path in REPORT_FONTS.items()},
        "biometry": _report_biometry(study=study, user=user, images=images),
    }


def _report_biometry(*, study: Study, user, images: list[UltrasoundImage]) -> ReportBiometry | None:
    """The study's head measurements (on images not excluded) and its growth chart; None when it has neither."""
    reviewed = (Measurement.ReviewState.ACCEPTED, Measurement.ReviewState.ADJUSTED)
    rows = [
        ReportMeasurement(
            measurement=measurement,
            state=measurement.get_review_state_display(),
            reviewed_by=_person(measurement.reviewed_by),
            reported=measurement.review_state in reviewed,
            growth=gestational_summary(measurement, study),
        )
        for image in images
        if not image.is_excluded and not image.is_cine
        for measurement in image_measurements(image)
    ]
    chart = study_growth_chart(user=user, study=study)
    if not rows and chart is None:
        return None
    models = sorted({row.measurement.job.model_version for row in rows})
    return ReportBiometry(measurements=rows, chart=chart, models=models)


def _report_plane(row: selectors.PlaneRow) -> ReportPlane:
    if row.state != "confirmed":
        suggested = len(row.images) if row.state == "suggested" else 0
        return ReportPlane(row.label, row.display, row.state, images=[], more=0, suggested=suggested)
    shown = [_report_image(image) for image in row.images[:THUMBNAILS_PER_PLANE]]
    return ReportPlane(row.label, row.display, row.state, images=shown, more=len(row.images) - len(shown), suggested=0)


def _report_image(image: UltrasoundImage) -> ReportImage:
    prediction = image_latest_prediction(image)
    corrected = prediction.review_state == prediction.ReviewState.CORRECTED
    return ReportImage(
        image=image,
        thumbnail=_thumbnail_uri(image),
        label=prediction.get_reviewed_label_display(),
        corrected_from=prediction.get_label_display() if corrected else "",
        reviewed_by=_person(prediction.reviewed_by),
        reviewed_at=prediction.reviewed_at,
    )


def _person(user) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.username


def _thumbnail_uri(image: UltrasoundImage) -> str:
    """The image's display rendition, scaled down and re-encoded as JPEG, as a data: URI (read from storage)."""
    with image.file.open("rb") as handle, Image.open(handle) as decoded:
        decoded.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        picture = decoded.convert("L" if decoded.mode in ("L", "I;16", "I") else "RGB")
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _url_fetcher():
    """What WeasyPrint may read while rendering: ``data:`` URIs and the report's fonts, never the network or
    another file. A refused URL raises, which WeasyPrint logs as a warning and renders without."""
    weasyprint = _weasyprint()

    allowed_files = {path.as_uri() for path in REPORT_FONTS.values()}

    class ReportUrlFetcher(weasyprint.URLFetcher):
        def fetch(self, url, headers=None):
            if url.startswith("data:") or url in allowed_files:
                return super().fetch(url, headers)
            raise ValueError(f"The report reads no other resource: {url[:80]}")

    return ReportUrlFetcher(allowed_protocols=("data", "file"), allow_redirects=False)
