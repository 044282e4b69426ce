"""Procedural frontal (PA) chest anatomy: body, lungs, heart, mediastinum, spine, ribs, clavicles.

Shapes are templates in patient coordinates (mm, see
:mod:`~radedit_core.phantom_world.geometry`) deformed per case: thorax width
and height (habitus, depth of inspiration), low-order radial wobble of each
lung outline, hemidiaphragm heights, heart size and position, mediastinal
width and aortic knob, rib spacing and slope, clavicle height, a slight
scoliosis, soft-tissue thickness.

What each structure adds to the attenuation map (a.u.) and its mask:

* ``body``: soft tissue of neck, shoulders and trunk, thickness of an
  elliptic cross-section (brightest on the midline), with the gastric air
  bubble under the left hemidiaphragm.  Mask: inside the body outline.
* ``right_lung``/``left_lung``: air in place of tissue (negative), less at
  the periphery and the bases, plus the lung *texture*: a branching vessel
  tree from each hilum and fine parenchymal noise.  The lung fields stop at
  the heart and mediastinum borders (the visible lung, as lung
  segmentation masks are drawn).  Mask: the lung field.
* ``heart``: the cardiac silhouette (right atrium, left ventricle to the
  apex), denser than the surrounding soft tissue.
* ``mediastinum``: the mediastinal soft-tissue column with the aortic knob,
  and the trachea and main bronchi (air, negative) inside it.
* ``spine``: vertebral bodies with cortical rims and pedicles.
* ``ribs``: posterior ribs (denser, with cortical edges) and anterior ribs
  (fainter), one mask for all.
* ``clavicles``: both clavicles.

The lung texture (vessels and parenchyma) is kept in ``scene.shared`` so that
findings can remove or blur it (a pneumothorax has no lung markings).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import PolarShape, coverage, polyline_distance, smooth_noise, smoothstep
from .rendering import Layer, Scene

#: Structures drawn by this module, in drawing order.
ANATOMY = ("body", "right_lung", "left_lung", "heart", "mediastinum", "spine", "ribs", "clavicles")

# -- templates (mm, patient coordinates; the right lung is on the image left, x < 0) --------

_RIGHT_LUNG = np.array(
    [
        (-60, 0), (-80, 4), (-100, 16), (-116, 34), (-128, 58), (-137, 90), (-143, 125), (-147, 165),
        (-149, 205), (-150, 235), (-150, 257),  # costophrenic angle
        (-141, 245), (-132, 234), (-118, 224), (-100, 217), (-80, 214), (-60, 216), (-42, 222), (-28, 232),
        (-15, 242), (-12, 200), (-10, 150), (-10, 100), (-14, 60), (-22, 30), (-35, 10), (-48, 2),
    ],
    dtype=np.float64,
)  # fmt: skip
_RIGHT_LUNG_CENTER = (-85.0, 125.0)
#: Indices of the right-lung template points on the hemidiaphragm (moved by the dome height).
_DOME = slice(11, 20)
_HEART = np.array(
    [
        (-26, 118), (-38, 140), (-45, 168), (-44, 198), (-36, 222), (-20, 240), (10, 250), (45, 250),
        (75, 242), (92, 226), (94, 205), (86, 180), (70, 152), (52, 130), (36, 116), (20, 106), (0, 106),
    ],
    dtype=np.float64,
)  # fmt: skip
_HEART_CENTER = (25.0, 180.0)
#: Mediastinal borders: y knots and the right (negative) and left half-widths, mm.
_MEDIASTINUM_Y = np.array([-140, -40, 0, 40, 62, 78, 95, 120, 150, 340], dtype=np.float64)
_MEDIASTINUM_RIGHT = np.array([-30, -27, -24, -26, -28, -29, -30, -30, -26, -24], dtype=np.float64)
_MEDIASTINUM_LEFT = np.array([30, 27, 24, 27, 36, 42, 34, 30, 28, 24], dtype=np.float64)
#: Body outline: y knots and half-width (mm) and relative thickness.
_BODY_Y = np.array([-400, -70, -35, -12, 10, 60, 160, 260, 400, 700], dtype=np.float64)
_BODY_HALF_WIDTH = np.array([58, 60, 110, 165, 180, 176, 172, 170, 178, 185], dtype=np.float64)
_BODY_THICKNESS = np.array([0.55, 0.55, 0.62, 0.75, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0], dtype=np.float64)


@dataclass
class AnatomyParameters:
    """Per-case anatomy (lengths in mm, densities in a.u., factors around 1)."""

    width: float  # thorax width factor
    height: float  # thorax height factor (depth of inspiration)
    right_lung_wobble: list[float]  # radial harmonics (a1, b1, a2, b2, a3, b3), fractions
    left_lung_wobble: list[float]
    right_dome_mm: float  # hemidiaphragm height offsets (positive = lower)
    left_dome_mm: float
    heart_scale: float
    heart_shift_mm: float  # horizontal shift of the heart
    mediastinum_width: float
    aortic_knob_mm: float  # extra bulge of the aortic knob
    body_width: float  # soft-tissue habitus factor
    soft_tissue: float  # soft-tissue density through the full chest, a.u.
    lung_air: float  # air deficit of the lungs, a.u.
    rib_spacing_mm: float
    rib_slope: float  # lateral downward curvature of the posterior ribs
    rib_density: float
    clavicle_y_mm: float
    scoliosis_mm: float
    vessel_density: float
    texture_seed: int

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "AnatomyParameters":
        return cls(
            width=float(rng.normal(1.0, 0.05)),
            height=float(rng.normal(1.0, 0.06)),
            right_lung_wobble=[float(v) for v in rng.normal(0.0, 0.02, 6)],
            left_lung_wobble=[float(v) for v in rng.normal(0.0, 0.02, 6)],
            right_dome_mm=float(rng.normal(0.0, 8.0)),
            left_dome_mm=float(rng.normal(12.0, 8.0)),
            heart_scale=float(rng.normal(1.0, 0.06)),
            heart_shift_mm=float(rng.normal(0.0, 5.0)),
            mediastinum_width=float(rng.normal(1.0, 0.08)),
            aortic_knob_mm=float(rng.uniform(0.0, 8.0)),
            body_width=float(rng.normal(1.0, 0.06)),
            soft_tissue=float(rng.normal(1.0, 0.05)),
            lung_air=float(rng.normal(0.55, 0.03)),
            rib_spacing_mm=float(rng.normal(23.0, 1.2)),
            rib_slope=float(rng.normal(1.0, 0.1)),
            rib_density=float(rng.normal(0.11, 0.012)),
            clavicle_y_mm=float(rng.normal(22.0, 6.0)),
            scoliosis_mm=float(rng.normal(0.0, 3.0)),
            vessel_density=float(rng.normal(0.12, 0.012)),
            texture_seed=int(rng.integers(0, 2**31 - 1)),
        )


# -- shapes ---------------------------------------------------------------------------------


def _scale(points: np.ndarray, p: AnatomyParameters) -> np.ndarray:
    out = points.copy()
    out[:, 0] *= p.width
    out[:, 1] *= p.height
    return out


def _wobble(points: np.ndarray, center: tuple[float, float], coefficients: list[float]) -> np.ndarray:
    d = points - np.asarray(center)
    theta = np.arctan2(d[:, 1], d[:, 0])
    a1, b1, a2, b2, a3, b3 = coefficients
    factor = 1 + a1 * np.cos(theta) + b1 * np.sin(theta) + a2 * np.cos(2 * theta)
    factor += b2 * np.sin(2 * theta) + a3 * np.cos(3 * theta) + b3 * np.sin(3 * theta)
    return np.asarray(center) + d * factor[:, None]


def lung_shape(p: AnatomyParameters, side: str) -> PolarShape:
    """The outline of one lung before the heart and mediastinum cut it (``side``: "right"/"left")."""
    pts = _RIGHT_LUNG.copy()
    pts[_DOME, 1] += p.right_dome_mm if side == "right" else p.left_dome_mm
    pts[10, 1] += 0.6 * (p.right_dome_mm if side == "right" else p.left_dome_mm)  # costophrenic angle
    center = _RIGHT_LUNG_CENTER
    if side == "left":
        pts[:, 0] *= -0.96
        center = (-center[0] * 0.96, center[1])
    pts = _wobble(pts, center, p.right_lung_wobble if side == "right" else p.left_lung_wobble)
    pts = _scale(pts, p)
    return PolarShape(pts, (center[0] * p.width, center[1] * p.height))


def heart_shape(p: AnatomyParameters) -> PolarShape:
    c = np.asarray(_HEART_CENTER)
    pts = c + (_HEART - c) * p.heart_scale
    pts[:, 0] += p.heart_shift_mm
    # The heart sits on the left hemidiaphragm: its base follows the dome height.
    pts[:, 1] += 0.5 * (p.left_dome_mm + p.right_dome_mm) * (pts[:, 1] > 200)
    pts = _scale(pts, p)
    return PolarShape(pts, (c[0] * p.width + p.heart_shift_mm, c[1] * p.height))


def hilum(p: AnatomyParameters, side: str) -> tuple[float, float]:
    """Where the vessels of one lung leave the mediastinum (mm)."""
    x, y = (-42.0, 118.0) if side == "right" else (46.0, 112.0)
    return x * p.width * p.mediastinum_width**0.5, y * p.height


def mediastinum_borders(p: AnatomyParameters, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right border, left border) x (mm) of the mediastinum at heights ``y`` (mm)."""
    yk = _MEDIASTINUM_Y * p.height
    knob = np.where(np.abs(_MEDIASTINUM_Y - 78) < 20, p.aortic_knob_mm * (1 - np.abs(_MEDIASTINUM_Y - 78) / 20), 0)
    right = np.interp(y, yk, _MEDIASTINUM_RIGHT * p.mediastinum_width)
    left = np.interp(y, yk, (_MEDIASTINUM_LEFT + knob) * p.mediastinum_width)
    return right.astype(np.float32), left.astype(np.float32)


