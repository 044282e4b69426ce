"""Support devices: chest drain, pacemaker with leads, ECG electrodes.

Devices are drawn on top of the anatomy and placed relative to it (the lung
outline, the heart, the clavicles), so they sit where a radiologist expects
them.  Masks are the devices' own drawings:

* ``drain``: a chest tube entering through the lateral chest wall at the 4th
  to 6th intercostal space and running up along the lateral lung towards the
  apex (aimed at the air of a pneumothorax: on the pneumothorax side, the
  tube crosses the pleural air), its outer part hanging down outside the
  chest.  It shows as two parallel thin white lines (the tube walls) around
  a fainter lumen, as described in the paper's Appendix 0.A.
* ``pacemaker``: a generator (titanium can with the battery visible inside,
  a less dense header with connector pins) in the pectoral region below the
  clavicle, and one or two leads through the subclavian vein and the
  superior vena cava into the right atrium (J-shaped tip) and the right
  ventricular apex.
* ``ecg``: 3 to 5 monitoring electrodes (foam pad, metal ring and snap) with
  their wires running off the chest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import PolarShape, catmull_rom, coverage, rounded_box_distance, smoothstep, stroke_distance
from .rendering import Layer, Scene

DEVICES = ("drain", "pacemaker", "ecg")
#: Monitoring electrode sites (mm): right and left infraclavicular, left and right lower chest, chest lead.
ECG_SITES = ((-115.0, 20.0), (115.0, 20.0), (125.0, 255.0), (-125.0, 262.0), (70.0, 175.0))


@dataclass
class DrainParameters:
    side: str
    entry: float  # entry height as a fraction of the lung height
    radius_mm: float
    wall_density: float
    lumen_density: float
    tip_mm: tuple[float, float]  # tip offset from the apex: (lateral, down)
    bend_mm: float
    outside_angle_deg: float

    @classmethod
    def sample(cls, rng: np.random.Generator, side: str) -> "DrainParameters":
        return cls(
            side=side,
            entry=float(rng.uniform(0.5, 0.68)),
            radius_mm=float(rng.uniform(2.8, 4.0)),
            wall_density=float(rng.uniform(0.5, 0.7)),
            lumen_density=float(rng.uniform(0.1, 0.16)),
            tip_mm=(float(rng.uniform(4.0, 14.0)), float(rng.uniform(8.0, 16.0))),
            bend_mm=float(rng.normal(0.0, 5.0)),
            outside_angle_deg=float(rng.uniform(25.0, 60.0)),
        )


@dataclass
class PacemakerParameters:
    side: str  # side of the generator
    position_mm: tuple[float, float]  # generator offset from its default place
    angle_deg: float
    size_mm: tuple[float, float]  # generator width, height
    leads: int  # 1 (ventricular) or 2 (atrial and ventricular)
    lead_radius_mm: float
    slack_mm: float

    @classmethod
    def sample(cls, rng: np.random.Generator, left: float = 0.9) -> "PacemakerParameters":
        return cls(
            side="left" if rng.random() < left else "right",
            position_mm=(float(rng.normal(0.0, 8.0)), float(rng.normal(0.0, 8.0))),
            angle_deg=float(rng.uniform(-25.0, 25.0)),
            size_mm=(float(rng.uniform(40.0, 48.0)), float(rng.uniform(36.0, 44.0))),
            leads=1 if rng.random() < 0.3 else 2,
            lead_radius_mm=float(rng.uniform(0.9, 1.2)),
            slack_mm=float(rng.uniform(10.0, 25.0)),
        )


@dataclass
class EcgParameters:
    positions_mm: list[tuple[float, float]]  # electrode centres
    wire_angles_deg: list[float]
    wire_bends_mm: list[float]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "EcgParameters":
        n = int(rng.choice([3, 4, 5], p=[0.5, 0.3, 0.2]))
        jitter = rng.normal(0.0, 12.0, (5, 2))
        angles = rng.normal(0.0, 25.0, 5)
        bends = rng.normal(0.0, 15.0, 5)
        positions = [(float(ECG_SITES[k][0] + jitter[k, 0]), float(ECG_SITES[k][1] + jitter[k, 1])) for k in range(n)]
        return cls(positions_mm=positions, wire_angles_deg=[float(a) for a in angles[:n]], wire_bends_mm=[float(b) for b in bends[:n]])


@dataclass
class DevicesParameters:
    """The devices of one case (None = absent)."""

    drain: DrainParameters | None = None
    pacemaker: PacemakerParameters | None = None
    ecg: EcgParameters | None = None

    def present(self) -> dict[str, int]:
        return {name: int(getattr(self, name) is not None) for name in DEVICES}


# -- rendering ------------------------------------------------------------------------------


def _stroke(scene: Scene, out: np.ndarray, path: np.ndarray, profile, reach_mm: float) -> None:
    """Draw ``profile(distance)`` along ``path`` (mm; one point draws a disc) into ``out`` by maximum.

    ``reach_mm`` bounds the profile's support: it is evaluated only within
    that distance of the path.
    """
    found = stroke_distance(scene.frame, scene.x, scene.y, path, reach_mm)
    if found is None:
        return
    win, d = found
    out[win] = np.maximum(out[win], profile(d))


def drain_path(f: DrainParameters, lung: PolarShape) -> np.ndarray:
    """The drain's centreline (mm, dense polyline) from outside the chest to the tip at the apex."""
    outward = -1.0 if f.side == "right" else 1.0
    contour = lung.contour
    lateral = contour[:11]  # apex to costophrenic angle
    apex = contour[np.argmin(contour[:, 1])]
    _, y0, _, y1 = lung.bounds
    y_entry = y0 + f.entry * (y1 - y0)
    y_mid = 0.5 * (y_entry + apex[1])

    def wall(yy: float) -> float:
        return float(np.interp(yy, lateral[:, 1], lateral[:, 0]))

    a = np.deg2rad(f.outside_angle_deg)
    entry = np.array([wall(y_entry) + outward * 14.0, y_entry])
    control = [
        entry + np.array([outward * 160.0 * np.cos(a), 160.0 * np.sin(a)]),
        entry + np.array([outward * 45.0 * np.cos(a), 45.0 * np.sin(a)]),
        entry,
        np.array([wall(y_entry - 22.0) - outward * 9.0, y_entry - 22.0]),
        np.array([wall(y_mid) - outward * (13.0 + f.bend_mm), y_mid]),
        np.array([apex[0] + outward * f.tip_mm[0], apex[1] + f.tip_mm[1]]),
    ]
    return catmull_rom(np.array(control), samples_per_segment=10)


