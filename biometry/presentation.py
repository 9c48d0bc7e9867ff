"""What a head measurement means for its study: gestational age from HC, and the HC's z-score and centile for
the study's gestational age (INTERGROWTH-21st, biometry/ml/growth.py; docs/biometry.md).

Issue 21: only from a calibrated HC a clinician accepted (or adjusted) on an image that is still a brain plane;
otherwise each figure is None and its ``*_reason`` says why, so the API and the pages never show a figure from a
guess nor leave it blank without saying why. The API, the study page and the report all read this one dict.
"""

from __future__ import annotations

import math

from biometry.ml.ellipse import Ellipse
from biometry.ml.growth import OutsideStandard, ga_from_hc_days, hc_centile, hc_zscore, weeks_and_days
from biometry.models import Measurement

NOT_CALIBRATED = "not calibrated"  # what the pages and the API say of a measurement without a pixel size
GA_SOURCE = "INTERGROWTH-21st HC dating, Papageorghiou et al., Ultrasound Obstet Gynecol 2016 (14+0 to 25+6 weeks)"
CENTILE_SOURCE = "INTERGROWTH-21st fetal HC standard, Papageorghiou et al., Lancet 2014 (14+0 to 40+0 weeks)"


def unusable_reason(measurement: Measurement) -> str:
    """Why this HC may not date a pregnancy or go on a chart ("" when it may)."""
    State = Measurement.ReviewState
    if measurement.hc_px is None:
        return "no ellipse was found"
    if "not_brain" in measurement.flags:
        return "the image is no longer a brain plane"
    if measurement.hc_mm is None:
        return f"{NOT_CALIBRATED}: the image has no pixel size"
    if measurement.review_state == State.REJECTED:
        return "a clinician rejected the measurement"
    if measurement.review_state not in (State.ACCEPTED, State.ADJUSTED):
        return "not reviewed yet: a clinician must accept or adjust the ellipse"
    return ""


def chartable(measurement: Measurement) -> bool:
    return not unusable_reason(measurement)


def study_ga_days(study) -> int | None:
    if study.gestational_age_weeks is None:
        return None
    return study.gestational_age_weeks * 7 + (study.gestational_age_days or 0)


def gestational_summary(measurement: Measurement, study) -> dict:
    """``calibrated``; ``ga_from_hc_days`` and ``ga_from_hc`` (weeks+days) or None with ``ga_reason``; the
    study's GA; ``zscore`` and ``centile`` for it or None with ``centile_reason``; the sources."""
    reason = unusable_reason(measurement)
    summary = {
        "calibrated": measurement.is_calibrated,
        "hc_mm": measurement.hc_mm if not reason else None,
        "ga_from_hc_days": None,
        "ga_from_hc": None,
        "ga_reason": reason,
        "study_ga_days": study_ga_days(study),
        "zscore": None,
        "centile": None,
        "centile_reason": reason,
        "ga_source": GA_SOURCE,
        "centile_source": CENTILE_SOURCE,
    }
    if reason:
        return summary
    try:
        ga = ga_from_hc_days(measurement.hc_mm)
        summary.update(ga_from_hc_days=round(ga, 1), ga_from_hc=weeks_and_days(ga))
    except OutsideStandard as error:
        summary["ga_reason"] = str(error)
    if summary["study_ga_days"] is None:
        summary["centile_reason"] = "the study has no gestational age"
        return summary
    try:
        zscore = hc_zscore(hc_mm=measurement.hc_mm, ga_days=summary["study_ga_days"])
        centile = hc_centile(hc_mm=measurement.hc_mm, ga_days=summary["study_ga_days"])
        summary.update(zscore=round(zscore, 2), centile=round(centile, 1))
    except OutsideStandard as error:
        summary["centile_reason"] = str(error)
    return summary


# ---- The stored ellipse ---------------------------------------------------------------------------


def ellipse_json(ellipse: Ellipse) -> dict:
    """The stored form (``Measurement.model_ellipse``): angle in degrees from +x towards +y, in [0, 180)."""
    return {
        "cx": ellipse.cx,
        "cy": ellipse.cy,
        "semi_major": ellipse.semi_major,
        "semi_minor": ellipse.semi_minor,
        "angle_deg": math.degrees(ellipse.angle) % 180.0,
    }


def current_ellipse_json(measurement: Measurement) -> dict | None:
    if measurement.semi_major is None:
        return None
    return {
        "cx": measurement.center_x,
        "cy": measurement.center_y,
        "semi_major": measurement.semi_major,
        "semi_minor": measurement.semi_minor,
        "angle_deg": measurement.angle_deg,
    }
