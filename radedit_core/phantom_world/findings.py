"""Findings inside the lungs: pneumothorax, pleural effusion, pulmonary edema, consolidation.

Each finding is a layer on the lung fields drawn by
:mod:`~radedit_core.phantom_world.anatomy`, and its mask is **the region the
finding changes** (the pixels where its layer is non-zero), always inside
the lung fields:

* ``pneumothorax`` (one side): the lung collapses towards the lower hilum,
  most at the apex and laterally.  Between the chest wall and the collapsed
  lung the pleural air is darker (``lucency``) and has *no lung markings*
  (the lung texture is removed there); the visceral pleural edge shows as a
  thin white line.  Mask: the pleural air space plus the pleural line.
* ``effusion`` (right, left or bilateral): fluid at the lung base with a
  meniscus (higher laterally), blunting the costophrenic angle; large
  effusions hide the hemidiaphragm.  It is dense (close to soft tissue) and
  hides the lung markings it covers.  Mask: where the fluid adds density.
* ``edema`` (bilateral): perihilar "bat-wing" haze with a basal gradient,
  indistinct (blurred) vessels, and Kerley B lines at the lateral bases when
  moderate or severe.  Mask: where the haze is non-zero.
* ``consolidation`` (one lobe, upper or lower): a dense, fuzzy-edged lobar
  opacity that hides the markings it covers; a right upper lobe
  consolidation stops sharply at the horizontal fissure.  Mask: where the
  opacity is non-zero.

Sizes/severities ("small"/"moderate"/"large"; edema "mild"/"moderate"/
"severe") are drawn with configurable probabilities and named in the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import PolarShape, smooth_noise, smoothstep
from .rendering import Layer, Scene

FINDINGS = ("pneumothorax", "effusion", "edema", "consolidation")
SIZES = ("small", "moderate", "large")
SEVERITIES = ("mild", "moderate", "severe")
SIDES = ("right", "left")


def _outward(side: str) -> float:
    """+1 if the lung's lateral direction is +x (the left lung, on the image right)."""
    return -1.0 if side == "right" else 1.0