def body_half_width(p: AnatomyParameters, y: np.ndarray) -> np.ndarray:
    """Half-width (mm) of the body outline at heights ``y`` (mm)."""
    return (np.interp(y, _BODY_Y * p.height, _BODY_HALF_WIDTH) * p.width * p.body_width).astype(np.float32)


# -- rendering ------------------------------------------------------------------------------


def diaphragm_level(p: AnatomyParameters) -> float:
    """Height (mm) of the hemidiaphragms next to the midline: the heart and mediastinum end there."""
    return (240.0 + 0.5 * (p.right_dome_mm + p.left_dome_mm)) * p.height


def render_anatomy(p: AnatomyParameters, scene: Scene) -> dict[str, Layer]:
    """All anatomy layers of one case; fills ``scene.shared`` for the findings and devices."""
    ps = scene.pixel_spacing
    rng = np.random.default_rng(p.texture_seed)
    layers: dict[str, Layer] = {}
    floor = diaphragm_level(p)

    # 1. Body: elliptic cross-section thickness, gastric bubble under the left dome.
    x, y = scene.x, scene.y
    half = body_half_width(p, y)
    inside = np.clip(1.0 - (x / half) ** 2, 0.0, None)
    profile = np.sqrt(inside) * coverage(np.abs(x) - half, ps)
    thickness = np.interp(y, _BODY_Y * p.height, _BODY_THICKNESS).astype(np.float32)
    body = p.soft_tissue * thickness * profile
    bubble_c = (62.0 * p.width, (262.0 + p.left_dome_mm) * p.height)
    win = scene.window(bubble_c[0] - 40, bubble_c[1] - 30, bubble_c[0] + 40, bubble_c[1] + 30)
    if win is not None:
        bx, by = x[win] - bubble_c[0], y[win] - bubble_c[1]
        bubble = np.hypot(bx / 1.6, np.where(by > 0, by * 2.2, by * 0.9))
        body[win] -= 0.12 * smoothstep(22.0, 14.0, bubble) * (profile[win] > 0)
    layers["body"] = Layer.from_density("body", body)

    # 2. Heart and mediastinum as shapes first: they cut the lung fields.
    heart = heart_shape(p)
    heart_cov = scene.zeros()
    heart_density = scene.zeros()
    win = scene.window(*heart.bounds)
    if win is not None:
        sd = heart.signed_distance(x[win], y[win])
        heart_cov[win] = coverage(sd, ps)
        # Below the diaphragm the heart merges with the abdomen's soft tissue.
        heart_density[win] = heart_cov[win] * (0.05 + 0.05 * smoothstep(0.0, 35.0, -sd)) * smoothstep(floor + 6, floor - 10, y[win])
    med_cov = scene.zeros()
    mediastinum = scene.zeros()
    win = scene.window(-90.0, -400.0, 90.0, floor + 12.0)
    if win is not None:
        right_border, left_border = mediastinum_borders(p, y[win])
        med_cov[win] = coverage(np.maximum(right_border - x[win], x[win] - left_border), ps)
        mediastinum[win] = 0.05 * med_cov[win] * smoothstep(floor + 10, floor - 10, y[win])
        mediastinum[win] *= smoothstep(-150.0 * p.height, -90.0 * p.height, y[win])

    # 3. Lungs: air deficit with texture (vessel trees and parenchymal noise).
    texture = _vessel_trees(p, scene, rng)
    shapes: dict[str, PolarShape] = {}
    covs: dict[str, np.ndarray] = {}
    for side in ("right", "left"):
        shape = lung_shape(p, side)
        x0, y0, x1, y1 = shape.bounds
        lung = scene.zeros()
        cov = scene.zeros()
        win = scene.window(x0, y0, x1, y1)
        if win is not None:
            xs, ys = x[win], y[win]
            sd = shape.signed_distance(xs, ys)
            cov[win] = coverage(sd, ps) * (1.0 - heart_cov[win]) * (1.0 - med_cov[win])
            depth = smoothstep(0.0, 30.0, -sd)
            base = smoothstep(y0 + 0.55 * (y1 - y0), y1, ys)
            apex = smoothstep(y0 + 0.18 * (y1 - y0), y0, ys)
            air = p.lung_air * (0.72 + 0.28 * depth) * (1.0 - 0.25 * base - 0.2 * apex)
            parenchyma = smooth_noise(rng, xs.shape, 1.3) * np.float32(0.022)
            texture[win] += parenchyma * (cov[win] > 0)
            lung[win] = cov[win] * (texture[win] - air)
        layers[f"{side}_lung"] = Layer.from_density(f"{side}_lung", lung)
        shapes[side] = shape
        covs[side] = cov
    scene.shared.update(
        lung_shapes=shapes,
        lung_coverage=covs,
        lung_texture=texture,
        hila={side: hilum(p, side) for side in ("right", "left")},
        heart_shape=heart,
        clavicle_y_mm=p.clavicle_y_mm,
    )

    # 4. Heart: denser than soft tissue, most in its thick middle.
    layers["heart"] = Layer.from_density("heart", heart_density)

    # 5. Mediastinum with the trachea and main bronchi (air).
    layers["mediastinum"] = Layer.from_density("mediastinum", mediastinum - _airways(p, scene))

    # 6. Spine, ribs, clavicles.
    layers["spine"] = Layer.from_density("spine", _spine(p, scene))
    layers["ribs"] = Layer.from_density("ribs", _ribs(p, scene, shapes))
    layers["clavicles"] = Layer.from_density("clavicles", _clavicles(p, scene))
    return layers


