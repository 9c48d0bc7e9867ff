"""The pixel size of an ultrasound image from its DICOM Sequence of Ultrasound Regions (0018,6011).

An ultrasound machine calibrates regions of the screen, not the whole image: the 2-D tissue view has a
physical size per pixel, while a Doppler strip or M-mode trace beside it has seconds and cm/s. So a head
measurement takes its millimetres from the region it was drawn in, and only when that region is calibrated in
centimetres both ways (PhysicalUnitsX/YDirection = 3) with square pixels (PhysicalDeltaX and Y agreeing within
`SQUARE_TOLERANCE`): a perimeter on non-square pixels is not one number times a pixel size.

Which region (DICOM PS3.3 C.8.5.5): the one that contains the measurement's point when one is given (its
ellipse centre, say), else the single 2-D tissue region (RegionSpatialFormat 1, RegionDataType 1). Regions
that overlap or several candidates with different calibrations give no pixel size rather than a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

UNITS_CM = 3  # PhysicalUnitsX/YDirection: 3 = cm
SPATIAL_FORMAT_2D = 1  # RegionSpatialFormat
DATA_TYPE_TISSUE = 1  # RegionDataType
SQUARE_TOLERANCE = 0.01  # relative difference allowed between PhysicalDeltaX and PhysicalDeltaY

# Why there is no pixel size (Calibration.reason), for the "not calibrated" note the app shows.
REASON_OK = "ok"
REASON_NO_REGIONS = "no_regions"
REASON_NO_REGION_AT_POINT = "no_region_at_point"
REASON_NO_TISSUE_REGION = "no_tissue_region"
REASON_AMBIGUOUS = "ambiguous_regions"
REASON_NOT_CM = "units_not_cm"
REASON_NOT_SQUARE = "pixels_not_square"
REASON_BAD_DELTA = "bad_physical_delta"
REASON_BAD_BOUNDS = "bad_region_bounds"  # a region's location is not four integers: the sender is not trusted


@dataclass(frozen=True)
class Calibration:
    """A pixel size in mm, or None with the reason there is none."""

    pixel_size_mm: float | None
    reason: str
    region_bounds: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 (inclusive) of the region used


def dicom_calibration(dataset: Any, *, point: tuple[float, float] | None = None) -> Calibration:
    """The pixel size (mm) at `point` (x, y) or of the single 2-D tissue region, from a pydicom Dataset."""
    regions = list(dataset.get("SequenceOfUltrasoundRegions") or [])
    if not regions:
        return Calibration(None, REASON_NO_REGIONS)
    if any(_malformed_bounds(r) for r in regions):
        return Calibration(None, REASON_BAD_BOUNDS)
    if point is not None:
        candidates = [r for r in regions if _contains(r, point)]
        if not candidates:
            return Calibration(None, REASON_NO_REGION_AT_POINT)
        tissue = [r for r in candidates if _is_2d_tissue(r)]
        candidates = tissue or candidates
    else:
        candidates = [r for r in regions if _is_2d_tissue(r)]
        if not candidates:
            return Calibration(None, REASON_NO_TISSUE_REGION)
    results = [_region_calibration(r) for r in candidates]
    sizes = {round(c.pixel_size_mm, 9) for c in results if c.pixel_size_mm is not None}
    if len(results) > 1 and (len(sizes) != 1 or any(c.pixel_size_mm is None for c in results)):
        return Calibration(None, REASON_AMBIGUOUS)
    return results[0]


def _region_calibration(region: Any) -> Calibration:
    bounds = _bounds(region)
    units = (region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection"))
    if units != (UNITS_CM, UNITS_CM):
        return Calibration(None, REASON_NOT_CM, bounds)
    try:
        dx, dy = float(region.get("PhysicalDeltaX")), float(region.get("PhysicalDeltaY"))
    except (TypeError, ValueError):
        return Calibration(None, REASON_BAD_DELTA, bounds)
    if not (math.isfinite(dx) and math.isfinite(dy) and dx > 0 and dy > 0):
        return Calibration(None, REASON_BAD_DELTA, bounds)
    if abs(dx - dy) > SQUARE_TOLERANCE * max(dx, dy):
        return Calibration(None, REASON_NOT_SQUARE, bounds)
    return Calibration((dx + dy) / 2 * 10.0, REASON_OK, bounds)


def _is_2d_tissue(region: Any) -> bool:
    return region.get("RegionSpatialFormat") == SPATIAL_FORMAT_2D and region.get("RegionDataType") == DATA_TYPE_TISSUE


def _bounds(region: Any) -> tuple[int, int, int, int] | None:
    values = [region.get(k) for k in ("RegionLocationMinX0", "RegionLocationMinY0")] + [
        region.get(k) for k in ("RegionLocationMaxX1", "RegionLocationMaxY1")
    ]
    if any(v is None for v in values):
        return None
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def _malformed_bounds(region: Any) -> bool:
    try:
        _bounds(region)
    except (TypeError, ValueError):  # e.g. two values for one bound, or text
        return True
    return False


def _contains(region: Any, point: tuple[float, float]) -> bool:
    bounds = _bounds(region)
    if bounds is None:
        return False
    x0, y0, x1, y1 = bounds
    return x0 <= point[0] <= x1 and y0 <= point[1] <= y1