def _choice(rng: np.random.Generator, options: dict[str, float]) -> str:
    names = list(options)
    p = np.asarray([options[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


@dataclass
class PneumothoraxParameters:
    side: str
    size: str
    collapse: float  # fraction of the lung radius lost at the apex
    lucency: float  # extra darkness of the pleural air, a.u.
    line_density: float  # visceral pleural line, a.u.
    line_width_mm: float

    @classmethod
    def sample(cls, rng: np.random.Generator, sizes: dict[str, float]) -> "PneumothoraxParameters":
        side = SIDES[int(rng.integers(0, 2))]
        size = _choice(rng, sizes)
        low, high = {"small": (0.07, 0.13), "moderate": (0.16, 0.26), "large": (0.30, 0.45)}[size]
        return cls(
            side=side,
            size=size,
            collapse=float(rng.uniform(low, high)),
            lucency=float(rng.uniform(0.1, 0.15)),
            line_density=float(rng.uniform(0.08, 0.11)),
            line_width_mm=float(rng.uniform(1.0, 1.4)),
        )


@dataclass
class EffusionParameters:
    side: str  # "right", "left" or "bilateral"
    size: str
    heights_mm: list[float]  # meniscus height at the lateral wall above the costophrenic angle, per side (right, left)
    density: float

    @classmethod
    def sample(cls, rng: np.random.Generator, sizes: dict[str, float]) -> "EffusionParameters":
        side = _choice(rng, {"right": 0.4, "left": 0.4, "bilateral": 0.2})
        size = _choice(rng, sizes)
        low, high = {"small": (22.0, 36.0), "moderate": (60.0, 95.0), "large": (120.0, 170.0)}[size]
        return cls(side=side, size=size, heights_mm=[float(v) for v in rng.uniform(low, high, 2)], density=float(rng.uniform(0.42, 0.52)))

    @property
    def sides(self) -> tuple[str, ...]:
        return SIDES if self.side == "bilateral" else (self.side,)


@dataclass
class EdemaParameters:
    severity: str
    density: float  # peak haze, a.u.
    extent: float  # reach of the perihilar haze, fraction of the lung
    kerley_density: float  # 0 for mild edema
    kerley_phase_mm: float

    @classmethod
    def sample(cls, rng: np.random.Generator, severities: dict[str, float]) -> "EdemaParameters":
        severity = _choice(rng, severities)
        level = SEVERITIES.index(severity)
        return cls(
            severity=severity,
            density=float(rng.uniform(0.85, 1.15) * (0.15, 0.22, 0.3)[level]),
            extent=float(rng.uniform(0.9, 1.1) * (0.6, 0.75, 0.9)[level]),
            kerley_density=0.0 if level == 0 else float(rng.uniform(0.04, 0.07)),
            kerley_phase_mm=float(rng.uniform(0.0, 7.0)),
        )


@dataclass
class ConsolidationParameters:
    side: str
    lobe: str  # "upper" or "lower"
    center: tuple[float, float]  # (from the hilum towards the lateral wall, from the apex down), fractions
    radius_mm: float
    aspect: float
    wobble: list[float]  # radial harmonics 2..4 (cos, sin)
    density: float
    edge_mm: float
    texture_seed: int

    @classmethod
    def sample(cls, rng: np.random.Generator, lobes: dict[str, float]) -> "ConsolidationParameters":
        side = SIDES[int(rng.integers(0, 2))]
        lobe = _choice(rng, lobes)
        fy = rng.uniform(0.2, 0.4) if lobe == "upper" else rng.uniform(0.62, 0.8)
        return cls(
            side=side,
            lobe=lobe,
            center=(float(rng.uniform(0.3, 0.65)), float(fy)),
            radius_mm=float(rng.uniform(34.0, 52.0)),
            aspect=float(rng.uniform(0.8, 1.4)),
            wobble=[float(v) for v in rng.normal(0.0, 0.08, 6)],
            density=float(rng.uniform(0.32, 0.44)),
            edge_mm=float(rng.uniform(6.0, 11.0)),
            texture_seed=int(rng.integers(0, 2**31 - 1)),
        )


@dataclass
class FindingsParameters:
    """The findings of one case (None = absent)."""

    pneumothorax: PneumothoraxParameters | None = None
    effusion: EffusionParameters | None = None
    edema: EdemaParameters | None = None
    consolidation: ConsolidationParameters | None = None

    def present(self) -> dict[str, int]:
        return {name: int(getattr(self, name) is not None) for name in FINDINGS}


# -- rendering ------------------------------------------------------------------------------


def _lung(scene: Scene, side: str) -> tuple[PolarShape, np.ndarray, np.ndarray, tuple[float, float]]:
    shapes = scene.shared["lung_shapes"]
    return (
        shapes[side],
        scene.shared["lung_coverage"][side],
        scene.shared["lung_texture"],
        scene.shared["hila"][side],
    )


def collapse_center(shape: PolarShape, hilum: tuple[float, float]) -> tuple[float, float]:
    """The point a collapsing lung shrinks towards: below the hilum."""
    _, y0, _, y1 = shape.bounds
    return hilum[0], hilum[1] + 0.15 * (y1 - y0)


def render_pneumothorax(f: PneumothoraxParameters, scene: Scene) -> Layer:
    shape, cov, texture, hilum = _lung(scene, f.side)
    out = scene.zeros()
    win = scene.window(*shape.bounds)
    if win is None:
        return Layer.from_density("pneumothorax", out)
    x, y = scene.x[win], scene.y[win]
    ps = scene.pixel_spacing
    cx, cy = collapse_center(shape, hilum)
    dx, dy = x - np.float32(cx), y - np.float32(cy)
    rho = np.maximum(np.hypot(dx, dy), 1e-3)
    lateral = _outward(f.side) * dx / rho
    up = -dy / rho
    # Collapse is largest towards the apex and the lateral wall, none towards the base.
    weight = smoothstep(-0.35, 0.7, 0.55 * lateral + 0.85 * up)
    scale = 1.0 - f.collapse * weight
    # A pixel is inside the collapsed lung if its preimage under the radial shrink is inside the lung.
    sd = shape.signed_distance(np.float32(cx) + dx / scale, np.float32(cy) + dy / scale) * scale
    air = cov[win] * np.clip(0.5 + sd / ps, 0.0, 1.0)
    half = f.line_width_mm / 2
    line = cov[win] * smoothstep(half, 0.0, np.abs(sd + half))
    out[win] = -air * (f.lucency + texture[win]) + f.line_density * line
    return Layer.from_density("pneumothorax", out)


def render_effusion(f: EffusionParameters, scene: Scene) -> Layer:
    out = scene.zeros()
    for side in f.sides:
        shape, cov, texture, hilum = _lung(scene, side)
        height = f.heights_mm[SIDES.index(side)]
        cp = shape.contour[10]  # costophrenic angle
        x0, _, x1, y1 = shape.bounds
        win = scene.window(x0, cp[1] - height - 30.0, x1, y1)
        if win is None:
            continue
        x, y = scene.x[win], scene.y[win]
        width = max(abs(cp[0] - hilum[0]), 1.0)
        lateral = np.clip(_outward(side) * (x - hilum[0]) / width, 0.0, 1.0)
        top = cp[1] - height * (0.7 + 0.3 * lateral**1.5)  # meniscus: highest at the lateral wall
        edge = 8.0 + 0.12 * height
        fluid = smoothstep(top - 2.0, top + edge, y)
        density = f.density * fluid * (0.75 + 0.25 * smoothstep(top, top + 50.0, y))
        out[win] += cov[win] * (density - 0.8 * fluid * texture[win])
    return Layer.from_density("effusion", out)


def render_edema(f: EdemaParameters, scene: Scene) -> Layer:
    from scipy.ndimage import gaussian_filter  # noqa: PLC0415

    out = scene.zeros()
    ps = scene.pixel_spacing
    for side in SIDES:
        shape, cov, texture, hilum = _lung(scene, side)
        x0, y0, x1, y1 = shape.bounds
        win = scene.window(x0, y0, x1, y1)
        if win is None:
            continue
        x, y = scene.x[win], scene.y[win]
        lung_w, lung_h = x1 - x0, y1 - y0
        rn = np.hypot((x - hilum[0]) / (f.extent * 0.85 * lung_w), (y - hilum[1] - 0.08 * lung_h) / (f.extent * 0.55 * lung_h))
        haze = smoothstep(1.0, 0.25, rn)
        basal = 0.45 * smoothstep(y0 + (1.05 - 0.5 * f.extent) * lung_h, y1, y)
        profile = np.clip(haze + basal, 0.0, 1.0)
        blurred = gaussian_filter(texture[win], 2.2 / ps)
        density = f.density * profile + profile * (blurred - texture[win])
        if f.kerley_density > 0:
            sd = shape.signed_distance(x, y)
            v = np.abs(np.mod(y + f.kerley_phase_mm, 7.0) - 3.5)
            lines = smoothstep(0.9, 0.4, v) * smoothstep(-16.0, -10.0, sd) * smoothstep(y0 + 0.55 * lung_h, y0 + 0.7 * lung_h, y)
            density += f.kerley_density * lines * (profile > 0)
        out[win] += cov[win] * density
    return Layer.from_density("edema", out)


def consolidation_shape(f: ConsolidationParameters, lung: PolarShape, hilum: tuple[float, float]) -> PolarShape:
    """The consolidated region's outline (before the lung and fissure clip it)."""
    x0, y0, x1, y1 = lung.bounds
    lateral_x = x0 if f.side == "right" else x1
    cx = hilum[0] + f.center[0] * (lateral_x - hilum[0])
    cy = y0 + f.center[1] * (y1 - y0)
    t = np.linspace(-np.pi, np.pi, 48, endpoint=False)
    c2, s2, c3, s3, c4, s4 = f.wobble
    wobble = 1 + c2 * np.cos(2 * t) + s2 * np.sin(2 * t) + c3 * np.cos(3 * t) + s3 * np.sin(3 * t) + c4 * np.cos(4 * t) + s4 * np.sin(4 * t)
    rx, ry = f.radius_mm * np.sqrt(f.aspect), f.radius_mm / np.sqrt(f.aspect)
    pts = np.stack([cx + rx * wobble * np.cos(t), cy + ry * wobble * np.sin(t)], axis=1)
    return PolarShape(pts, (cx, cy))


def render_consolidation(f: ConsolidationParameters, scene: Scene) -> Layer:
    lung, cov, texture, hilum = _lung(scene, f.side)
    blob = consolidation_shape(f, lung, hilum)
    out = scene.zeros()
    bx0, by0, bx1, by1 = blob.bounds
    win = scene.window(bx0 - f.edge_mm, by0 - f.edge_mm, bx1 + f.edge_mm, by1 + f.edge_mm)
    if win is None:
        return Layer.from_density("consolidation", out)
    x, y = scene.x[win], scene.y[win]
    profile = smoothstep(f.edge_mm, -f.edge_mm, blob.signed_distance(x, y))
    if f.side == "right" and f.lobe == "upper":
        fissure = blob.center[1] + 0.55 * (by1 - blob.center[1])
        profile = profile * smoothstep(fissure + 1.2, fissure - 1.2, y)
    # Patchy airspace filling; the vessels' bronchi stay aerated and show dark (air bronchograms).
    patches = np.clip(0.8 + 0.2 * smooth_noise(np.random.default_rng(f.texture_seed), x.shape, 4.0 / scene.pixel_spacing), 0.45, 1.0)
    out[win] = cov[win] * profile * (f.density * patches - 1.4 * texture[win])
    return Layer.from_density("consolidation", out)


RENDERERS = {
    "pneumothorax": render_pneumothorax,
    "effusion": render_effusion,
    "edema": render_edema,
    "consolidation": render_consolidation,
}


def render_findings(findings: FindingsParameters, scene: Scene) -> dict[str, Layer]:
    """Layers of the present findings (absent ones are not drawn)."""
    layers = {}
    for name in FINDINGS:
        params = getattr(findings, name)
        if params is not None:
            layers[name] = RENDERERS[name](params, scene)
    return layers


__all__ = [
    "ConsolidationParameters",
    "EdemaParameters",
    "EffusionParameters",
    "FINDINGS",
    "FindingsParameters",
    "PneumothoraxParameters",
    "SEVERITIES",
    "SIDES",
    "SIZES",
    "collapse_center",
    "consolidation_shape",
    "render_findings",
]
