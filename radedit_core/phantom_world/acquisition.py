"""Acquisition sites: field of view, laterality marker, contrast curve, exposure and noise.

A *site* is a hospital's way of taking and processing a chest radiograph.
The phantom world's sites differ in cues a classifier can pick up instead of
pathology (the shortcut of the paper's Sec. 5.2, after DeGrave et al.):

* **field of view**: the detector width imaged onto the grid (pixel spacing)
  and where the patient sits in it;
* **laterality marker**: a lead letter on the detector, in the site's style
  (letter, outline frame or plastic plate, size, stroke) at the site's corner;
* **contrast curve**: the processing's characteristic curve (gain and
  centre), with per-case exposure variation;
* **noise**: quantum noise level and grain, and the anode heel effect.

The image is formed pointwise from the attenuation map ``D`` (a.u., see
:mod:`~radedit_core.phantom_world.rendering`)::

    z = gain * (D + heel - centre) + noise_sigma * exp(0.35 * clip(D, 0, 4)) * n
    image = 0.5 + 0.5 * z / sqrt(1 + z^2)

with ``n`` a fixed unit-variance grain field of the case.  The algebraic
sigmoid has soft shoulders (no hard clipping), so the image lies strictly in
(0, 1), bright = dense, and every change of ``D`` changes the pixel.  Noise
that depends on ``D`` only at the same pixel (more noise behind dense
structures, as fewer photons arrive there) keeps rendering pointwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import Frame, coverage, polyline_distance, rounded_box_distance, smooth_noise
from .rendering import Layer, Scene

# Glyphs as polylines in a box 0.62 wide and 1 high (y down), for lead letters.
_ARC = np.linspace(-np.pi / 2, np.pi / 2, 9)
GLYPHS: dict[str, list[np.ndarray]] = {
    "L": [np.array([(0.0, 0.0), (0.0, 1.0), (0.6, 1.0)])],
    "R": [
        np.vstack(
            [
                [(0.0, 1.0), (0.0, 0.0), (0.32, 0.0)],
                np.stack([0.32 + 0.25 * np.cos(_ARC), 0.25 + 0.25 * np.sin(_ARC)], axis=1)[1:],
                [(0.0, 0.5)],
            ]
        ),
        np.array([(0.28, 0.5), (0.62, 1.0)]),
    ],
}


@dataclass
class MarkerStyle:
    """A site's laterality marker.

    ``position`` is the marker's centre as fractions of the image width and
    height; ``style`` is "frame" (the letter inside a thin outline) or
    "plate" (the letter on a plastic plate, which shows faintly).
    """

    letter: str = "R"
    position: tuple[float, float] = (0.1, 0.1)
    height_mm: float = 16.0
    stroke_mm: float = 2.2
    style: str = "frame"
    density: float = 1.6

    def __post_init__(self) -> None:
        self.position = tuple(float(v) for v in self.position)  # YAML gives lists


@dataclass
class SiteConfig:
    """How one site acquires and processes a chest radiograph.

    Lengths in mm; ``contrast_gain``/``contrast_center`` define the display
    curve on the attenuation map (a.u.); ``noise_sigma`` is the quantum noise
    in a.u. behind no attenuation; DICOM output uses ``photometric``,
    ``manufacturer``, ``institution`` and ``station``.
    """

    probability: float = 0.5
    field_of_view_mm: float = 380.0
    center_mm: tuple[float, float] = (0.0, 130.0)
    position_jitter_mm: float = 10.0
    rotation_sd_deg: float = 1.5
    contrast_gain: float = 2.0
    contrast_center: float = 0.7
    exposure_sd: float = 0.04
    noise_sigma: float = 0.012
    noise_grain_px: float = 0.7
    heel_effect: float = 0.03
    marker: MarkerStyle = field(default_factory=MarkerStyle)
    photometric: str = "MONOCHROME2"
    manufacturer: str = "Phantom Imaging"
    institution: str = "Site A"
    station: str = "CR-A1"

    def __post_init__(self) -> None:
        self.center_mm = tuple(float(v) for v in self.center_mm)
        if isinstance(self.marker, dict):
            self.marker = MarkerStyle(**self.marker)


def default_sites() -> dict[str, SiteConfig]:
    """Site A: tight field of view, soft contrast, "R" in a frame top left, MONOCHROME2.
    Site B: wide field of view, harder and darker contrast, more noise, "L" on a plate
    top right, MONOCHROME1."""
    return {
        "A": SiteConfig(
            probability=0.5,
            field_of_view_mm=380.0,
            center_mm=(0.0, 128.0),
            contrast_gain=1.9,
            contrast_center=0.68,
            noise_sigma=0.010,
            noise_grain_px=0.7,
            marker=MarkerStyle(letter="R", position=(0.09, 0.09), height_mm=16.0, stroke_mm=2.0, style="frame"),
            photometric="MONOCHROME2",
            manufacturer="Phantom Imaging",
            institution="Phantom General Hospital (site A)",
            station="CR-A1",
        ),
        "B": SiteConfig(
            probability=0.5,
            field_of_view_mm=440.0,
            center_mm=(0.0, 150.0),
            contrast_gain=2.5,
            contrast_center=0.78,
            noise_sigma=0.018,
            noise_grain_px=1.0,
            marker=MarkerStyle(letter="L", position=(0.86, 0.16), height_mm=22.0, stroke_mm=3.4, style="plate"),
            photometric="MONOCHROME1",
            manufacturer="Phantom Radiography",
            institution="Phantom University Clinic (site B)",
            station="DR-B7",
        ),
    }


@dataclass
class AcquisitionParameters:
    """One case's acquisition, sampled from its site."""

    site: str
    pixel_spacing_mm: float
    center_mm: tuple[float, float]
    rotation_deg: float
    contrast_gain: float
    contrast_center: float
    noise_sigma: float
    noise_grain_px: float
    heel_effect: float
    heel_angle_deg: float
    marker: MarkerStyle
    marker_offset_px: tuple[float, float]
    noise_seed: int
    photometric: str = "MONOCHROME2"
    manufacturer: str = ""
    institution: str = ""
    station: str = ""

    @classmethod
    def sample(cls, name: str, site: SiteConfig, columns: int, rng: np.random.Generator) -> "AcquisitionParameters":
        jitter = rng.normal(0.0, site.position_jitter_mm, 2)
        return cls(
            site=name,
            pixel_spacing_mm=site.field_of_view_mm / columns,
            center_mm=(site.center_mm[0] + float(jitter[0]), site.center_mm[1] + float(jitter[1])),
            rotation_deg=float(rng.normal(0.0, site.rotation_sd_deg)),
            contrast_gain=site.contrast_gain * float(rng.normal(1.0, 0.03)),
            contrast_center=site.contrast_center + float(rng.normal(0.0, site.exposure_sd)),
            noise_sigma=site.noise_sigma * float(rng.uniform(0.85, 1.15)),
            noise_grain_px=site.noise_grain_px,
            heel_effect=site.heel_effect * float(rng.uniform(0.5, 1.5)),
            heel_angle_deg=float(rng.uniform(0.0, 360.0)),
            marker=site.marker,
            marker_offset_px=(float(rng.normal(0.0, 4.0)), float(rng.normal(0.0, 4.0))),
            noise_seed=int(rng.integers(0, 2**31 - 1)),
            photometric=site.photometric,
            manufacturer=site.manufacturer,
            institution=site.institution,
            station=site.station,
        )

    def frame(self, rows: int, columns: int) -> Frame:
        return Frame(rows, columns, self.pixel_spacing_mm, self.center_mm, self.rotation_deg)