def _airways(p: AnatomyParameters, scene: Scene) -> np.ndarray:
    """Air of the trachea and main bronchi (positive numbers, subtracted), mm-wide tubes."""
    carina = (4.0, 82.0 * p.height)
    paths = [
        (np.array([(3.0, -200.0), (2.0, -60.0), (4.0, 20.0), carina]), 8.0),
        (np.array([carina, (-18.0, 98.0 * p.height), hilum(p, "right")]), 5.5),
        (np.array([carina, (22.0, 96.0 * p.height), hilum(p, "left")]), 5.0),
    ]
    out = scene.zeros()
    for points, radius in paths:
        win = scene.frame.window(points, radius + 2)
        if win is None:
            continue
        d, _ = polyline_distance(scene.x[win], scene.y[win], points)
        out[win] = np.maximum(out[win], 0.09 * coverage(d - radius, scene.pixel_spacing) * smoothstep(radius, 0.3 * radius, d))
    return out


def _spine(p: AnatomyParameters, scene: Scene) -> np.ndarray:
    out = scene.zeros()
    win = scene.window(-40.0 - abs(p.scoliosis_mm), -400.0, 40.0 + abs(p.scoliosis_mm), 800.0)
    if win is None:
        return out
    x, y = scene.x[win], scene.y[win]
    ps = scene.pixel_spacing
    period = 24.0 * p.height
    center = p.scoliosis_mm * np.sin(y / (300.0 * p.height) * np.pi)
    u = x - center
    v = np.mod(y + 4.0, period) - period / 2  # vertebra-local height
    body_sd = np.maximum(np.abs(u) - 19.0, np.abs(v) - 0.4 * period)
    body_cov = coverage(body_sd, ps)
    rim = smoothstep(-3.5, -0.5, body_sd)
    pedicle = np.hypot((np.abs(u) - 13.0) / 3.5, (v + 0.12 * period) / 5.0)
    pedicles = 0.025 * smoothstep(1.15, 0.85, pedicle)
    vertical = smoothstep(-200.0, -150.0, y)
    out[win] = (body_cov * (0.035 + 0.03 * rim) + pedicles) * vertical
    return out


