"""The patient plane on the pixel grid, and the shapes the phantom world is drawn with.

Everything in the world is placed in *patient coordinates*, in millimetres on
the detector plane: ``x`` points to the image right (the patient's left in a
PA view), ``y`` points down (to the feet), and the origin is on the midline at
the height of the lung apices.  A :class:`Frame` maps the pixel grid onto that
plane (pixel spacing, field-of-view centre, patient rotation), so one anatomy
can be imaged by sites with different fields of view.

Shapes are signed-distance-like fields in millimetres (negative inside), turned
into antialiased pixel coverage by :func:`coverage`; strokes (tubes, wires,
letters) are distances to polylines.  Every profile used to draw a structure
has compact support, so a structure's mask is exactly the set of pixels its
drawing changes (see :class:`~radedit_core.phantom_world.world.Layer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

FloatArray = np.ndarray


@dataclass(frozen=True)
class Frame:
    """Pixel grid <-> patient plane (mm).

    ``center_mm`` is the patient point at the image centre; ``rotation_deg``
    turns the patient (counter-clockwise as displayed) about that point.
    """

    rows: int
    columns: int
    pixel_spacing_mm: float
    center_mm: tuple[float, float]
    rotation_deg: float = 0.0

    @cached_property
    def _cos_sin(self) -> tuple[float, float]:
        a = np.deg2rad(self.rotation_deg)
        return float(np.cos(a)), float(np.sin(a))

    @cached_property
    def grid(self) -> tuple[FloatArray, FloatArray]:
        """(X, Y): patient coordinates (mm, float32) of every pixel centre, [rows, columns] each."""
        rows, cols = self.rows, self.columns
        i = (np.arange(rows, dtype=np.float32) - (rows - 1) / 2.0) * self.pixel_spacing_mm
        j = (np.arange(cols, dtype=np.float32) - (cols - 1) / 2.0) * self.pixel_spacing_mm
        c, s = self._cos_sin
        # Image offsets (u right, v down) -> patient offsets: rotate by -angle.
        u = j[None, :]
        v = i[:, None]
        x = (c * u + s * v + self.center_mm[0]).astype(np.float32)
        y = (-s * u + c * v + self.center_mm[1]).astype(np.float32)
        return x, y

    def to_pixel(self, points_mm: FloatArray) -> FloatArray:
        """[N, 2] patient (x, y) in mm -> [N, 2] (row, column) pixel coordinates (floats)."""
        p = np.asarray(points_mm, dtype=np.float64).reshape(-1, 2)
        dx = p[:, 0] - self.center_mm[0]
        dy = p[:, 1] - self.center_mm[1]
        c, s = self._cos_sin
        u = c * dx - s * dy
        v = s * dx + c * dy
        col = u / self.pixel_spacing_mm + (self.columns - 1) / 2.0
        row = v / self.pixel_spacing_mm + (self.rows - 1) / 2.0
        return np.stack([row, col], axis=1)

    def to_patient(self, rowcol: FloatArray) -> FloatArray:
        """[N, 2] (row, column) pixel coordinates -> [N, 2] patient (x, y) in mm."""
        rc = np.asarray(rowcol, dtype=np.float64).reshape(-1, 2)
        v = (rc[:, 0] - (self.rows - 1) / 2.0) * self.pixel_spacing_mm
        u = (rc[:, 1] - (self.columns - 1) / 2.0) * self.pixel_spacing_mm
        c, s = self._cos_sin
        return np.stack([c * u + s * v + self.center_mm[0], -s * u + c * v + self.center_mm[1]], axis=1)

    def window(self, points_mm: FloatArray, margin_mm: float) -> tuple[slice, slice] | None:
        """Pixel slices of the bounding box of ``points_mm`` grown by ``margin_mm``; None if off the image."""
        rc = self.to_pixel(points_mm)
        m = margin_mm / self.pixel_spacing_mm + 2.0
        r0 = int(np.floor(rc[:, 0].min() - m))
        r1 = int(np.ceil(rc[:, 0].max() + m)) + 1
        c0 = int(np.floor(rc[:, 1].min() - m))
        c1 = int(np.ceil(rc[:, 1].max() + m)) + 1
        r0, c0 = max(r0, 0), max(c0, 0)
        r1, c1 = min(r1, self.rows), min(c1, self.columns)
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(r0, r1), slice(c0, c1)


def smoothstep(edge0: float, edge1: float, x: FloatArray) -> FloatArray:
    """0 below ``edge0``, 1 above ``edge1``, C1-smooth Hermite ramp in between (edges may be reversed)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def coverage(signed_distance_mm: FloatArray, pixel_spacing_mm: float) -> FloatArray:
    """Antialiased area coverage of a shape from its signed distance (mm, negative inside).

    A linear ramp one pixel wide centred on the boundary: pixels whose centre
    lies more than half a pixel outside get exactly 0, so the support is the
    boundary grown by half a pixel and nothing more.
    """
    return np.clip(0.5 - signed_distance_mm / pixel_spacing_mm, 0.0, 1.0).astype(np.float32)


