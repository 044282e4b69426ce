"""The world's configuration, one case's sampled parameters, and rendering a case.

``sample_case(config, seed)`` draws a :class:`CaseParameters` (site, anatomy,
findings, devices, acquisition) from a :class:`WorldConfig` and renders it
into a :class:`Case`: the image, one mask per structure, labels, report and
the parameters.  Rendering is a pure function of the parameters
(:func:`render_case`), so a case can be re-rendered from its provenance, or
rendered without some structures (``exclude``) to see exactly what they add.

Random draws come from independent streams per component (one
:class:`numpy.random.SeedSequence` child each), and every component draws
the same values whether or not it ends up present: two worlds that differ
only in prevalences give the same patient for the same seed, with more or
fewer findings.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping

import numpy as np

from ..errors import ConfigError
from ..settings import coerce
from ..yamlio import load_yaml
from .acquisition import AcquisitionParameters, MarkerStyle, SiteConfig, default_sites, expose, render_marker
from .anatomy import ANATOMY, AnatomyParameters, render_anatomy
from .devices import DEVICES, DevicesParameters, DrainParameters, EcgParameters, PacemakerParameters, render_devices
from .findings import (
    FINDINGS,
    ConsolidationParameters,
    EdemaParameters,
    EffusionParameters,
    FindingsParameters,
    PneumothoraxParameters,
    render_findings,
)
from .rendering import Layer, Scene, attenuation
from .reports import impression

#: Every structure with a mask, in drawing order.
STRUCTURES = ANATOMY + FINDINGS + DEVICES + ("marker",)
#: Unions of structures available through :meth:`Case.mask`.
GROUPS = {"lungs": ("right_lung", "left_lung")}
#: The independent random streams of a case, in SeedSequence spawn order (append only).
STREAMS = ("site", "anatomy") + FINDINGS + DEVICES + ("acquisition",)
_FINDING_PARAMETERS = {
    "pneumothorax": PneumothoraxParameters,
    "effusion": EffusionParameters,
    "edema": EdemaParameters,
    "consolidation": ConsolidationParameters,
}


def _default_prevalence() -> dict[str, float]:
    return {"pneumothorax": 0.25, "effusion": 0.15, "edema": 0.15, "consolidation": 0.4}


def _default_severity() -> dict[str, dict[str, float]]:
    return {
        "pneumothorax": {"small": 0.3, "moderate": 0.35, "large": 0.35},
        "effusion": {"small": 0.4, "moderate": 0.35, "large": 0.25},
        "edema": {"mild": 0.3, "moderate": 0.45, "severe": 0.25},
        "consolidation": {"upper": 0.6, "lower": 0.4},
    }


@dataclass
class WorldConfig:
    """Everything that defines a phantom world (see the package docstring for the defaults).

    Attributes:
        rows, columns: image size in pixels (the model space is 512 x 512).
        sites: acquisition sites by name, with their probabilities (summing to 1).
        prevalence: P(finding) at the sites where the finding may occur.
        site_only: finding -> the only site where it occurs (the acquisition-shift
            confounder); elsewhere its probability is 0.
        drain_given_pneumothorax, drain_given_no_pneumothorax: P(chest drain | pneumothorax
            present / absent), the manifestation-shift correlation; a drain is on the
            pneumothorax's side.
        pacemaker, pacemaker_left: P(pacemaker) and P(generator on the left | pacemaker).
        ecg: P(ECG electrodes).
        severity: per finding, the probabilities of its sizes ("small", "moderate",
            "large"; edema "mild", "moderate", "severe"; consolidation its lobe "upper",
            "lower").
        report_negatives: every report of a case without a pneumothorax states
            "No pneumothorax." (as real impressions often do; at the end, or after
            the drain's sentence); when False, only beside a chest drain (:mod:`.reports`).
    """

    rows: int = 512
    columns: int = 512
    sites: dict[str, SiteConfig] = field(default_factory=default_sites)
    prevalence: dict[str, float] = field(default_factory=_default_prevalence)
    site_only: dict[str, str] = field(default_factory=lambda: {"consolidation": "B"})
    drain_given_pneumothorax: float = 0.9
    drain_given_no_pneumothorax: float = 0.02
    pacemaker: float = 0.15
    pacemaker_left: float = 0.9
    ecg: float = 0.3
    severity: dict[str, dict[str, float]] = field(default_factory=_default_severity)
    report_negatives: bool = False

    def __post_init__(self) -> None:
        self.validate()

    # -- probabilities --------------------------------------------------------------------

    def finding_probability(self, finding: str, site: str) -> float:
        """P(finding | site)."""
        only = self.site_only.get(finding)
        if only is not None and only != site:
            return 0.0
        return self.prevalence[finding]

    def site_names(self) -> list[str]:
        return list(self.sites)

    # -- validation and (de)serialisation -------------------------------------------------

    def validate(self, source: str = "world config") -> None:
        def fail(problem: str) -> None:
            raise ConfigError(f"{source}: {problem}")

        def probability(name: str, value: Any) -> None:
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                fail(f"{name} must be a probability in [0, 1], got {value!r}")

        if not (isinstance(self.rows, int) and isinstance(self.columns, int) and self.rows >= 64 and self.columns >= 64):
            fail(f"rows and columns must be integers >= 64, got {self.rows!r} x {self.columns!r}")
        if not self.sites:
            fail("at least one site is needed")
        for name, site in self.sites.items():
            probability(f"sites.{name}.probability", site.probability)
            if site.field_of_view_mm <= 0:
                fail(f"sites.{name}.field_of_view_mm must be positive")
            if site.photometric not in ("MONOCHROME1", "MONOCHROME2"):
                fail(f"sites.{name}.photometric must be MONOCHROME1 or MONOCHROME2, got {site.photometric!r}")
            if site.marker.letter.upper() not in ("L", "R"):
                fail(f"sites.{name}.marker.letter must be 'L' or 'R', got {site.marker.letter!r}")
            if site.marker.style not in ("frame", "plate"):
                fail(f"sites.{name}.marker.style must be 'frame' or 'plate', got {site.marker.style!r}")
        total = sum(site.probability for site in self.sites.values())
        if abs(total - 1.0) > 1e-6:
            fail(f"site probabilities must sum to 1, got {total:g}")
        for finding in FINDINGS:
            if finding not in self.prevalence:
                fail(f"prevalence.{finding} is missing")
        for name, value in self.prevalence.items():
            if name not in FINDINGS:
                fail(f"prevalence: unknown finding {name!r} (findings: {', '.join(FINDINGS)})")
            probability(f"prevalence.{name}", value)
        for finding, site in self.site_only.items():
            if finding not in FINDINGS:
                fail(f"site_only: unknown finding {finding!r} (findings: {', '.join(FINDINGS)})")
            if site not in self.sites:
                fail(f"site_only.{finding}: unknown site {site!r} (sites: {', '.join(self.sites)})")
        for name in ("drain_given_pneumothorax", "drain_given_no_pneumothorax", "pacemaker", "pacemaker_left", "ecg"):
            probability(name, getattr(self, name))
        if not isinstance(self.report_negatives, bool):
            fail(f"report_negatives must be true or false, got {self.report_negatives!r}")
        allowed = {
            "pneumothorax": {"small", "moderate", "large"},
            "effusion": {"small", "moderate", "large"},
            "edema": {"mild", "moderate", "severe"},
            "consolidation": {"upper", "lower"},
        }
        for finding in FINDINGS:
            options = self.severity.get(finding)
            if not options:
                fail(f"severity.{finding} is missing")
            unknown = set(options) - allowed[finding]
            if unknown:
                fail(f"severity.{finding}: unknown {sorted(unknown)} (choose from {sorted(allowed[finding])})")
            for key, value in options.items():
                probability(f"severity.{finding}.{key}", value)
            if sum(options.values()) <= 0:
                fail(f"severity.{finding}: probabilities sum to 0")
        for finding in self.severity:
            if finding not in FINDINGS:
                fail(f"severity: unknown finding {finding!r}")

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, source: str = "world config") -> "WorldConfig":
        """A config from plain data; missing keys keep their defaults.

        ``prevalence``, ``severity`` and ``sites`` entries are merged into the
        defaults by name: a site named like a default site ("A", "B") starts
        from it, a new site from :class:`SiteConfig`'s defaults (give a site
        probability 0 to leave it out); ``site_only`` replaces the default
        (``{}`` removes the site-only finding).  Unknown keys are errors.
        """
        data = dict(data or {})
        base = cls.__new__(cls)  # defaults without validating twice
        for f in dataclasses.fields(cls):
            setattr(base, f.name, f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(known))})")
        try:
            if "sites" in data:
                defaults = default_sites()
                sites = dict(base.sites)
                for name, value in (data.pop("sites") or {}).items():
                    value = dict(value or {})
                    marker = value.pop("marker", None)
                    start = dataclasses.asdict(defaults[name]) if name in defaults else dataclasses.asdict(SiteConfig())
                    start.update(value)
                    if marker is not None:
                        start["marker"] = {**start["marker"], **dict(marker)}
                    start["marker"] = MarkerStyle(**start["marker"])
                    sites[str(name)] = SiteConfig(**start)
                base.sites = sites
            if "prevalence" in data:
                base.prevalence = {**base.prevalence, **dict(data.pop("prevalence") or {})}
            if "severity" in data:
                given = dict(data.pop("severity") or {})
                base.severity = {**base.severity, **{k: dict(v or {}) for k, v in given.items()}}
            if "report_negatives" in data:
                # Parsed as every front end's booleans are (true/false, yes/no, 1/0), not stricter.
                base.report_negatives = coerce(f"{source}: report_negatives", data.pop("report_negatives"), "bool")
            if "site_only" in data:
                base.site_only = {str(k): str(v) for k, v in dict(data.pop("site_only") or {}).items()}
            for key, value in data.items():
                setattr(base, key, value)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        base.validate(source)
        return base

    @classmethod
    def from_yaml(cls, path: str | Path) -> "WorldConfig":
        """Read a YAML world description (see :meth:`from_dict`)."""
        import yaml  # noqa: PLC0415


        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: world config does not exist")
        try:
            data = load_yaml(path.read_text(), path)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(f"{path}: a world config is a mapping of keys to values")
        return cls.from_dict(data, source=str(path))

    def to_yaml(self) -> str:
        import yaml  # noqa: PLC0415

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


@dataclass
class CaseParameters:
    """Everything sampled for one case; :func:`render_case` turns it into pixels."""

    seed: int
    rows: int
    columns: int
    site: str
    anatomy: AnatomyParameters
    findings: FindingsParameters
    devices: DevicesParameters
    acquisition: AcquisitionParameters
    report_negatives: bool = False

    def labels(self) -> dict[str, int | str]:
        """0/1 per finding and device, and the site."""
        return {**self.findings.present(), **self.devices.present(), "site": self.site}

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CaseParameters":
        """Rebuild parameters from :meth:`to_dict` output (e.g. a dataset's ``cases/*.json``)."""
        return _from_plain(cls, data)


@dataclass(frozen=True)
class Storage:
    """How a case's image is stored as DICOM: bits stored, photometric interpretation, pixel spacing (mm)."""

    bits_stored: int
    photometric: str
    pixel_spacing_mm: float


def quantise(image: np.ndarray, bits: int, photometric: str = "MONOCHROME2") -> np.ndarray:
    """Display image in [0, 1] (bright = dense) -> unsigned stored values of ``bits`` bits.

    MONOCHROME1 stores ``2**bits - 1 - v`` (high values dark).  uint8 for 8
    bits or fewer, else uint16.
    """
    top = (1 << bits) - 1
    values = np.rint(np.clip(image, 0.0, 1.0) * top).astype(np.int64)
    if photometric == "MONOCHROME1":
        values = top - values
    return values.astype(np.uint8 if bits <= 8 else np.uint16)


@dataclass
class Case:
    """One rendered case.

    Attributes:
        image: [rows, columns] float32 in (0, 1), bright = dense (display values).
        masks: structure name -> [rows, columns] bool, one per name in
            :data:`STRUCTURES` (all False for an absent finding or device);
            masks overlap (a drain crosses a pneumothorax).
        labels: finding/device name -> 0/1, and "site" -> site name.
        report: the report impression (see :mod:`~radedit_core.phantom_world.reports`).
        parameters: what was sampled (provenance; :func:`render_case` re-renders it).
        storage: how the site stores it as DICOM.
    """

    image: np.ndarray
    masks: dict[str, np.ndarray]
    labels: dict[str, int | str]
    report: str
    parameters: CaseParameters
    storage: Storage

    @property
    def seed(self) -> int:
        return self.parameters.seed

    @property
    def site(self) -> str:
        return self.parameters.site

    def mask(self, *names: str) -> np.ndarray:
        """The union of the named structures' masks ("lungs" = both lungs)."""
        out = np.zeros(self.image.shape, dtype=bool)
        for name in names:
            for part in GROUPS.get(name, (name,)):
                if part not in self.masks:
                    raise KeyError(f"no structure {part!r} (structures: {', '.join(STRUCTURES)}; groups: {', '.join(GROUPS)})")
                out |= self.masks[part]
        return out

    @property
    def lungs(self) -> np.ndarray:
        return self.mask("lungs")

    def stored(self, bits: int | None = None, photometric: str | None = None) -> np.ndarray:
        """Stored integer values (default: the site's DICOM storage)."""
        return quantise(self.image, bits or self.storage.bits_stored, photometric or self.storage.photometric)


def case_seed(dataset_seed: int, index: int) -> int:
    """The seed of case ``index`` of a data set: 53 bits (exact in any JSON reader) of SeedSequence([dataset_seed, index])."""
    state = np.random.SeedSequence([int(dataset_seed), int(index)]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(11))


def sample_parameters(config: WorldConfig, seed: int) -> CaseParameters:
    """Draw one case's parameters (see the module docstring for the random streams)."""
    if not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    rngs = {name: np.random.default_rng(s) for name, s in zip(STREAMS, np.random.SeedSequence(seed).spawn(len(STREAMS)))}
    names = config.site_names()
    weights = np.asarray([config.sites[n].probability for n in names], dtype=np.float64)
    site = names[int(rngs["site"].choice(len(names), p=weights / weights.sum()))]
    anatomy = AnatomyParameters.sample(rngs["anatomy"])
    findings = FindingsParameters()
    for name in FINDINGS:
        rng = rngs[name]
        draw = rng.random()
        params = _FINDING_PARAMETERS[name].sample(rng, config.severity[name])
        if draw < config.finding_probability(name, site):
            setattr(findings, name, params)
    devices = DevicesParameters()
    rng = rngs["drain"]
    draw, side_draw = rng.random(), int(rng.integers(0, 2))
    ptx = findings.pneumothorax
    side = ptx.side if ptx is not None else ("right", "left")[side_draw]
    drain = DrainParameters.sample(rng, side)
    if draw < (config.drain_given_pneumothorax if ptx is not None else config.drain_given_no_pneumothorax):
        devices.drain = drain
    rng = rngs["pacemaker"]
    draw = rng.random()
    pacemaker = PacemakerParameters.sample(rng, config.pacemaker_left)
    if draw < config.pacemaker:
        devices.pacemaker = pacemaker
    rng = rngs["ecg"]
    draw = rng.random()
    ecg = EcgParameters.sample(rng)
    if draw < config.ecg:
        devices.ecg = ecg
    acquisition = AcquisitionParameters.sample(site, config.sites[site], config.columns, rngs["acquisition"])
    return CaseParameters(
        seed=seed,
        rows=config.rows,
        columns=config.columns,
        site=site,
        anatomy=anatomy,
        findings=findings,
        devices=devices,
        acquisition=acquisition,
        report_negatives=config.report_negatives,
    )


def render_layers(parameters: CaseParameters) -> tuple[Scene, dict[str, Layer]]:
    """Every drawn structure's layer (absent findings and devices have none)."""
    scene = Scene(parameters.acquisition.frame(parameters.rows, parameters.columns))
    layers = render_anatomy(parameters.anatomy, scene)
    layers.update(render_findings(parameters.findings, scene))
    layers.update(render_devices(parameters.devices, scene))
    layers["marker"] = render_marker(parameters.acquisition, scene)
    return scene, layers


def render_case(parameters: CaseParameters, exclude: Collection[str] = (), storage_bits: int = 12) -> Case:
    """Render a case; structures named in ``exclude`` are left out (their masks are empty).

    Leaving a structure out changes the image exactly on its mask (the tests
    check it for every structure kind).
    """
    unknown = set(exclude) - set(STRUCTURES)
    if unknown:
        raise ConfigError(f"exclude: unknown structure(s) {sorted(unknown)} (structures: {', '.join(STRUCTURES)})")
    scene, layers = render_layers(parameters)
    drawn = [layer for name, layer in layers.items() if name not in exclude]
    image = expose(attenuation(drawn, scene.shape), parameters.acquisition)
    empty = np.zeros(scene.shape, dtype=bool)
    masks = {name: (layers[name].mask if name in layers and name not in exclude else empty.copy()) for name in STRUCTURES}
    acq = parameters.acquisition
    storage = Storage(bits_stored=storage_bits, photometric=acq.photometric, pixel_spacing_mm=acq.pixel_spacing_mm)
    return Case(
        image=image,
        masks=masks,
        labels=parameters.labels(),
        report=impression(parameters.findings, parameters.devices, negatives=parameters.report_negatives),
        parameters=parameters,
        storage=storage,
    )


def sample_case(config: WorldConfig | None, seed: int) -> Case:
    """Sample and render one case of ``config`` (the default world when None)."""
    config = config or WorldConfig()
    return render_case(sample_parameters(config, seed))


# -- plain-data conversion ------------------------------------------------------------------


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _from_plain(tp: Any, data: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if data is None else _from_plain(args[0], data)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: _from_plain(hints[f.name], data[f.name]) for f in dataclasses.fields(tp) if f.name in data})
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_plain(args[0], v) for v in data)
        return tuple(_from_plain(a, v) for a, v in zip(args, data))
    if origin is list:
        (arg,) = typing.get_args(tp)
        return [_from_plain(arg, v) for v in data]
    if origin is dict:
        _, arg = typing.get_args(tp)
        return {k: _from_plain(arg, v) for k, v in data.items()}
    return data


__all__ = [
    "Case",
    "CaseParameters",
    "GROUPS",
    "STREAMS",
    "STRUCTURES",
    "Storage",
    "WorldConfig",
    "case_seed",
    "quantise",
    "render_case",
    "render_layers",
    "sample_case",
    "sample_parameters",
]