def render_marker(acq: AcquisitionParameters, scene: Scene) -> Layer:
    """The laterality marker: lead letter strokes (and frame or plate) on the detector, upright in the image."""
    style = acq.marker
    frame = scene.frame
    ps = frame.pixel_spacing_mm
    h = style.height_mm / ps  # letter height in pixels
    glyph = GLYPHS.get(style.letter.upper())
    if glyph is None:
        raise ValueError(f"no glyph for marker letter {style.letter!r}; choose from {sorted(GLYPHS)}")
    center_rc = np.array(
        [style.position[1] * (frame.rows - 1) + acq.marker_offset_px[1], style.position[0] * (frame.columns - 1) + acq.marker_offset_px[0]]
    )
    width = 0.62 * h
    origin = center_rc - np.array([h / 2, width / 2])
    strokes = [np.stack([origin[0] + line[:, 1] * h, origin[1] + line[:, 0] * h], axis=1) for line in glyph]
    pad = 0.45 * h
    box_rc = np.array(
        [
            (origin[0] - pad, origin[1] - pad),
            (origin[0] - pad, origin[1] + width + pad),
            (origin[0] + h + pad, origin[1] + width + pad),
            (origin[0] + h + pad, origin[1] - pad),
        ]
    )
    out = scene.zeros()
    win = frame.window(frame.to_patient(box_rc), style.stroke_mm + 2.0)
    if win is None:
        return Layer.from_density("marker", out)
    x, y = scene.x[win], scene.y[win]
    r = style.stroke_mm / 2.0
    letter = np.zeros(x.shape, dtype=np.float32)
    for stroke in strokes:
        d, _ = polyline_distance(x, y, frame.to_patient(stroke))
        letter = np.maximum(letter, coverage(d - r, ps))
    density = style.density * letter
    if style.style == "frame":
        outline = frame.to_patient(np.vstack([box_rc, box_rc[:1]]))
        d, _ = polyline_distance(x, y, outline)
        density = np.maximum(density, 0.6 * style.density * coverage(d - 0.3 * r, ps))
    elif style.style == "plate":
        center = frame.to_patient(center_rc[None])[0]
        half = ((width / 2 + pad) * ps, (h / 2 + pad) * ps)
        plate = coverage(rounded_box_distance(x, y, tuple(center), half, 0.3 * half[0], -acq.rotation_deg), ps)
        density = np.maximum(density, 0.25 * plate)
    else:
        raise ValueError(f"marker style must be 'frame' or 'plate', got {style.style!r}")
    out[win] = density
    return Layer.from_density("marker", out)


