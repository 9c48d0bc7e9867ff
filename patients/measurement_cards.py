"""What an image card on the study page shows of the head measurement (issue 21): the latest measurement job's
state, the current ellipse as SVG geometry in image pixels (the overlay's viewBox is the image's own size, so the
browser scales it with the image and no script is needed to draw it), HC/BPD/OFD in millimetres or marked
"not calibrated" in pixels, the flags in words, the review and its history.

Everything here reads the image's ``measurement_jobs`` (through ``.all()``) and measurements (through
``biometry.selectors.image_measurements``): from the study page's prefetch (patients.selectors.image_list) at no
query, or loaded for one card.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from biometry.ml.ellipse import Ellipse
from biometry.models import Measurement, MeasurementJob
from biometry.presentation import NOT_CALIBRATED, gestational_summary
from biometry.selectors import image_measurements
from patients.models import Study

REVIEW_PERMISSION = "biometry.review_measurement"
CALIBRATE_PERMISSION = "patients.add_ultrasoundimage"  # whoever may add images to a study may calibrate them

# The flags a measurement may carry (biometry.ml.ellipse and biometry.services), said plainly on the card.
FLAG_REASONS = {
    "empty": "no skull outline was found in the image",
    "tiny": "the skull found is too small to be a fetal head",
    "border": "the skull is cut by the image border",
    "poor_fit": "the outline found is not a good ellipse",
    "hc_implausible": "the head circumference is outside 50–400 mm, implausible at any fetal age",
    "not_brain": "the image is no longer classified as a brain plane",
    "plane_uncertain": "the model was unsure that this is a brain plane, and no clinician has confirmed it yet",
}
CALIBRATION_SOURCES = {
    "dicom": "from the DICOM file's ultrasound region",
    "upload": "given with the upload",
    "drawn": "drawn on the image",
}


@dataclass(frozen=True)
class EllipseShape:
    """An ellipse as the SVG draws it: centre, radii and rotation in image pixels and degrees, and the four axis
    ends (OFD, OFD, BPD, BPD) that the adjust handles sit on."""

    cx: float
    cy: float
    rx: float
    ry: float
    angle_deg: float
    ends: tuple[tuple[float, float], ...]

    @property
    def ends_value(self) -> str:
        """The ends as the adjust form posts them: "x,y x,y x,y x,y"."""
        return " ".join(f"{x:.2f},{y:.2f}" for x, y in self.ends)


def _shape(values: tuple) -> EllipseShape | None:
    """(cx, cy, semi_major, semi_minor, angle_deg), any of them None when there is no ellipse."""
    if None in values:
        return None
    cx, cy, semi_major, semi_minor, angle_deg = values
    ellipse = Ellipse(cx, cy, semi_major, semi_minor, math.radians(angle_deg))
    ends = tuple((round(x, 2), round(y, 2)) for x, y in ellipse.axis_ends())
    return EllipseShape(round(cx, 2), round(cy, 2), round(semi_major, 2), round(semi_minor, 2), angle_deg, ends)


def current_shape(measurement: Measurement) -> EllipseShape | None:
    m = measurement
    return _shape((m.center_x, m.center_y, m.semi_major, m.semi_minor, m.angle_deg))


def model_shape(measurement: Measurement) -> EllipseShape | None:
    e = measurement.model_ellipse or {}
    return _shape(tuple(e.get(key) for key in ("cx", "cy", "semi_major", "semi_minor", "angle_deg")))


def latest_job(image) -> MeasurementJob | None:
    jobs = list(image.measurement_jobs.all())
    return max(jobs, key=lambda job: (job.queued_at, job.id)) if jobs else None


def latest_measurement(image) -> Measurement | None:
    measurements = image_measurements(image)
    return max(measurements, key=lambda m: m.id) if measurements else None


def measurement_version(image) -> str:
    """The part of a card's ``data-version`` that the measurement decides: the study page's poll replaces the card
    when a job moves on, a measurement appears or is reviewed, or the image is calibrated."""
    job, measurement = latest_job(image), latest_measurement(image)
    if job is None and measurement is None:
        return ""
    parts = [f"{job.id}{job.status}{job.attempts}" if job else ""]
    if measurement is not None:
        reviewed = measurement.reviewed_at.isoformat() if measurement.reviewed_at else ""
        parts += [str(measurement.id), measurement.review_state, reviewed, str(measurement.pixel_size_mm)]
    parts.append(f"{image.pixel_size_mm}{image.pixel_size_source}")
    return ":m" + ":".join(parts)


def _figure(mm: float | None, px: float | None) -> dict | None:
    if px is None:
        return None
    if mm is not None:
        return {"value": f"{mm:.1f}", "unit": "mm", "calibrated": True}
    return {"value": f"{px:.1f}", "unit": "px", "calibrated": False}


def _growth(measurement: Measurement, study) -> dict:
    """biometry.presentation's summary, with the centile as words: one decimal, and never "0.0" or "100.0" for the
    tails the standard's normal distribution reaches."""
    growth = gestational_summary(measurement, study)
    centile = growth["centile"]
    if centile is None:
        text = ""
    elif centile < 0.1:
        text = "below 0.1"
    elif centile > 99.9:
        text = "above 99.9"
    else:
        text = f"{centile:.1f}"
    return {**growth, "centile_text": text}