def _ribs(p: AnatomyParameters, scene: Scene, lungs: dict[str, PolarShape]) -> np.ndarray:
    """Posterior ribs (arching from the spine, down to the lateral wall) and anterior ribs (fainter).

    Each side's ribs are a family of one curve shifted in height, so all of
    them are drawn in one vectorised pass: a pixel belongs to the nearest
    member.  The ribs end at the lateral chest wall (the lung outline plus
    6 mm at that height) and, anteriorly, at the costochondral junctions.
    """
    ps = scene.pixel_spacing
    out = scene.zeros()
    for side, sign in (("right", -1.0), ("left", 1.0)):
        contour = lungs[side].contour
        lateral = contour[:11]  # apex to costophrenic angle
        x_wall = float(np.abs(lateral[:, 0]).max()) + 10.0
        win = scene.window(min(0.0, sign * x_wall), -40.0, max(0.0, sign * x_wall), 360.0 * p.height)
        if win is None:
            continue
        x, y = scene.x[win], scene.y[win]
        order = np.argsort(lateral[:, 1], kind="stable")
        knots = np.concatenate([[lateral[order[0], 1] - 1.0], lateral[order, 1]])
        widths = np.concatenate([[40.0], np.abs(lateral[order, 0])])  # above the apex the first ribs are short
        wall = (np.interp(y, knots, widths) + 6.0).astype(np.float32)
        u = sign * x - 16.0  # from the costovertebral joints, mm
        reach = wall - 16.0
        # Posterior ribs: y = y_k - a u + b u^2 (highest about a third of the way out).
        a, b = 0.34, 0.0045 * p.rib_slope
        curve = -a * u + b * u**2
        slope = -a + 2 * b * u
        first = 2.0 * p.height + (3.0 if side == "left" else 0.0)
        spacing = p.rib_spacing_mm * p.height
        k = np.clip(np.floor((y - curve - first) / spacing + 0.5), 0, 10)
        centre = first + k * spacing + curve
        half = 5.0 + 0.3 * k
        d = np.abs(y - centre) / np.sqrt(1 + slope**2)
        ends = smoothstep(0.0, 5.0, u) * smoothstep(reach + 3.0, reach - 3.0, u)
        edge = smoothstep(0.4 * half, half, d)
        posterior = coverage(d - half, ps) * (0.55 + 0.6 * edge) * ends
        # Anterior ribs: from the lateral end of posterior rib k down and medially.
        ua = reach - u  # medially from the lateral wall, mm
        lateral_end = -a * reach + b * reach**2
        a_curve = lateral_end + 0.42 * ua + 0.0012 * ua**2
        a_slope = 0.42 + 0.0024 * ua
        ka = np.clip(np.floor((y - a_curve - first) / spacing + 0.5), 1, 6)
        a_centre = first + ka * spacing + a_curve
        da = np.abs(y - a_centre) / np.sqrt(1 + a_slope**2)
        a_ends = smoothstep(-2.0, 6.0, ua) * smoothstep(0.6 * reach, 0.45 * reach, ua)
        anterior = coverage(da - 6.0, ps) * 0.4 * a_ends
        out[win] += np.where(sign * x > 0, p.rib_density * (posterior + anterior), 0).astype(np.float32)
    return out