def heel_field(shape: tuple[int, int], amplitude: float, angle_deg: float) -> np.ndarray:
    """The anode heel effect: a linear exposure gradient across the image (a.u., +-amplitude at the edges)."""
    a = np.deg2rad(angle_deg)
    v = np.linspace(-1.0, 1.0, shape[0], dtype=np.float32)[:, None]
    u = np.linspace(-1.0, 1.0, shape[1], dtype=np.float32)[None, :]
    return (np.float32(amplitude) * (np.float32(np.cos(a)) * u + np.float32(np.sin(a)) * v)).astype(np.float32)


def expose(attenuation_map: np.ndarray, acq: AcquisitionParameters) -> np.ndarray:
    """Attenuation map (a.u.) -> display image in (0, 1), bright = dense (float32; see the module docstring)."""
    rng = np.random.default_rng(acq.noise_seed)
    shape = attenuation_map.shape
    grain = smooth_noise(rng, shape, acq.noise_grain_px) if acq.noise_grain_px > 0 else rng.standard_normal(shape).astype(np.float32)
    heel = heel_field(shape, acq.heel_effect, acq.heel_angle_deg)
    d = attenuation_map.astype(np.float32)
    sigma = np.float32(acq.noise_sigma) * np.exp(np.float32(0.35) * np.clip(d, 0.0, 4.0))
    z = np.float32(acq.contrast_gain) * (d + heel - np.float32(acq.contrast_center)) + sigma * grain
    return (0.5 + 0.5 * z / np.sqrt(1.0 + z * z)).astype(np.float32)


__all__ = [
    "AcquisitionParameters",
    "GLYPHS",
    "MarkerStyle",
    "SiteConfig",
    "default_sites",
    "expose",
    "render_marker",
]