def catmull_rom(points: FloatArray, samples_per_segment: int = 8, closed: bool = False) -> FloatArray:
    """A uniform Catmull-Rom spline through ``points`` ([N, 2]), ``samples_per_segment`` points per span."""
    p = np.asarray(points, dtype=np.float64)
    if closed:
        ext = np.vstack([p[-1], p, p[0], p[1]])
    else:
        ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[:, None]
    t2, t3 = t * t, t * t * t
    out = []
    for k in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[k - 1], ext[k], ext[k + 1], ext[k + 2]
        out.append(
            0.5
            * (
                (2 * p1)
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t3
            )
        )
    curve = np.vstack(out)
    if not closed:
        curve = np.vstack([curve, p[-1]])
    return curve


class PolarShape:
    """A star-shaped region: ``|p - center| <= r(theta)``, ``r`` from a closed contour.

    ``r(theta)`` is tabulated from the contour (1024 angles, periodic
    piecewise-linear), so sharp corners such as a costophrenic angle survive.
    :meth:`signed_distance` is the radial distance divided by the slope
    factor ``sqrt(1 + (r'/r)^2)``: exact on the boundary to first order, a
    smooth depth estimate inside.
    """

    TABLE = 1024

    def __init__(self, contour_mm: FloatArray, center_mm: tuple[float, float]):
        c = np.asarray(contour_mm, dtype=np.float64)
        self.center = (float(center_mm[0]), float(center_mm[1]))
        d = c - np.asarray(self.center)
        theta = np.arctan2(d[:, 1], d[:, 0])
        radius = np.hypot(d[:, 0], d[:, 1])
        order = np.argsort(theta)
        theta, radius = theta[order], radius[order]
        grid = np.linspace(-np.pi, np.pi, self.TABLE, endpoint=False)
        table = np.interp(grid, theta, radius, period=2 * np.pi)
        self._step = 2 * np.pi / self.TABLE
        self._r = np.concatenate([table, table[:1]]).astype(np.float32)
        dr = (np.roll(table, -1) - np.roll(table, 1)) / (2 * self._step)
        slope = np.sqrt(1.0 + (dr / np.maximum(table, 1e-6)) ** 2)
        self._slope = np.concatenate([slope, slope[:1]]).astype(np.float32)
        self.contour = c

    def radius(self, theta: FloatArray) -> FloatArray:
        idx = (np.asarray(theta) + np.pi) / self._step
        return np.interp(idx, np.arange(self.TABLE + 1), self._r).astype(np.float32)

    def signed_distance(self, x: FloatArray, y: FloatArray) -> FloatArray:
        dx = x - np.float32(self.center[0])
        dy = y - np.float32(self.center[1])
        rho = np.hypot(dx, dy)
        idx = (np.arctan2(dy, dx) + np.float32(np.pi)) / np.float32(self._step)
        ref = np.arange(self.TABLE + 1, dtype=np.float32)
        r = np.interp(idx, ref, self._r)
        slope = np.interp(idx, ref, self._slope)
        return ((rho - r) / slope).astype(np.float32)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) of the contour, mm."""
        return (
            float(self.contour[:, 0].min()),
            float(self.contour[:, 1].min()),
            float(self.contour[:, 0].max()),
            float(self.contour[:, 1].max()),
        )


def rounded_box_distance(
    x: FloatArray, y: FloatArray, center: tuple[float, float], half_size: tuple[float, float], radius: float, angle_deg: float = 0.0
) -> FloatArray:
    """Signed distance (mm) to a rotated rectangle with rounded corners."""
    a = np.deg2rad(angle_deg)
    c, s = np.float32(np.cos(a)), np.float32(np.sin(a))
    dx = x - np.float32(center[0])
    dy = y - np.float32(center[1])
    u = np.abs(c * dx + s * dy) - np.float32(half_size[0] - radius)
    v = np.abs(-s * dx + c * dy) - np.float32(half_size[1] - radius)
    outside = np.hypot(np.maximum(u, 0), np.maximum(v, 0))
    inside = np.minimum(np.maximum(u, v), 0)
    return (outside + inside - np.float32(radius)).astype(np.float32)


def polyline_distance(x: FloatArray, y: FloatArray, points: FloatArray, chunk: int = 16) -> tuple[FloatArray, FloatArray]:
    """Distance (mm) from every (x, y) to a polyline, and the arc length (mm) of the nearest point.

    ``points`` is [N, 2]; segments are processed ``chunk`` at a time so the
    work is vectorised without an [N, H, W] array.
    """
    p = np.asarray(points, dtype=np.float32)
    seg = p[1:] - p[:-1]
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]]).astype(np.float32)
    best = np.full(x.shape, np.inf, dtype=np.float32)
    arc = np.zeros(x.shape, dtype=np.float32)
    extra = (None,) * x.ndim
    xx, yy = x[None], y[None]
    for k in range(0, len(seg), chunk):
        a = p[:-1][k : k + chunk][(slice(None), slice(None), *extra)]
        d = seg[k : k + chunk][(slice(None), slice(None), *extra)]
        length2 = np.maximum(d[:, 0] ** 2 + d[:, 1] ** 2, 1e-12)
        t = np.clip(((xx - a[:, 0]) * d[:, 0] + (yy - a[:, 1]) * d[:, 1]) / length2, 0.0, 1.0)
        dist = np.hypot(xx - a[:, 0] - t * d[:, 0], yy - a[:, 1] - t * d[:, 1])
        nearest = np.argmin(dist, axis=0)
        dmin = np.take_along_axis(dist, nearest[None], axis=0)[0]
        tmin = np.take_along_axis(t, nearest[None], axis=0)[0]
        s = starts[k : k + chunk][nearest] + tmin * lengths[k : k + chunk][nearest]
        closer = dmin < best
        best = np.where(closer, dmin, best)
        arc = np.where(closer, s, arc)
    return best, arc


def stroke_distance(
    frame: Frame, x: FloatArray, y: FloatArray, points: FloatArray, reach_mm: float, chunk: int = 6
) -> tuple[tuple[slice, slice], FloatArray] | None:
    """Distance (mm) to a polyline within ``reach_mm`` of it, on the pixel grid of ``frame``.

    Returns (window, distances): the distances cover the polyline's window and
    are computed only in the bounding boxes of short runs of segments (inf
    elsewhere), so long thin paths (wires, tubes) cost little.  None if the
    polyline is off the image.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(p) == 1:
        p = np.vstack([p, p])
    win = frame.window(p, reach_mm)
    if win is None:
        return None
    r0, c0 = win[0].start, win[1].start
    out = np.full((win[0].stop - r0, win[1].stop - c0), np.inf, dtype=np.float32)
    for k in range(0, len(p) - 1, chunk):
        part = p[k : k + chunk + 1]
        sub = frame.window(part, reach_mm)
        if sub is None:
            continue
        d, _ = polyline_distance(x[sub], y[sub], part, chunk=chunk)
        local = (slice(sub[0].start - r0, sub[0].stop - r0), slice(sub[1].start - c0, sub[1].stop - c0))
        np.minimum(out[local], d, out=out[local])
    return win, out


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> FloatArray:
    """Gaussian-filtered white noise (scipy.ndimage), scaled to unit standard deviation."""
    from scipy.ndimage import gaussian_filter  # noqa: PLC0415

    field = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px, mode="wrap")
    return (field / max(float(field.std()), 1e-12)).astype(np.float32)


__all__ = [
    "Frame",
    "PolarShape",
    "catmull_rom",
    "coverage",
    "polyline_distance",
    "stroke_distance",
    "rounded_box_distance",
    "smooth_noise",
    "smoothstep",
]