def _clavicles(p: AnatomyParameters, scene: Scene) -> np.ndarray:
    """Both clavicles: S-shaped bands rising from the sternal ends to the shoulders."""
    out = scene.zeros()
    top = p.clavicle_y_mm - 60.0
    win = scene.window(-175.0 * p.width, top, 175.0 * p.width, p.clavicle_y_mm + 25.0)
    if win is None:
        return out
    x, y = scene.x[win], scene.y[win]
    ps = scene.pixel_spacing
    u = np.abs(x) - 20.0  # from the sternal end, mm
    wave = 2 * np.pi / 150.0
    centre = p.clavicle_y_mm - 0.22 * u + 5.0 * np.sin(wave * u)
    slope = -0.22 + 5.0 * wave * np.cos(wave * u)
    half = 8.5 - 0.02 * u
    d = np.abs(y - centre) / np.sqrt(1 + slope**2)
    ends = smoothstep(0.0, 6.0, u) * smoothstep(150.0 * p.width, 138.0 * p.width, u)
    edge = smoothstep(0.5 * half, half, d)
    out[win] = coverage(d - half, ps) * (0.15 + 0.06 * edge) * ends
    return out


def _vessel_trees(p: AnatomyParameters, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Branching vessel markings from both hila (drawn with PIL at 2x, box-downsampled, blurred)."""
    from PIL import Image, ImageDraw  # noqa: PLC0415
    from scipy.ndimage import gaussian_filter  # noqa: PLC0415

    frame = scene.frame
    segments = []
    for side in ("right", "left"):
        segments.append(_vessel_segments(lung_shape(p, side), hilum(p, side), -1.0 if side == "right" else 1.0, p, rng))
    starts, ends, widths, amps = (np.concatenate(parts) for parts in zip(*segments))
    # Draw only over the thorax: the lungs' bounding box in pixels.
    win = frame.window(np.vstack([starts, ends]), 6.0)
    out = scene.zeros()
    if win is None:
        return out
    ss = 2
    (r0, r1), (c0, c1) = (win[0].start, win[0].stop), (win[1].start, win[1].stop)
    canvas = Image.new("F", ((c1 - c0) * ss, (r1 - r0) * ss), 0.0)
    draw = ImageDraw.Draw(canvas)
    a = (frame.to_pixel(starts) - (r0, c0)) * ss
    b = (frame.to_pixel(ends) - (r0, c0)) * ss
    w = np.maximum(1, np.rint(widths / frame.pixel_spacing_mm * ss)).astype(int)
    # Thin, faint branches first so that the thicker parents lie on top at the joints.
    for k in np.argsort(widths, kind="stable"):
        draw.line([(a[k, 1], a[k, 0]), (b[k, 1], b[k, 0])], fill=float(amps[k]), width=int(w[k]))
        if w[k] > 2:
            rr = w[k] / 2.0
            draw.ellipse([b[k, 1] - rr, b[k, 0] - rr, b[k, 1] + rr, b[k, 0] + rr], fill=float(amps[k]))
    big = np.asarray(canvas, dtype=np.float32)
    small = big.reshape(r1 - r0, ss, c1 - c0, ss).mean(axis=(1, 3))
    out[win] = gaussian_filter(small, 0.6)
    return out


def _vessel_segments(
    shape: PolarShape, start: tuple[float, float], outward: float, p: AnatomyParameters, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Segments (start, end, width mm, amplitude a.u.) of one lung's vessel tree.

    Grown level by level for all branches at once: 7 trunks fan out from the
    hilum, each branch bends slightly over 3 steps and splits in two; a
    branch stops where it would leave the lung.  Every level draws the same
    number of random values whatever was pruned, so the tree is a pure
    function of the generator's state.
    """
    n = 7
    angles = np.deg2rad(-75 + 150 * (np.arange(n) + rng.uniform(0.15, 0.85, n)) / n)
    pos = np.tile(np.asarray(start, dtype=np.float64), (n, 1))
    direction = np.stack([outward * np.cos(angles), np.sin(angles)], axis=1)
    alive = np.ones(n, dtype=bool)
    width = np.full(n, 5.5)
    amp = np.full(n, p.vessel_density)
    length = rng.uniform(38.0, 55.0, n) * p.height
    out_a, out_b, out_w, out_amp = [], [], [], []
    steps = 3
    for _level in range(5):
        for _ in range(steps):
            turn = rng.normal(0.0, 0.18, len(pos))
            c, s = np.cos(turn), np.sin(turn)
            direction = np.stack([c * direction[:, 0] - s * direction[:, 1], s * direction[:, 0] + c * direction[:, 1]], 1)
            nxt = pos + direction * (length / steps)[:, None]
            inside = shape.signed_distance(nxt[:, 0].astype(np.float32), nxt[:, 1].astype(np.float32)) < -2.0
            alive &= inside
            out_a.append(pos[alive])
            out_b.append(nxt[alive])
            out_w.append(width[alive])
            out_amp.append(amp[alive])
            pos = np.where(alive[:, None], nxt, pos)
        # Two children per branch, turned to either side.
        turn = np.concatenate([-rng.uniform(0.3, 0.6, len(pos)), rng.uniform(0.3, 0.6, len(pos))])
        pos = np.concatenate([pos, pos])
        direction = np.concatenate([direction, direction])
        c, s = np.cos(turn), np.sin(turn)
        direction = np.stack([c * direction[:, 0] - s * direction[:, 1], s * direction[:, 0] + c * direction[:, 1]], 1)
        alive = np.concatenate([alive, alive])
        width = np.maximum(np.concatenate([width, width]) * 0.7, 0.9)
        amp = np.concatenate([amp, amp]) * 0.85
        length = np.concatenate([length, length]) * rng.uniform(0.7, 0.85, len(pos))
    return (np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_w), np.concatenate(out_amp))


__all__ = [
    "ANATOMY",
    "AnatomyParameters",
    "body_half_width",
    "heart_shape",
    "hilum",
    "lung_shape",
    "mediastinum_borders",
    "diaphragm_level",
    "render_anatomy",
]