def calibration_context(image) -> dict:
    """The image's pixel size and where it came from; calibrating by drawing is refused over a DICOM's own."""
    return {
        "pixel_size_mm": f"{image.pixel_size_mm:.4f}" if image.pixel_size_mm else "",
        "source": CALIBRATION_SOURCES.get(image.pixel_size_source, ""),
        "can_draw": image.pixel_size_source != "dicom",
    }


def measure_context(image, *, user) -> dict | None:
    """The card's measurement section, or None when the image was never sent to be measured. What ``user`` may do
    decides which controls show (the services decide again); a signed-off study's cards show none."""
    job, measurement = latest_job(image), latest_measurement(image)
    if job is None and measurement is None:
        return None
    is_open = image.study.status == Study.Status.OPEN
    calibration = calibration_context(image)
    context = {
        "job": job,
        "measuring": job is not None and job.status in (MeasurementJob.Status.QUEUED, MeasurementJob.Status.RUNNING),
        "failed": job is not None and job.status == MeasurementJob.Status.FAILED,
        "measurement": measurement,
        "calibration": calibration,
        "can_review": is_open and user.has_perm(REVIEW_PERMISSION),
        "can_calibrate": is_open and calibration["can_draw"] and user.has_perm(CALIBRATE_PERMISSION),
        "width": image.width,
        "height": image.height,
        # Handles a finger or a mouse can take, whatever the image's size: about 1/60 of its long side.
        "handle_r": round(max(image.width or 0, image.height or 0, 240) / 60, 1),
    }
    if measurement is None:
        return context
    return {
        **context,
        "shape": current_shape(measurement),
        "model_shape": model_shape(measurement),
        "figures": [
            ("HC", "head circumference", _figure(measurement.hc_mm, measurement.hc_px)),
            ("BPD", "biparietal diameter", _figure(measurement.bpd_mm, measurement.bpd_px)),
            ("OFD", "occipito-frontal diameter", _figure(measurement.ofd_mm, measurement.ofd_px)),
        ],
        "flags": [FLAG_REASONS.get(flag, flag.replace("_", " ")) for flag in measurement.flags or []],
        "growth": _growth(measurement, image.study),
        "not_calibrated": NOT_CALIBRATED,
        "model_version": measurement.job.model_version,
    }


# ---- The measurement's history: the model's ellipse, then each change (who, when, what) --------------------

REVIEW_WORDS = {
    "accept": "Accepted",
    "adjust": "Adjusted (axis ends moved)",
    "redraw": "Redrawn (three points)",
    "reject": "Rejected",
}
_ELLIPSE_FIELDS = ("center_x", "center_y", "semi_major", "semi_minor", "angle_deg")


def _hc_text(row) -> str:
    if row.hc_mm is not None:
        return f"HC {row.hc_mm:.1f} mm"
    return f"HC {row.hc_px:.1f} px (not calibrated)" if row.hc_px is not None else "no ellipse"


def _history_text(row, previous) -> str:
    if previous is None:
        return f"Measured by the model: {_hc_text(row)}"
    said = []
    if any(getattr(row, name) != getattr(previous, name) for name in _ELLIPSE_FIELDS):
        said.append(f"ellipse changed: {_hc_text(previous)} → {_hc_text(row)}")
    if row.review_state != previous.review_state or row.reviewed_at != previous.reviewed_at:
        action = (row.history_change_reason or "").removeprefix("review: ")  # biometry.services' reason
        said.insert(0, REVIEW_WORDS.get(action) or Measurement.ReviewState(row.review_state).label)
    if row.pixel_size_mm != previous.pixel_size_mm:
        source = CALIBRATION_SOURCES.get(row.calibration_source, "")
        said.append(f"pixel size {row.pixel_size_mm or '—'} mm {source}".strip() + f": {_hc_text(row)}")
    if row.flags != previous.flags:
        said.append("flags: " + (", ".join(row.flags) if row.flags else "none"))
    if row.review_comment and row.review_comment != previous.review_comment:
        said.append(f"“{row.review_comment}”")
    return "; ".join(said)


def measurement_history(measurement: Measurement) -> list[dict]:
    """Oldest first: the model's ellipse, then each recorded change that the card would show differently."""
    rows = measurement.history.select_related("history_user").order_by("history_date", "history_id")
    events, previous = [], None
    for row in rows:
        text = _history_text(row, previous)
        if text:
            actor = row.history_user.username if row.history_user else ("model" if previous is None else "system")
            events.append({"at": row.history_date, "actor": actor, "text": text})
        previous = row
    return events