def render_drain(f: DrainParameters, scene: Scene) -> Layer:
    lung = scene.shared["lung_shapes"][f.side]
    path = drain_path(f, lung)
    out = scene.zeros()
    r = f.radius_mm
    ps = scene.pixel_spacing

    def tube(d: np.ndarray) -> np.ndarray:
        walls = smoothstep(r - 1.7, r - 0.8, d)
        return coverage(d - r, ps) * (f.lumen_density + f.wall_density * walls)

    _stroke(scene, out, path, tube, r + 1.0)
    return Layer.from_density("drain", out)


def pacemaker_geometry(f: PacemakerParameters, scene: Scene) -> tuple[np.ndarray, list[np.ndarray]]:
    """(generator centre, lead centrelines) in mm, placed on this case's anatomy."""
    heart: PolarShape = scene.shared["heart_shape"]
    clavicle_y = float(scene.shared["clavicle_y_mm"])
    lateral = 1.0 if f.side == "left" else -1.0
    center = np.array([lateral * 112.0 + f.position_mm[0], clavicle_y + 40.0 + f.position_mm[1]])
    header = center + np.array([-lateral * 0.25 * f.size_mm[0], -0.5 * f.size_mm[1]])
    hc = np.asarray(heart.center)
    contour = heart.contour
    apex = contour[np.argmax(contour[:, 0] + 0.5 * contour[:, 1])]
    ra = np.array([contour[:, 0].min() + 14.0, hc[1] - 10.0])
    rv_tip = 0.72 * apex + 0.28 * hc
    # Subclavian vein, brachiocephalic vein and superior vena cava into the right atrium.
    common = [
        header,
        header + np.array([lateral * f.slack_mm, -10.0]),
        np.array([lateral * 55.0, clavicle_y + 12.0]),
        np.array([lateral * 20.0 - 6.0, clavicle_y + 24.0]),
        np.array([-18.0, hc[1] - 80.0]),
        np.array([-22.0, hc[1] - 40.0]),
        ra + np.array([2.0, -6.0]),
    ]
    # Ventricular lead: through the tricuspid valve to the right ventricular apex.
    ventricular = common + [0.5 * (ra + hc) + np.array([0.0, 22.0]), 0.5 * (0.5 * (ra + hc) + rv_tip) + np.array([0.0, 12.0]), rv_tip]
    leads = [catmull_rom(np.array(ventricular), 10)]
    if f.leads == 2:
        # Atrial lead: a J-shaped tip hooked up into the right atrial appendage.
        atrial = common + [ra + np.array([6.0, 12.0]), ra + np.array([16.0, 8.0]), ra + np.array([17.0, -8.0])]
        leads.append(catmull_rom(np.array(atrial), 10))
    return center, leads


