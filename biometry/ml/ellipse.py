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
# The IoU tests only the pixels near the ellipse's edge: those between its chords at u^2 + v^2 = 1 -+ this.
_CHORD_MARGIN = 1e-3

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
        dx = np.arange(col0, col1)[np.newaxis, :] - self.cx
        dy = np.arange(row0, row1)[:, np.newaxis] - self.cy
        return self._contains(dx, dy)

    def _contains(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Whether pixel centres at offsets (dx, dy) from the centre (arrays that broadcast) lie inside: the one
        test every raster of the ellipse makes, so that they agree to the last bit."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        # u = (dx cos + dy sin) / a and v = (-dx sin + dy cos) / b, in place: two temporaries, not seven.
        u = dx * cos + dy * sin
        u /= self.semi_major
        u *= u
        v = -dx * sin + dy * cos
        v /= self.semi_minor
        v *= v
        u += v
        return u <= 1.0

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
    mask = np.asarray(mask, dtype=bool)  # no copy of a boolean mask: nothing here writes to it
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, not of shape {mask.shape}")
    box = _mask_box(mask)
    if box is None:
        return EllipseFit(None, 0, 0.0, math.inf, 0.0, flags=(FLAG_EMPTY,))
    # Everything below reads the mask's bounding box only: a head fills a fraction of the image.
    crop = mask[box[0] : box[1], box[2] : box[3]]
    area = int(np.count_nonzero(crop))
    points = _outer_contour_points(crop, (box[0], box[2]), mask.shape)
    if len(points) < _MIN_POINTS:
        return EllipseFit(None, area, 0.0, math.inf, 0.0, flags=(FLAG_EMPTY,))
    fitted = _robust_fit(points)
    if fitted is None:
        return EllipseFit(None, area, 0.0, math.inf, 0.0, flags=(FLAG_EMPTY,))
    ellipse, distances, inliers = fitted
    iou = _iou(ellipse, mask, box, area)
    inlier_fraction = float(inliers.mean())
    flags = []
    if area < min_area_px:
        flags.append(FLAG_TINY)
    if _touches_border(box, mask.shape) or _leaves_image(ellipse, mask.shape):
        flags.append(FLAG_BORDER)
    if iou < min_iou or inlier_fraction < min_inlier_fraction:
        flags.append(FLAG_POOR_FIT)
    rms = float(np.sqrt(np.mean(distances[inliers] ** 2)))
    return EllipseFit(ellipse, area, iou, rms, inlier_fraction, flags=tuple(flags))


Box = tuple[int, int, int, int]  # row0, row1, col0, col1: rows row0..row1 - 1, columns col0..col1 - 1


def _mask_box(mask: np.ndarray) -> Box | None:
    """The smallest rectangle holding every True pixel of a 2-D boolean mask; None when there is none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    row0, row1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(mask[row0:row1].any(axis=0))
    return row0, row1, int(cols[0]), int(cols[-1]) + 1


def _outer_contour_points(crop: np.ndarray, origin: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Row and column extremes of the mask, half a pixel outwards, as (N, 2) x, y sorted by x then y; none on
    the image's edge. ``crop`` is the mask's part from ``origin`` (row, column) of an image of ``shape``.

    Points are built as twice their coordinates (integers) so that one integer key sorts and deduplicates them.
    """
    twice_x, twice_y = [], []
    for axis, offset, length, other in ((1, origin[1], shape[1], origin[0]), (0, origin[0], shape[0], origin[1])):
        has = crop.any(axis=axis)
        index = 2 * (np.flatnonzero(has) + other)
        first = np.argmax(crop, axis=axis)[has] + offset
        last = crop.shape[axis] - 1 - np.argmax(np.flip(crop, axis=axis), axis=axis)[has] + offset
        for ends, shift, keep in ((first, -1, first > 0), (last, 1, last < length - 1)):
            along, across = 2 * ends[keep] + shift, index[keep]
            # axis 1 scans rows (the extreme is a column, x); axis 0 scans columns (the extreme is a row, y).
            twice_x.append(along if axis == 1 else across)
            twice_y.append(across if axis == 1 else along)
    xs, ys = np.concatenate(twice_x), np.concatenate(twice_y)
    stride = 2 * shape[0] + 2  # above any 2y + 1 (y >= -0.5), so the key orders by x, then y
    keys = np.unique(xs * stride + ys + 1)
    return np.column_stack((keys // stride, keys % stride - 1)) / 2.0


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
    return ellipse, distances, inliers  # the distances are the last conic's


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


def _iou(ellipse: Ellipse, mask: np.ndarray, box: Box, area: int) -> float:
    """Intersection over union of the mask (``area`` pixels, all inside ``box``) and the filled ellipse, counted
    over their joint bounding box only: the same count as ``ellipse.raster`` against the mask."""
    x0, y0, x1, y1 = _bounding_box(ellipse)
    row0 = max(0, min(box[0], math.floor(y0)))
    row1 = min(mask.shape[0], max(box[1], math.ceil(y1) + 1))
    col0 = max(0, min(box[2], math.floor(x0)))
    col1 = min(mask.shape[1], max(box[3], math.ceil(x1) + 1))
    rows = np.arange(row0, row1)
    # Per row, the columns surely inside (within the chord at u^2 + v^2 = 1 - _CHORD_MARGIN) are counted without
    # a test; those that may be inside (within the chord at 1 + _CHORD_MARGIN) but not surely get the raster's
    # own test, and those beyond are outside. The margin is orders above the chords' rounding error.
    inner_left, inner_right = _chord(ellipse, rows, 1 - _CHORD_MARGIN)
    outer_left, outer_right = _chord(ellipse, rows, 1 + _CHORD_MARGIN)
    # Clipped to the window (and the sure columns to the maybe ones) before they become integers.
    maybe_first = np.clip(np.floor(outer_left), col0, col1).astype(np.int64)
    maybe_last = np.clip(np.ceil(outer_right), col0 - 1, col1 - 1).astype(np.int64)
    sure_first = np.clip(np.ceil(inner_left), maybe_first, maybe_last + 1).astype(np.int64)
    sure_last = np.clip(np.floor(inner_right), maybe_first - 1, maybe_last).astype(np.int64)
    empty = sure_last < sure_first
    sure_first[empty], sure_last[empty] = maybe_last[empty] + 1, maybe_last[empty]
    # Columns relative to col0, in int16 where they fit: these comparisons run over the whole window.
    dtype = np.int16 if col1 - col0 <= np.iinfo(np.int16).max else np.int64
    columns = np.arange(col1 - col0, dtype=dtype)
    first, last = (sure_first - col0).astype(dtype), (sure_last - col0).astype(dtype)
    sure = (columns >= first[:, np.newaxis]) & (columns <= last[:, np.newaxis])
    filled_area = int((sure_last - sure_first + 1).sum())
    intersection = int(np.count_nonzero(sure & mask[row0:row1, col0:col1]))
    # The uncertain columns: left of the sure ones and right of them, as (row, first, end) spans.
    span_rows = np.concatenate((rows, rows))
    span_first = np.concatenate((maybe_first, sure_last + 1))
    lengths = np.maximum(np.concatenate((sure_first, maybe_last + 1)) - span_first, 0)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    band_rows, band_columns = np.repeat(span_rows, lengths), np.repeat(span_first, lengths) + offsets
    inside = ellipse._contains(band_columns - ellipse.cx, band_rows - ellipse.cy)
    filled_area += int(np.count_nonzero(inside))
    intersection += int(np.count_nonzero(inside & mask[band_rows, band_columns]))
    union = filled_area + area - intersection
    return intersection / union if union else 0.0


def _chord(ellipse: Ellipse, rows: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the x range where u^2 + v^2 <= level (the ellipse scaled by sqrt(level)); empty (left > right)
    where the row misses it. Along a row u^2 + v^2 = p dx^2 + q dx + r, a quadratic in dx = x - cx."""
    cos, sin = math.cos(ellipse.angle), math.sin(ellipse.angle)
    inv_a2, inv_b2 = 1 / ellipse.semi_major**2, 1 / ellipse.semi_minor**2
    dy = rows - ellipse.cy
    p = cos * cos * inv_a2 + sin * sin * inv_b2
    q = 2 * dy * cos * sin * (inv_a2 - inv_b2)
    r = dy * dy * (sin * sin * inv_a2 + cos * cos * inv_b2)
    discriminant = q * q - 4 * p * (r - level)
    half = np.sqrt(np.maximum(discriminant, 0)) / (2 * p)
    half[discriminant < 0] = -1.0
    middle = ellipse.cx - q / (2 * p)
    return middle - half, middle + half


def _bounding_box(ellipse: Ellipse) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the ellipse."""
    cos, sin = math.cos(ellipse.angle), math.sin(ellipse.angle)
    a, b = ellipse.semi_major, ellipse.semi_minor
    half_width, half_height = math.hypot(a * cos, b * sin), math.hypot(a * sin, b * cos)
    return ellipse.cx - half_width, ellipse.cy - half_height, ellipse.cx + half_width, ellipse.cy + half_height


def _touches_border(box: Box, shape: tuple[int, int]) -> bool:
    """Whether the mask whose bounding box is ``box`` has a pixel on the image's edge."""
    return box[0] == 0 or box[2] == 0 or box[1] == shape[0] or box[3] == shape[1]


def _leaves_image(ellipse: Ellipse, shape: tuple[int, int]) -> bool:
    """Whether the ellipse's bounding box reaches past the outer edge of the image's edge pixels."""
    x0, y0, x1, y1 = _bounding_box(ellipse)
    return x0 < -0.5 or y0 < -0.5 or x1 > shape[1] - 0.5 or y1 > shape[0] - 0.5


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The mask's largest 8-connected component (a segmentation's stray specks dropped), as a boolean mask.

    Labels runs of each row and joins runs of neighbouring rows that touch (union-find over runs), so it costs
    a pass over the rows of the mask's bounding box, not one step per pixel, and needs nothing beyond NumPy. Of
    equal largest components the first in row order wins.
    """
    out = np.asarray(mask).astype(bool)  # a copy: the caller's mask is left as it was
    box = _mask_box(out)
    if box is None:
        return out
    row0, _row1, col0, _col1 = box
    rows, starts, ends = _row_runs(out[box[0] : box[1], box[2] : box[3]])
    _, first_run, component = np.unique(_run_labels(rows, starts, ends), return_index=True, return_inverse=True)
    sizes = np.bincount(component, weights=ends - starts)
    by_first_run = np.argsort(first_run)
    dropped = component != by_first_run[np.argmax(sizes[by_first_run])]
    for row, start, end in zip(rows[dropped].tolist(), starts[dropped].tolist(), ends[dropped].tolist(), strict=True):
        out[row0 + row, col0 + start : col0 + end] = False
    return out


def _run_labels(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> list[int]:
    """One label per run (runs ordered by row, then start): runs on neighbouring rows that overlap or touch
    diagonally share it."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # The runs of row r - 1 touching run i (start_j <= end_i and start_i <= end_j; ends are exclusive, so this
    # admits diagonal contact) are a contiguous stretch of the ordered runs: found by two binary searches.
    stride = int(ends.max()) + 1
    previous_row = (rows - 1) * stride
    first = np.searchsorted(rows * stride + ends, previous_row + starts, side="left")
    last = np.searchsorted(rows * stride + starts, previous_row + ends, side="right")
    for index, (low, high) in enumerate(zip(first.tolist(), last.tolist(), strict=True)):
        for other in range(low, high):
            parent[root(index)] = root(other)
    return [root(index) for index in range(len(rows))]


def _row_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of True per row as arrays of row, start and end (exclusive), ordered by row, then start."""
    height, width = mask.shape
    padded = np.zeros((height, width + 2), dtype=bool)  # a False column each side: no run crosses a row's end
    padded[:, 1:-1] = mask
    flat = padded.ravel()
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1  # alternately a run's first pixel and its end
    rows = changes[0::2] // (width + 2)
    row_start = rows * (width + 2) + 1
    return rows, changes[0::2] - row_start, changes[1::2] - row_start
