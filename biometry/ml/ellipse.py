"""A robust ellipse fit to a binary skull mask, and head circumference, BPD and OFD from it.

Coordinates are image pixels: x is the column, y the row (downwards), and a pixel's centre sits at integer
(x, y). An ellipse's `angle` is its major axis's direction from +x towards +y, in [0, pi).

The fit (`ellipse_fit`) takes the mask's outer contour only: for every row the leftmost and rightmost mask
pixel, for every column the topmost and bottommost. The boundary crossing lies between such a pixel and its
outside neighbour, so the point half a pixel outwards is an unbiased estimate of it (error within +-0.5 px
along the scan, zero on average), and holes or inner edges of the mask never enter. Points on the image's
edge are left out (there the mask was cut, not the skull). A direct least-squares ellipse fit (Fitzgibbon,
Pilu and Fisher 1999, in the numerically stable form of Halir and Flusser 1998) on those points is refitted
without outliers (Sampson distance over 3 robust sigmas, never under `_MIN_TOLERANCE_PX`) until the inliers
stop changing.

Conventions (docs/biometry.md): HC is the fitted ellipse's perimeter (Ramanujan's second approximation);
OFD is its major axis and BPD its minor axis, both outer edge to outer edge, because the HC18 annotation
(and so the segmentation learnt from it) is the outer contour of the skull. Clinical BPD is usually outer
to inner (or centre to centre) and so a few millimetres shorter than the BPD reported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A contour point this close to the ellipse is never an outlier: the contour's own quantisation is +-0.5 px.
_MIN_TOLERANCE_PX = 1.0
_MAX_REFITS = 6
_MIN_POINTS = 20

# Flag thresholds: defaults that an HC18-sized image (800x540 px) needs; a caller may pass its own.
DEFAULT_MIN_AREA_PX = 2000
DEFAULT_MIN_IOU = 0.95
DEFAULT_MIN_INLIER_FRACTION = 0.8
# Issue 21: an HC outside this range (mm) is implausible for a fetus at any age the standards cover.
PLAUSIBLE_HC_MM = (50.0, 400.0)

FLAG_EMPTY = "empty"
FLAG_TINY = "tiny"
FLAG_BORDER = "border"
FLAG_POOR_FIT = "poor_fit"
FLAG_HC_IMPLAUSIBLE = "hc_implausible"


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in pixel coordinates; semi_major >= semi_minor."""

    cx: float
    cy: float
    semi_major: float
    semi_minor: float
    angle: float

    def perimeter(self) -> float:
        """Ramanujan's second approximation: relative error below 1e-9 for a head's eccentricity."""
        a, b = self.semi_major, self.semi_minor
        h = ((a - b) / (a + b)) ** 2
        return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))

    def raster(self, shape: tuple[int, int]) -> np.ndarray:
        """The filled ellipse as a boolean mask of `shape` (rows, columns): pixels whose centre is inside."""
        return self._inside(0, shape[0], 0, shape[1])

    def _inside(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        ys, xs = np.ogrid[row0:row1, col0:col1]
        dx, dy = xs - self.cx, ys - self.cy
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        u = (dx * cos + dy * sin) / self.semi_major
        v = (-dx * sin + dy * cos) / self.semi_minor
        return u * u + v * v <= 1.0

    def inset(self, pixels: float) -> Ellipse:
        """The same ellipse with both semi-axes shortened by `pixels` (negative: lengthened).

        A mask filled from a drawn outline includes the line's width, so its boundary lies outside the
        ellipse the annotator placed (HC18: by about 1.36 px at 800x540, docs/biometry.md).
        """
        if pixels >= self.semi_minor:
            raise ValueError(f"cannot inset an ellipse of semi-minor axis {self.semi_minor:.2f} px by {pixels} px")
        return Ellipse(self.cx, self.cy, self.semi_major - pixels, self.semi_minor - pixels, self.angle)

    def axis_ends(self) -> tuple[tuple[float, float], ...]:
        """The two ends of the major axis (OFD), then the two of the minor axis (BPD), as (x, y)."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        a, b = self.semi_major, self.semi_minor
        return (
            (self.cx - a * cos, self.cy - a * sin),
            (self.cx + a * cos, self.cy + a * sin),
            (self.cx + b * sin, self.cy - b * cos),
            (self.cx - b * sin, self.cy + b * cos),
        )


@dataclass(frozen=True)
class EllipseFit:
    """The fit and how far to trust it. `ellipse` is None when no ellipse could be fitted (flag `empty`)."""

    ellipse: Ellipse | None
    mask_area_px: int
    iou: float  # the mask against the filled fitted ellipse: 1.0 for a perfect ellipse, ~0.99 when rasterised
    rms_residual_px: float  # inlier contour points' distance to the ellipse
    inlier_fraction: float
    flags: tuple[str, ...]


@dataclass(frozen=True)
class HeadMeasurement:
    """HC, BPD and OFD in pixels, and in millimetres when the pixel size is known (else None)."""

    hc_px: float
    bpd_px: float
    ofd_px: float
    pixel_size_mm: float | None
    hc_mm: float | None
    bpd_mm: float | None
    ofd_mm: float | None
    flags: tuple[str, ...]

    @property
    def calibrated(self) -> bool:
        return self.pixel_size_mm is not None


def head_measurement(ellipse: Ellipse, *, pixel_size_mm: float | None) -> HeadMeasurement:
    """HC (perimeter), OFD (major axis) and BPD (minor axis); millimetres only from a known, positive pixel size."""
    if pixel_size_mm is not None and not (math.isfinite(pixel_size_mm) and pixel_size_mm > 0):
        raise ValueError(f"pixel size must be a positive number of millimetres, not {pixel_size_mm!r}")
    hc_px = ellipse.perimeter()
    bpd_px, ofd_px = 2 * ellipse.semi_minor, 2 * ellipse.semi_major
    if pixel_size_mm is None:
        return HeadMeasurement(hc_px, bpd_px, ofd_px, None, None, None, None, flags=())
    hc_mm = hc_px * pixel_size_mm
    low, high = PLAUSIBLE_HC_MM
    flags = () if low <= hc_mm <= high else (FLAG_HC_IMPLAUSIBLE,)
    return HeadMeasurement(
        hc_px, bpd_px, ofd_px, pixel_size_mm, hc_mm, bpd_px * pixel_size_mm, ofd_px * pixel_size_mm, flags=flags
    )


Point = tuple[float, float]


def ellipse_from_axis_ends(major_ends: tuple[Point, Point], minor_ends: tuple[Point, Point]) -> Ellipse:
    """The ellipse a clinician's dragged axis ends describe: the OFD ends fix centre, major axis and angle; the
    BPD ends' mean distance from that axis line is the semi-minor axis (they need not be exactly square to it).
    """
    (x1, y1), (x2, y2) = major_ends
    a = math.hypot(x2 - x1, y2 - y1) / 2
    if not a > 0:
        raise ValueError("the two ends of the major axis coincide")
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    angle = math.atan2(y2 - y1, x2 - x1)
    normal = (-math.sin(angle), math.cos(angle))
    b = sum(abs((x - cx) * normal[0] + (y - cy) * normal[1]) for x, y in minor_ends) / 2
    return _ordered(cx=cx, cy=cy, first=a, second=b, angle=angle)


def ellipse_from_three_points(end1: Point, end2: Point, on_curve: Point) -> Ellipse:
    """Three clicks: two ends of one axis, then any point of the curve off that axis."""
    cx, cy = (end1[0] + end2[0]) / 2, (end1[1] + end2[1]) / 2
    half = math.hypot(end2[0] - end1[0], end2[1] - end1[1]) / 2
    if not half > 0:
        raise ValueError("the two axis ends coincide")
    angle = math.atan2(end2[1] - end1[1], end2[0] - end1[0])
    dx, dy = on_curve[0] - cx, on_curve[1] - cy
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    if abs(u) >= half or v == 0:
        raise ValueError("the third point must lie beside the axis, within its ends")
    other = abs(v) / math.sqrt(1 - (u / half) ** 2)
    return _ordered(cx=cx, cy=cy, first=half, second=other, angle=angle)


def _ordered(*, cx: float, cy: float, first: float, second: float, angle: float) -> Ellipse:
    """An Ellipse whatever order the two semi-axes came in: the longer one is the major axis."""
    if not second > 0:
        raise ValueError("the ellipse has no width")
    if second > first:
        first, second, angle = second, first, angle + math.pi / 2
    return Ellipse(cx, cy, first, second, angle % math.pi)


def ellipse_fit(
    mask: np.ndarray,
    *,
    min_area_px: int = DEFAULT_MIN_AREA_PX,
    min_iou: float = DEFAULT_MIN_IOU,
    min_inlier_fraction: float = DEFAULT_MIN_INLIER_FRACTION,
) -> EllipseFit:
    """Fit an ellipse to a 2-D mask's outer contour and say what is wrong with it, if anything.

    Flags: `empty` (nothing to fit), `tiny` (area under min_area_px), `border` (the mask touches the image's
    edge or the ellipse leaves the image: the skull was cut), `poor_fit` (IoU under min_iou or too many
    outlying contour points: not an ellipse). Keep only the largest component first (`largest_component`).
    """
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, not of shape {mask.shape}")
    area = int(mask.sum())
    points = _outer_contour_points(mask)
    if len(points) < _MIN_POINTS:
        return EllipseFit(None, area, 0.0, math.inf, 0.0, flags=(FLAG_EMPTY,))
    fitted = _robust_fit(points)
    if fitted is None:
        return EllipseFit(None, area, 0.0, math.inf, 0.0, flags=(FLAG_EMPTY,))
    ellipse, distances, inliers = fitted
    iou = _iou(ellipse, mask)
    inlier_fraction = float(inliers.mean())
    flags = []
    if area < min_area_px:
        flags.append(FLAG_TINY)
    if _touches_border(mask) or _leaves_image(ellipse, mask.shape):
        flags.append(FLAG_BORDER)
    if iou < min_iou or inlier_fraction < min_inlier_fraction:
        flags.append(FLAG_POOR_FIT)
    rms = float(np.sqrt(np.mean(distances[inliers] ** 2)))
    return EllipseFit(ellipse, area, iou, rms, inlier_fraction, flags=tuple(flags))


def _outer_contour_points(mask: np.ndarray) -> np.ndarray:
    """Row and column extremes of the mask, half a pixel outwards, as (N, 2) x, y; none on the image's edge."""
    rows, cols = mask.shape
    parts = []
    for axis, length in ((1, cols), (0, rows)):
        has = mask.any(axis=axis)
        index = np.nonzero(has)[0]
        first = np.argmax(mask, axis=axis)[has]
        last = length - 1 - np.argmax(np.flip(mask, axis=axis), axis=axis)[has]
        for ends, shift, keep in ((first, -0.5, first > 0), (last, 0.5, last < length - 1)):
            along, across = ends[keep] + shift, index[keep]
            # axis 1 scans rows (the extreme is a column, x); axis 0 scans columns (the extreme is a row, y).
            parts.append(np.column_stack((along, across) if axis == 1 else (across, along)))
    points = np.concatenate(parts).astype(float)
    return np.unique(points, axis=0) if len(points) else points.reshape(0, 2)


def _robust_fit(points: np.ndarray) -> tuple[Ellipse, np.ndarray, np.ndarray] | None:
    """Direct fit, then refits without the points over 3 robust sigmas from it, until the inliers settle."""
    inliers = np.ones(len(points), dtype=bool)
    for _ in range(_MAX_REFITS):
        conic = _direct_conic_fit(points[inliers])
        if conic is None:
            return None
        distances = _sampson_distance(conic, points)
        sigma = 1.4826 * float(np.median(distances[inliers]))
        updated = distances <= max(3 * sigma, _MIN_TOLERANCE_PX)
        if updated.sum() < _MIN_POINTS:
            break
        if np.array_equal(updated, inliers):
            break
        inliers = updated
    ellipse = _conic_to_ellipse(conic)
    if ellipse is None:
        return None
    return ellipse, _sampson_distance(conic, points), inliers


def _direct_conic_fit(points: np.ndarray) -> np.ndarray | None:
    """Halir and Flusser's stable direct least squares: conic (A..F) with 4AC - B^2 = 1, in image pixels.

    The points are centred and scaled to unit spread first (conditioning); the conic is mapped back.
    """
    mean = points.mean(axis=0)
    scale = float(np.sqrt(((points - mean) ** 2).sum(axis=1).mean())) or 1.0
    x, y = ((points - mean) / scale).T
    d1 = np.column_stack((x * x, x * y, y * y))
    d2 = np.column_stack((x, y, np.ones_like(x)))
    s1, s2, s3 = d1.T @ d1, d1.T @ d2, d2.T @ d2
    try:
        t = -np.linalg.solve(s3, s2.T)
    except np.linalg.LinAlgError:
        return None
    m = s1 + s2 @ t
    m = np.array([m[2] / 2, -m[1], m[0] / 2])
    values, vectors = np.linalg.eig(m)
    vectors = np.real(vectors)
    condition = 4 * vectors[0] * vectors[2] - vectors[1] ** 2
    candidates = np.nonzero((condition > 0) & np.isfinite(np.real(values)))[0]
    if len(candidates) != 1:
        return None
    a1 = vectors[:, candidates[0]]
    a, b, c, d, e, f = np.concatenate((a1, t @ a1))
    # Undo x' = (x - mx) / s, y' = (y - my) / s.
    mx, my, s = float(mean[0]), float(mean[1]), scale
    a2, b2, c2 = a / s**2, b / s**2, c / s**2
    d2_, e2 = d / s - 2 * a2 * mx - b2 * my, e / s - 2 * c2 * my - b2 * mx
    f2 = a2 * mx * mx + b2 * mx * my + c2 * my * my - d / s * mx - e / s * my + f
    return np.array([a2, b2, c2, d2_, e2, f2])


def _sampson_distance(conic: np.ndarray, points: np.ndarray) -> np.ndarray:
    """First-order geometric distance from each point to the conic, in pixels."""
    a, b, c, d, e, f = conic
    x, y = points.T
    value = a * x * x + b * x * y + c * y * y + d * x + e * y + f
    gx, gy = 2 * a * x + b * y + d, b * x + 2 * c * y + e
    return np.abs(value) / np.maximum(np.hypot(gx, gy), 1e-12)


def _conic_to_ellipse(conic: np.ndarray) -> Ellipse | None:
    """Centre, semi-axes and angle of a conic A x^2 + B xy + C y^2 + D x + E y + F = 0 that is an ellipse."""
    a, b, c, d, e, f = (float(v) for v in conic)
    den = b * b - 4 * a * c
    if den >= 0:
        return None
    cx, cy = (2 * c * d - b * e) / den, (2 * a * e - b * d) / den
    f0 = a * cx * cx + b * cx * cy + c * cy * cy + d * cx + e * cy + f
    values, vectors = np.linalg.eigh(np.array([[a, b / 2], [b / 2, c]]))
    with np.errstate(divide="ignore", invalid="ignore"):
        squared = -f0 / values
    if not np.all(np.isfinite(squared)) or np.any(squared <= 0):
        return None
    axes = np.sqrt(squared)
    major = int(np.argmax(axes))
    vx, vy = vectors[:, major]
    angle = math.atan2(vy, vx) % math.pi
    return Ellipse(cx, cy, float(axes[major]), float(axes[1 - major]), angle)


def _iou(ellipse: Ellipse, mask: np.ndarray) -> float:
    """Intersection over union of the mask and the filled ellipse, computed over their joint bounding box only."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    x0, y0, x1, y1 = _bounding_box(ellipse)
    row0 = max(0, min(int(rows[0]), math.floor(y0)))
    row1 = min(mask.shape[0], max(int(rows[-1]) + 1, math.ceil(y1) + 1))
    col0 = max(0, min(int(cols[0]), math.floor(x0)))
    col1 = min(mask.shape[1], max(int(cols[-1]) + 1, math.ceil(x1) + 1))
    filled = ellipse._inside(row0, row1, col0, col1)
    window = mask[row0:row1, col0:col1]
    union = int((filled | window).sum())
    return float((filled & window).sum()) / union if union else 0.0


def _bounding_box(ellipse: Ellipse) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the ellipse."""
    cos, sin = math.cos(ellipse.angle), math.sin(ellipse.angle)
    a, b = ellipse.semi_major, ellipse.semi_minor
    half_width, half_height = math.hypot(a * cos, b * sin), math.hypot(a * sin, b * cos)
    return ellipse.cx - half_width, ellipse.cy - half_height, ellipse.cx + half_width, ellipse.cy + half_height


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def _leaves_image(ellipse: Ellipse, shape: tuple[int, int]) -> bool:
    """Whether the ellipse's bounding box reaches past the outer edge of the image's edge pixels."""
    x0, y0, x1, y1 = _bounding_box(ellipse)
    return x0 < -0.5 or y0 < -0.5 or x1 > shape[1] - 0.5 or y1 > shape[0] - 0.5


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The mask's largest 8-connected component (a segmentation's stray specks dropped), as a boolean mask.

    Labels runs of each row and joins runs of neighbouring rows that touch (union-find over runs), so it costs
    a pass over the rows, not one step per pixel, and needs nothing beyond NumPy.
    """
    mask = np.asarray(mask).astype(bool)
    runs = _row_runs(mask)
    if not runs:
        return mask.copy()
    labels = _run_labels(runs)
    sizes: dict[int, int] = {}
    for label, (_row, start, end) in zip(labels, runs, strict=True):
        sizes[label] = sizes.get(label, 0) + end - start
    best = max(sizes, key=sizes.__getitem__)
    out = np.zeros_like(mask)
    for label, (row, start, end) in zip(labels, runs, strict=True):
        if label == best:
            out[row, start:end] = True
    return out


def _run_labels(runs: list[tuple[int, int, int]]) -> list[int]:
    """One label per run: runs on neighbouring rows that overlap or touch diagonally share it."""
    parent = list(range(len(runs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_row: dict[int, list[int]] = {}
    for index, (row, _start, _end) in enumerate(runs):
        by_row.setdefault(row, []).append(index)
    for index, (row, start, end) in enumerate(runs):
        for other in by_row.get(row - 1, ()):
            _, other_start, other_end = runs[other]
            if other_start <= end and start <= other_end:  # ends are exclusive, so this admits diagonal contact
                parent[root(index)] = root(other)
    return [root(index) for index in range(len(runs))]


def _row_runs(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of True per row as (row, start, end), end exclusive."""
    padded = np.pad(mask, ((0, 0), (1, 1))).astype(np.int8)
    changes = np.diff(padded, axis=1)
    rows_start, starts = np.nonzero(changes == 1)
    _rows_end, ends = np.nonzero(changes == -1)
    return [(int(r), int(s), int(e)) for r, s, e in zip(rows_start, starts, ends, strict=True)]