def render_pacemaker(f: PacemakerParameters, scene: Scene) -> Layer:
    center, leads = pacemaker_geometry(f, scene)
    out = scene.zeros()
    ps = scene.pixel_spacing
    half = (f.size_mm[0] / 2, f.size_mm[1] / 2)
    r = f.lead_radius_mm
    for lead in leads:
        _stroke(scene, out, lead, lambda d: 1.0 * coverage(d - r, ps), r + 1.0)
        _stroke(scene, out, lead[-1], lambda d: 1.1 * coverage(d - 2.2 * r, ps), 2.2 * r + 1.0)
    extent = np.array([center - max(half) - 4.0, center + max(half) + 4.0])
    win = scene.frame.window(extent, 2.0)
    if win is not None:
        x, y = scene.x[win], scene.y[win]
        angle = f.angle_deg
        can = coverage(rounded_box_distance(x, y, tuple(center), half, 0.45 * min(half), angle), ps)
        a = np.deg2rad(angle)
        up = np.array([np.sin(a), -np.cos(a)])  # the header side, rotated with the can
        battery_c = center - up * 0.12 * f.size_mm[1]
        battery = coverage(rounded_box_distance(x, y, tuple(battery_c), (0.36 * f.size_mm[0], 0.28 * f.size_mm[1]), 3.0, angle), ps)
        header_c = center + up * (half[1] + 4.0)
        header = coverage(rounded_box_distance(x, y, tuple(header_c), (0.3 * f.size_mm[0], 6.0), 3.0, angle), ps)
        pins = np.zeros_like(can)
        side = np.array([np.cos(a), np.sin(a)])
        for k in (-1.0, 1.0):
            pin_c = header_c + side * k * 0.12 * f.size_mm[0]
            pins = np.maximum(pins, coverage(rounded_box_distance(x, y, tuple(pin_c), (1.6, 4.0), 0.8, angle), ps))
        generator = np.maximum(can * (1.3 + 0.5 * battery), header * (0.3 + 0.7 * pins))
        out[win] = np.maximum(out[win], generator)
    return Layer.from_density("pacemaker", out)


def render_ecg(f: EcgParameters, scene: Scene) -> Layer:
    out = scene.zeros()
    ps = scene.pixel_spacing
    for (cx, cy), angle, bend in zip(f.positions_mm, f.wire_angles_deg, f.wire_bends_mm):
        c = np.array([cx, cy])
        # Wires run away from the midline and upwards, off the chest.
        base = np.deg2rad((-35.0 if cx > 0 else -145.0) + angle)
        direction = np.array([np.cos(base), np.sin(base)])
        normal = np.array([-direction[1], direction[0]])
        wire = catmull_rom(np.array([c, c + direction * 60 + normal * bend, c + direction * 150 - normal * bend, c + direction * 320]), 10)
        _stroke(scene, out, wire, lambda d: 0.3 * coverage(d - 0.7, ps), 2.0)
        _stroke(
            scene,
            out,
            c,
            lambda d: np.maximum.reduce(
                [
                    0.05 * coverage(d - 11.0, ps),
                    0.45 * coverage(np.abs(d - 4.6) - 0.7, ps),
                    1.1 * coverage(d - 2.2, ps),
                ]
            ),
            12.0,
        )
    return Layer.from_density("ecg", out)


RENDERERS = {"drain": render_drain, "pacemaker": render_pacemaker, "ecg": render_ecg}


def render_devices(devices: DevicesParameters, scene: Scene) -> dict[str, Layer]:
    """Layers of the present devices (absent ones are not drawn)."""
    layers = {}
    for name in DEVICES:
        params = getattr(devices, name)
        if params is not None:
            layers[name] = RENDERERS[name](params, scene)
    return layers


__all__ = [
    "DEVICES",
    "DevicesParameters",
    "DrainParameters",
    "ECG_SITES",
    "EcgParameters",
    "PacemakerParameters",
    "drain_path",
    "pacemaker_geometry",
    "render_devices",
]
