"""The stress-test report: one self-contained HTML file a researcher can send on.

:func:`write_report` turns an evaluation folder (``results.json``,
``predictions.csv``, ``masks/``) and its set into ``report.html`` with

* the summary table in the form of the paper's Tables 1-3 (real vs synthetic
  per recipe, with 95% bootstrap CIs, differences to the real set, flip rates)
  and the paired comparison with the edits' own sources;
* plots (matplotlib, embedded as base64 PNG): metric bars with CIs, editing
  score histograms with the filter threshold, flip rates (segmentation: paired
  Dice changes), dose-response curves where a recipe sweeps guidance or skip
  ratio;
* subgroup tables (any subgroup column of the set);
* a gallery original | edited | difference | masks of the largest prediction
  changes (left out with ``include_images=False``, ``--no-images``);
* the filtered-out edits with their reasons, and the provenance (predictor and
  its checksum, set, settings, package versions).

Nothing is loaded from outside the file (no scripts, fonts or style sheets).
No patient attribute is copied into it: text comes from figures, row ids,
recipe names and subgroup values, and every piece of text passes through
:class:`~radedit_core.stress.privacy.Scrubber`, which removes identifiers found
in the set's DICOM headers.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .._version import __version__
from ..errors import InputError, OutputError
from ..fileio import atomic_path, check_outputs_apart, check_writable
from ..imaging.io import read_image, read_mask_array
from .evaluate import PREDICTIONS_CSV, RESULTS_JSON, read_results
from .metrics import MIN_SUBGROUP_SIZE
from .privacy import Scrubber
from .stress_set import StressSet, read_stress_set

PERCENT_METRICS = {"accuracy", "sensitivity", "specificity", "dice", "flip_rate"}
METRIC_NAMES = {
    "accuracy": "Accuracy (%)",
    "sensitivity": "Sensitivity (%)",
    "specificity": "Specificity (%)",
    "auroc": "AUROC",
    "dice": "Dice (%)",
    "hd95": "HD95",
    "asd": "ASD",
    "flip_rate": "Flip rate (%)",
    "probability_change": "Mean Δ probability",
}
DEFAULT_GALLERY_SIZE = 8
#: Longest side of an image panel in the gallery, in pixels of the source (display only).
PANEL_PIXELS = 384
DPI = 100


# -- formatting ---------------------------------------------------------------------------
def _scale(metric: str) -> float:
    base = metric.split("_change")[0]
    return 100.0 if base in PERCENT_METRICS else 1.0


def _digits(metric: str) -> int:
    base = metric.split("_change")[0]
    if base in PERCENT_METRICS:
        return 1
    return 3 if base in ("auroc", "probability") else 2


def format_estimate(est: dict[str, Any] | None, metric: str, signed: bool = False) -> str:
    """``99.1 [98.0, 99.8]`` (percent metrics), ``0.912 [...]`` (AUROC), ``4.21 [...]`` (distances)."""
    if not est:
        return "—"
    k, d = _scale(metric), _digits(metric)
    sign = "+" if signed else ""
    text = f"{est['value'] * k:{sign}.{d}f}"
    if est.get("ci"):
        lo, hi = est["ci"]
        text += f" [{lo * k:{sign}.{d}f}, {hi * k:{sign}.{d}f}]"
    return text


# -- pictures ------------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> dict[str, Any]:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    width, height = (int(round(v)) for v in fig.get_size_inches() * DPI)
    return {
        "src": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
        "width": width,
        "height": height,
    }


def _label_of(entry: dict[str, Any], scrub: Scrubber) -> str:
    return scrub.text(str(entry["label"]))


def _value_axis(ax, metric: str, values: Sequence[float]) -> None:
    """Percent metrics on 0-100 (a zero bar must still read as zero); changes symmetric around 0."""
    if metric in PERCENT_METRICS:
        ax.set_ylim(0, 108)
    elif metric.endswith("_change") or metric == "probability_change":
        top = max([abs(v) for v in values] + [1e-3]) * 1.3
        ax.set_ylim(-top, top)
    elif metric == "auroc":
        ax.set_ylim(0, 1.08)


def bars_plot(entries: Sequence[dict], metric: str, title: str, scrub: Scrubber) -> dict[str, Any] | None:
    """One bar per group with its CI."""
    shown = [e for e in entries if e["metrics"].get(metric)]
    if not shown:
        return None
    k = _scale(metric)
    fig = _figure(max(4.5, 1.1 * len(shown) + 1.5), 3.4)
    ax = fig.add_subplot()
    values = [e["metrics"][metric]["value"] * k for e in shown]
    lows = [v - (e["metrics"][metric]["ci"] or [e["metrics"][metric]["value"]] * 2)[0] * k for v, e in zip(values, shown)]
    highs = [(e["metrics"][metric]["ci"] or [0, e["metrics"][metric]["value"]])[1] * k - v for v, e in zip(values, shown)]
    colours = ["#7f7f7f" if e["kind"] == "real" else "#2b5d8a" if e["kind"] == "synthetic" else "#9bb7d4" for e in shown]
    x = np.arange(len(shown))
    # A percentile interval need not contain the point estimate (AUROC of a small pooled group): whiskers
    # then start at the bar, as matplotlib refuses negative error lengths.
    lows, highs = [max(0.0, d) for d in lows], [max(0.0, d) for d in highs]
    bars = ax.bar(x, values, color=colours, yerr=[lows, highs], capsize=4)
    ax.bar_label(bars, fmt=f"%.{_digits(metric)}f", fontsize=7, padding=2)
    ax.set_xticks(x, [_label_of(e, scrub) for e in shown], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(METRIC_NAMES.get(metric, metric))
    _value_axis(ax, metric, values)
    ax.set_title(scrub.text(title), fontsize=10)
    fig.tight_layout()
    return {**_png(fig), "alt": f"{metric} per group", "caption": scrub.text(f"{title}: bars = estimate, whiskers = 95% CI (methods under the summary table).")}


def paired_plot(entries: Sequence[dict], metric: str, title: str, scrub: Scrubber) -> dict[str, Any] | None:
    """Flip rate (or paired change) per recipe with its CI."""
    shown = [e for e in entries if e.get(metric)]
    if not shown:
        return None
    k = _scale(metric)
    fig = _figure(max(4.5, 1.1 * len(shown) + 1.5), 3.2)
    ax = fig.add_subplot()
    values = [e[metric]["value"] * k for e in shown]
    cis = [e[metric]["ci"] or [e[metric]["value"]] * 2 for e in shown]
    x = np.arange(len(shown))
    errors = [[max(0.0, v - c[0] * k) for v, c in zip(values, cis)], [max(0.0, c[1] * k - v) for v, c in zip(values, cis)]]
    bars = ax.bar(x, values, color="#b5533c", yerr=errors, capsize=4)
    ax.bar_label(bars, fmt=f"%+.{_digits(metric)}f" if metric.endswith("_change") else f"%.{_digits(metric)}f", fontsize=7, padding=2)
    ax.axhline(0, color="black", linewidth=0.8)
    _value_axis(ax, metric, values)
    ax.set_xticks(x, [_label_of(e, scrub) for e in shown], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(METRIC_NAMES.get(metric, metric.replace("_", " ")))
    ax.set_title(scrub.text(title), fontsize=10)
    fig.tight_layout()
    return {**_png(fig), "alt": f"{metric} per recipe", "caption": scrub.text(f"{title}: edits against their own source images, 95% CI (methods under the summary table).")}


def score_histogram(qc: dict[str, Any]) -> dict[str, Any] | None:
    scores = [s for s in qc.get("scores", []) if s.get("score") is not None]
    if not scores:
        return None
    fig = _figure(5.5, 3.2)
    ax = fig.add_subplot()
    values = np.array([s["score"] for s in scores])
    bins = np.linspace(min(values.min(), -0.1), max(values.max(), 0.5), 25)
    accepted = [s["score"] for s in scores if s["accepted"]]
    rejected = [s["score"] for s in scores if not s["accepted"]]
    ax.hist([accepted, rejected], bins=bins, stacked=True, color=["#2b5d8a", "#c9a23a"], label=["accepted", "filtered out"])
    threshold = qc.get("score_threshold")
    if threshold is not None:
        ax.axvline(float(threshold), color="#a01010", linestyle="--", label=f"threshold {threshold}")
    ax.set_xlabel("editing score")
    ax.set_ylabel("edits")
    ax.legend(fontsize=8)
    ax.set_title("Editing scores of the edits", fontsize=10)
    fig.tight_layout()
    name = qc.get("score_name") or "editing score"
    return {**_png(fig), "alt": "editing score histogram", "caption": f"Histogram of the {name}; edits below the threshold are filtered out."}


def dose_plot(curve: dict[str, Any], metric: str, paired_metric: str, scrub: Scrubber) -> dict[str, Any] | None:
    points = [p for p in curve["points"] if p["metrics"].get(metric)]
    if len(points) < 2:
        return None
    k = _scale(metric)
    fig = _figure(5.5, 3.4)
    ax = fig.add_subplot()
    x = np.array([p["value"] for p in points])
    y = np.array([p["metrics"][metric]["value"] * k for p in points])
    ci = [p["metrics"][metric]["ci"] or [p["metrics"][metric]["value"]] * 2 for p in points]
    ax.errorbar(x, y, yerr=[np.maximum(0.0, y - np.array([c[0] * k for c in ci])), np.maximum(0.0, np.array([c[1] * k for c in ci]) - y)], marker="o", capsize=4, color="#2b5d8a", label=METRIC_NAMES.get(metric, metric))
    ax.set_xlabel(curve["parameter"].replace("_", " "))
    ax.set_ylabel(METRIC_NAMES.get(metric, metric))
    flips = [(p["value"], p[paired_metric]) for p in curve["points"] if p.get(paired_metric)]
    if flips:
        kf = _scale(paired_metric)
        twin = ax.twinx()
        twin.plot([f[0] for f in flips], [f[1]["value"] * kf for f in flips], marker="s", linestyle="--", color="#b5533c", label=METRIC_NAMES.get(paired_metric, paired_metric))
        twin.set_ylabel(METRIC_NAMES.get(paired_metric, paired_metric.replace("_", " ")), color="#b5533c")
        _value_axis(twin, paired_metric, [f[1]["value"] * kf for f in flips])
    _value_axis(ax, metric, list(y))
    title = f"{curve['recipe']} ({curve['class']}): {curve['parameter'].replace('_', ' ')} sweep"
    ax.set_title(scrub.text(title), fontsize=10)
    fig.tight_layout()
    return {**_png(fig), "alt": f"dose-response {curve['parameter']}", "caption": scrub.text(f"Dose-response of {title}, 95% CI (methods under the summary table).")}


def _display(array: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    return np.clip((array.astype(np.float64) - lo) / max(hi - lo, 1e-12), 0, 1)


#: Side of a gallery crop (around the edit region) and of a whole-image panel, in screen pixels.
CROP_PIXELS = PANEL_PIXELS
WHOLE_PIXELS = 288
#: Outline colours: the edit region and the keep region (and segmentation masks, as given).
EDIT_COLOUR, KEEP_COLOUR = "#ffd000", "#00d0ff"


def crop_box(masks: Sequence[np.ndarray], shape: Sequence[int], margin: float = 0.25, least: int = 48) -> tuple[int, int, int, int]:
    """A square (row0, row1, col0, col1) around the masks' union, grown by ``margin``, inside the image."""
    union = np.zeros(tuple(shape[:2]), dtype=bool)
    for m in masks:
        union |= np.asarray(m, dtype=bool)
    rows, cols = np.nonzero(union)
    if rows.size == 0:
        return 0, int(shape[0]), 0, int(shape[1])
    centre = ((rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2)
    side = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    side = int(min(max(side * (1 + 2 * margin), least), min(shape[:2])))
    r0 = int(np.clip(round(centre[0] - side / 2), 0, shape[0] - side))
    c0 = int(np.clip(round(centre[1] - side / 2), 0, shape[1] - side))
    return r0, r0 + side, c0, c0 + side


def _panel(rgb: np.ndarray, masks: Sequence[tuple[np.ndarray, str]], size: int, alt: str) -> dict[str, Any]:
    """An RGB array [H, W, 3] in [0, 1] scaled to ``size`` px on its longer side, with mask outlines, as a PNG."""
    from PIL import Image  # noqa: PLC0415
    from scipy import ndimage  # noqa: PLC0415

    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    out_w, out_h = max(1, round(w * scale)), max(1, round(h * scale))
    image = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).resize((out_w, out_h), Image.LANCZOS)
    pixels = np.asarray(image).copy()
    for mask, colour in masks:
        m = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255).resize((out_w, out_h), Image.NEAREST)
        inside = np.asarray(m) > 127
        edge = inside & ~ndimage.binary_erosion(inside, iterations=2, border_value=0)
        pixels[edge] = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return {"src": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
            "width": out_w, "height": out_h, "alt": alt}  # fmt: skip


def _grey(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[..., None], 3, axis=2)


def _diverging(diff: np.ndarray, limit: float) -> np.ndarray:
    from matplotlib import colormaps  # noqa: PLC0415

    return colormaps["RdBu_r"](np.clip(diff / limit * 0.5 + 0.5, 0, 1))[..., :3]


@dataclass
class GalleryImages:
    """Source and edit on the source's display window, their difference and the outlines of one gallery row."""

    original: np.ndarray
    edited: np.ndarray
    masks: list[tuple[str, np.ndarray, str]]

    @classmethod
    def read(cls, source_path: Path, edit_path: Path, masks: Sequence[tuple[str, np.ndarray, str]]) -> "GalleryImages":
        source, edit = read_image(source_path), read_image(edit_path)
        if source.window is not None:
            window = (float(source.window[0]), float(source.window[1]))
        else:
            window = (float(source.array.min()), float(source.array.max()))
        return cls(_display(source.array, window), _display(edit.array, window), list(masks))

    @property
    def difference(self) -> np.ndarray | None:
        return self.edited - self.original if self.original.shape == self.edited.shape else None

    def largest_change(self) -> float:
        d = self.difference
        return 0.0 if d is None else float(np.abs(d).max())


def gallery_panels(images: GalleryImages, limit: float) -> list[dict[str, Any]]:
    """Crops (``CROP_PIXELS``) around the edit region: original | edited | difference, then the whole images.

    Every difference panel uses the colour scale [-limit, +limit] (one scale for the whole gallery).
    Outlines: each mask of ``images.masks`` in its colour on every panel.
    """
    masks = [(m, colour) for _, m, colour in images.masks]
    box = crop_box([m for m, _ in masks[:1]] or [m for m, _ in masks], images.edited.shape)
    r0, r1, c0, c1 = box
    crop = lambda a: a[r0:r1, c0:c1]  # noqa: E731
    cropped = [(crop(np.asarray(m)), colour) for m, colour in masks]
    diff = images.difference
    panels = [
        {**_panel(_grey(crop(images.original)), cropped, CROP_PIXELS, "original, around the edit region"), "title": "original (crop)"},
        {**_panel(_grey(crop(images.edited)), cropped, CROP_PIXELS, "edited, around the edit region"), "title": "edited (crop)"},
    ]  # fmt: skip
    if diff is not None:
        panels.append({**_panel(_diverging(crop(diff), limit), cropped, CROP_PIXELS, "difference, around the edit region"),
                       "title": "difference (crop)"})  # fmt: skip
    panels += [
        {**_panel(_grey(images.original), masks, WHOLE_PIXELS, "original, whole image"), "title": "original"},
        {**_panel(_grey(images.edited), masks, WHOLE_PIXELS, "edited, whole image"), "title": "edited"},
    ]
    if diff is not None:
        panels.append({**_panel(_diverging(diff, limit), masks, WHOLE_PIXELS, "difference, whole image"), "title": "difference"})
    for p in panels:
        p["crop"] = "crop" in p["title"]
    return panels


def colour_scale(limit: float) -> dict[str, Any]:
    """The gallery's one difference colour bar, [-limit, +limit] of the display window."""
    from matplotlib.colorbar import ColorbarBase  # noqa: PLC0415
    from matplotlib.colors import Normalize  # noqa: PLC0415

    fig = _figure(6.0, 0.9)
    ax = fig.add_axes([0.05, 0.55, 0.9, 0.3])
    ColorbarBase(ax, cmap="RdBu_r", norm=Normalize(-limit, limit), orientation="horizontal")
    ax.set_xlabel("edited − original, as a fraction of the display window (the same scale on every difference panel)", fontsize=8)
    ax.tick_params(labelsize=7)
    return {**_png(fig), "alt": "difference colour scale"}


# -- assembling ------------------------------------------------------------------------------
def _read_predictions(folder: Path) -> list[dict[str, str]]:
    path = folder / PREDICTIONS_CSV
    if not path.is_file():
        raise InputError(path, "predictions not found (run radedit stress evaluate first)")
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _num(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


@dataclass
class _Pair:
    edit: dict[str, str]
    source: dict[str, str]
    cls: str
    change: float  # signed, in the headline unit
    magnitude: float


def largest_changes(predictions: Sequence[dict[str, str]], task: str, classes: Sequence[str], count: int) -> list[_Pair]:
    """Edits whose prediction moved most from their source's (probability, or Dice drop)."""
    by_id = {p["id"]: p for p in predictions}
    pairs = []
    for p in predictions:
        if p["kind"] != "synthetic" or p["source"] not in by_id:
            continue
        src = by_id[p["source"]]
        best = None
        for c in classes:
            if task == "classification":
                change = _num(p.get(f"probability_{c}")) - _num(src.get(f"probability_{c}"))
            else:
                change = _num(p.get(f"dice_{c}")) - _num(src.get(f"dice_{c}"))
            if np.isfinite(change) and (best is None or abs(change) > best.magnitude):
                best = _Pair(p, src, c, change, abs(change))
        if best is not None:
            pairs.append(best)
    pairs.sort(key=lambda q: (-q.magnitude, q.edit["id"]))
    return pairs[:count]


def _summary_tables(results: dict[str, Any], scrub: Scrubber) -> tuple[list[dict], list[dict]]:
    task = results["task"]
    unit = results["evaluation"].get("distance_unit") or ""
    tables, paired = [], []
    for cls, entries in results["groups"].items():
        if task == "classification":
            metrics = ["accuracy", "sensitivity", "specificity", "auroc"]
            columns = ["Test data", "n", "positives"] + [METRIC_NAMES[m] for m in metrics] + ["Δ accuracy vs real", "Flip rate (%)"]
        else:
            metrics = ["dice", "hd95", "asd"]
            columns = ["Test data", "n", "empty predictions", "Dice (%)", f"HD95 ({unit})", f"ASD ({unit})", "Δ Dice vs real", "Δ HD95 vs real"]
        rows = []
        for e in entries:
            cells = [scrub.text(str(e["label"])), f"{e['n']} (too small)" if e.get("too_small") else e["n"]]
            cells.append(e.get("n_positive", "") if task == "classification" else e.get("empty_predictions", ""))
            cells += [format_estimate(e["metrics"].get(m), m) for m in metrics]
            delta = e.get("delta_vs_real") or {}
            if task == "classification":
                cells += [format_estimate(delta.get("accuracy"), "accuracy", signed=True), format_estimate(e.get("flip_rate"), "flip_rate")]
            else:
                cells += [format_estimate(delta.get("dice"), "dice", signed=True), format_estimate(delta.get("hd95"), "hd95", signed=True)]
            rows.append({"kind": e["kind"], "cells": cells})
        tables.append({"title": scrub.text(f"{cls}: real vs synthetic"), "columns": columns, "rows": rows})
        synthetic = [e for e in entries if e["kind"] == "synthetic" and e.get("delta_vs_sources") is not None]
        if synthetic:
            if task == "classification":
                columns = ["Edits", "pairs", "Δ accuracy vs sources", "Flip rate (%)", "Mean Δ probability"]
                rows = [
                    {"cells": [scrub.text(str(e["label"])), (e.get("flip_rate") or {}).get("pairs", ""),
                               format_estimate(e["delta_vs_sources"].get("accuracy"), "accuracy", signed=True),
                               format_estimate(e.get("flip_rate"), "flip_rate"),
                               format_estimate(e.get("probability_change"), "probability_change", signed=True)]}
                    for e in synthetic
                ]  # fmt: skip
            else:
                columns = ["Edits", "pairs", "Δ Dice vs sources", f"Δ HD95 vs sources ({unit})", f"Δ ASD vs sources ({unit})"]
                rows = [
                    {"cells": [scrub.text(str(e["label"])), (e.get("dice_change") or {}).get("pairs", ""),
                               format_estimate(e.get("dice_change"), "dice_change", signed=True),
                               format_estimate(e.get("hd95_change"), "hd95_change", signed=True),
                               format_estimate(e.get("asd_change"), "asd_change", signed=True)]}
                    for e in synthetic
                ]  # fmt: skip
            paired.append({"title": scrub.text(f"{cls}: edits paired with their own source images"), "columns": columns, "rows": rows})
    return tables, paired


def _points(est: dict[str, Any] | None) -> str:
    """A difference in percentage points with its interval: ``-100.0 [-100.0, -32.4] points``."""
    if not est:
        return "—"
    text = f"{est['value'] * 100:+.1f}"
    if est.get("ci"):
        text += f" [{est['ci'][0] * 100:+.1f}, {est['ci'][1] * 100:+.1f}]"
    return text + " points"


def _shortcut(results: dict[str, Any], scrub: Scrubber) -> list[dict[str, Any]]:
    """The headline: per recipe with a sham control, the shortcut effect and its plain reading."""
    out = []
    for e in results.get("shortcut", []):
        parts = []
        for name, part in (("edits", e["edits"]), ("shams", e["shams"])):
            parts.append({
                "name": name, "pairs": part["pairs"],
                "accuracy": f"{part['accuracy'] * 100:.1f} %", "source_accuracy": f"{part['source_accuracy'] * 100:.1f} %",
                "change": _points(part), "mcnemar": f"{part['mcnemar']['p_value']:.3g}",
            })  # fmt: skip
        out.append({
            "recipe": scrub.text(e["recipe"]), "class": scrub.text(e["class"]), "effect": _points(e["effect"]),
            "verdict": scrub.text(e["verdict"]), "too_small": e.get("too_small"), "parts": parts,
            "method": e["effect"].get("method", ""),
        })  # fmt: skip
    return out


def _number(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_number(v) for v in value) + " (swept)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _edit_settings(results: dict[str, Any], scrub: Scrubber) -> tuple[str, list[dict]]:
    """The model and, per recipe, the settings its edits used (numbers, from the set's provenance)."""
    prov = results.get("provenance", {}).get("set") or {}
    model = prov.get("model") or {}
    spec = model.get("spec") if isinstance(model.get("spec"), dict) else {}  # the batch runner's fingerprint
    name = spec.get("name") or model.get("name") or model.get("source") or model.get("model") or ""
    if name and model.get("dtype"):
        name = f"{name} ({model['dtype']}, VAE {model.get('vae_dtype', model['dtype'])})"
    if isinstance(model, dict) and not name:
        name = ", ".join(f"{k} {v}" for k, v in model.items() if isinstance(v, (str, int, float)))[:200]
    rows = []
    for recipe, values in (prov.get("edit_settings") or {}).items():
        rows.append({"cells": [scrub.text(recipe)] + [_number(values.get(k, "—")) for k in ("steps", "skip_ratio", "guidance", "seed", "dilate")]})
    return scrub.text(str(name or "—")), rows


def _qc_section(results: dict[str, Any], scrub: Scrubber) -> dict[str, Any]:
    qc = results.get("qc", {})
    status = qc.get("score_status") or ""
    banner = None
    if qc.get("filters_not_applied"):
        banner = (f"Filter not applied: {qc['filters_not_applied']}. The editing score could not be computed, so "
                  "edits that failed to make the change were not removed by it; judge the locality figures and "
                  "the gallery instead.")  # fmt: skip
    elif status.startswith("unavailable"):
        banner = f"Editing score {status}: no edit was scored or filtered by it."
    rows = []
    for recipe, c in qc.get("per_recipe", {}).items():
        loc = c.get("locality", {})
        fig = lambda k, d=4: "—" if k not in loc else f"{loc[k]['median']:.{d}f}"  # noqa: E731
        scores = c.get("scores") or []
        score = f"{np.median(scores):.3f} (n {len(scores)})" if scores else "not scored"
        reasons = c.get("reasons") or {}
        removed = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) or "none"
        filters = ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in (c.get("filters") or {}).items()) or "none"
        rows.append({"cells": [scrub.text(recipe), c["accepted"] + c["rejected"], c["accepted"], fig("edit_mean_abs_change"),
                               fig("keep_max_abs_change"), fig("outside_mean_abs_change"), fig("ssim", 3),
                               fig("ssim_outside_edit", 3), score, scrub.text(filters), scrub.text(removed)]})  # fmt: skip
    columns = ["Recipe", "edits", "accepted", "mean |Δ| in edit region", "max |Δ| in keep region", "mean |Δ| outside",
               "SSIM", "SSIM outside edit", "editing score (median)", "filters", "removed by"]  # fmt: skip
    return {"banner": banner, "filters_skipped": bool(qc.get("filters_not_applied")), "columns": columns, "rows": rows, "score_status": scrub.text(status or "—"),
            "threshold": qc.get("score_threshold")}  # fmt: skip


def _subgroup_tables(results: dict[str, Any], scrub: Scrubber) -> list[dict]:
    task = results["task"]
    metric = "accuracy" if task == "classification" else "dice"
    paired = "flip_rate" if task == "classification" else "dice_change"
    tables = []
    for cls, columns in results.get("subgroups", {}).items():
        for column, rows in columns.items():
            if not rows:
                continue
            cells_rows = []
            for r in rows:
                data = scrub.text(r.get("test_data") or r["kind"])
                if r.get("suppressed"):
                    cells_rows.append({"cells": [scrub.text(r["value"]), data, r["n"], "—", "—"]})
                    continue
                n = f"{r['n']} (too small)" if r.get("too_small") else r["n"]
                cells_rows.append({"cells": [scrub.text(r["value"]), data, n,
                                             format_estimate(r["metrics"].get(metric), metric),
                                             format_estimate(r.get(paired), paired, signed=paired != "flip_rate")]})  # fmt: skip
            head = [scrub.text(column), "test data", "n", METRIC_NAMES[metric], METRIC_NAMES.get(paired, "Paired Δ Dice")]
            tables.append({"title": scrub.text(f"{cls} by {column}"), "columns": head, "rows": cells_rows})
    return tables


def _plots(results: dict[str, Any], scrub: Scrubber) -> list[dict]:
    task = results["task"]
    plots: list[dict | None] = []
    for cls, entries in results["groups"].items():
        if task == "classification":
            plots.append(bars_plot(entries, "accuracy", f"{cls}: accuracy per test set", scrub))
            plots.append(bars_plot([e for e in entries if e["metrics"].get("auroc")], "auroc", f"{cls}: AUROC where both classes occur", scrub))
            plots.append(paired_plot([e for e in entries if e["kind"] == "synthetic"], "flip_rate", f"{cls}: prediction flip rate per recipe", scrub))
        else:
            plots.append(bars_plot(entries, "dice", f"{cls}: Dice per test set", scrub))
            plots.append(bars_plot(entries, "hd95", f"{cls}: HD95 per test set", scrub))
            plots.append(paired_plot([e for e in entries if e["kind"] == "synthetic"], "dice_change", f"{cls}: paired Dice change per recipe", scrub))
    metric = "accuracy" if task == "classification" else "dice"
    paired = "flip_rate" if task == "classification" else "dice_change"
    for curve in results.get("dose_response", []):
        plots.append(dose_plot(curve, metric, paired, scrub))
    return [p for p in plots if p is not None]


def _gallery(results: dict[str, Any], folder: Path, stress_set: StressSet | None, predictions: list[dict[str, str]],
             scrub: Scrubber, include_images: bool, count: int) -> tuple[list[dict], list[str], dict | None]:  # fmt: skip
    task = results["task"]
    pairs = largest_changes(predictions, task, results["classes"], count)
    if task == "classification":
        columns = ["Edit", "Recipe", "Class", "label (edit)", "p (source)", "p (edit)", "Δ p"]
    else:
        columns = ["Edit", "Recipe", "Class", "Dice (source)", "Dice (edit)", "Δ Dice"]
    entries = []
    for q in pairs:
        c = q.cls
        edit_id = scrub.text(q.edit["id"])
        if task == "classification":
            cells = [edit_id, scrub.text(q.edit["recipe"]), scrub.text(c), q.edit.get(f"label_{c}", ""),
                     f"{_num(q.source[f'probability_{c}']):.3f}", f"{_num(q.edit[f'probability_{c}']):.3f}", f"{q.change:+.3f}"]  # fmt: skip
        else:
            cells = [edit_id, scrub.text(q.edit["recipe"]), scrub.text(c), f"{_num(q.source[f'dice_{c}']) * 100:.1f}",
                     f"{_num(q.edit[f'dice_{c}']) * 100:.1f}", f"{q.change * 100:+.1f}"]  # fmt: skip
        entry: dict[str, Any] = {"cells": cells}
        if include_images and stress_set is not None:
            edit_row, source_row = stress_set.row(q.edit["id"]), stress_set.row(q.source["id"])
            edit_image = read_image(edit_row.image)
            masks: list[tuple[str, np.ndarray, str]] = []
            if task == "classification":
                for column, colour in (("edit_mask", EDIT_COLOUR), ("keep_mask", KEEP_COLOUR)):
                    ref = edit_row.regions.get(column)
                    if ref is not None:
                        masks.append((column.replace("_", " "), read_mask_array(ref, edit_image) > 0, colour))
            else:
                ref = edit_row.masks.get(c)
                if ref is not None:
                    masks.append((f"{c} (original mask)", read_mask_array(ref, edit_image) > 0, "#30e030"))
                for which, row, colour in (("edit", q.edit, "#ff3030"), ("source", q.source, "#3070ff")):
                    with np.load(folder / row["mask_file"]) as data:
                        names = [str(n) for n in data["classes"]]
                        masks.append((f"predicted on {which}", data["masks"][names.index(c)], colour))
            title = scrub.text(f"{q.edit['id']} ({q.edit['recipe']}), {c}: " + (
                f"p {cells[4]} → {cells[5]}" if task == "classification" else f"Dice {cells[3]} → {cells[4]} %"))  # fmt: skip
            entry["images"] = GalleryImages.read(source_row.image, edit_row.image, masks)
            entry["legend"] = [(scrub.text(name), colour) for name, _, colour in masks]
            entry["caption"] = title
        entries.append(entry)
    pictured = [e for e in entries if "images" in e]
    limit = max([e["images"].largest_change() for e in pictured] + [1e-3])
    for e in pictured:
        e["panels"] = gallery_panels(e.pop("images"), limit)
    scale = colour_scale(limit) if pictured else None
    return entries, columns, scale


def _provenance(results: dict[str, Any], scrub: Scrubber) -> list[dict]:
    pred = results["predictor"]
    spec = pred.get("spec", {})
    predictor_items = [
        ("form", pred.get("form")),
        ("reference", pred.get("ref")),
        ("bundle name / version", f"{pred.get('bundle_name')} / {pred.get('bundle_version')}" if pred.get("bundle_name") else None),
        ("SHA-256 (weights and configs)", pred.get("sha256")),
        ("fingerprint", pred.get("fingerprint")),
        ("device / batch size", f"{pred.get('device')} / {pred.get('batch_size')}"),
    ]
    sections = [
        {"title": "Predictor", "items": [(k, scrub.text(str(v))) for k, v in predictor_items if v is not None],
         "json": scrub.text(json.dumps(spec, indent=2))},
    ]  # fmt: skip
    s = results["set"]
    set_items = [
        ("name", s["name"]),
        ("set.json SHA-256", s["sha256"]),
        ("rows / evaluated / filtered out", f"{s['rows']} / {s['evaluated']} / {s['rejected']}"),
        ("recipes", ", ".join(s.get("recipes", [])) or "—"),
        ("subgroup columns", ", ".join(s.get("subgroups", [])) or "—"),
    ]
    set_provenance = results.get("provenance", {}).get("set") or {}
    sections.append({"title": "Set (as the builder recorded it: model, revisions, settings)",
                     "items": [(k, scrub.text(str(v))) for k, v in set_items],
                     "json": scrub.text(json.dumps(set_provenance, indent=2, default=str)) if set_provenance else ""})  # fmt: skip
    ev = results["evaluation"]
    boot = ev.get("bootstrap", {})
    ev_items = [
        ("bootstrap", f"{boot.get('resamples')} resamples of {boot.get('sources')} source images, seed {boot.get('seed')}, {boot.get('method')} {boot.get('confidence')} interval"),
        ("decision rule", ev.get("decision")),
        ("seconds", ev.get("seconds")),
        ("predictions reused from an interrupted run", ev.get("reused_predictions")),
        ("results created", results.get("provenance", {}).get("created")),
    ]
    sections.append({"title": "Evaluation", "items": [(k, scrub.text(str(v))) for k, v in ev_items], "json": ""})
    packages = results.get("provenance", {}).get("packages", {})
    sections.append({"title": "Packages", "items": sorted(packages.items()), "json": ""})
    return sections


def _own_report(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return b'<meta name="generator" content="radedit_core ' in head


def check_report_output(output: str | Path, overwrite: bool = False, inputs: Mapping[str, Any] | None = None) -> Path:
    """The report's path can be written: :func:`~radedit_core.fileio.check_writable`, it is none of
    ``inputs`` (``{name: path}``, :func:`~radedit_core.fileio.check_outputs_apart`), and an existing
    file is replaced (``overwrite``) only when it is a report radedit wrote (its generator tag).

    Raises:
        OutputError: as check_writable, naming the input it is, or the file another tool wrote.
    """
    output = check_writable(output, overwrite, folder=False)
    check_outputs_apart({"--output": output}, dict(inputs or {}))
    if output.is_file() and not _own_report(output):
        raise OutputError(
            f"{output}: not a report radedit wrote; --overwrite replaces only those: choose another --output"
        )
    return output


def write_report(
    results_dir: str | Path,
    output: str | Path | None = None,
    *,
    set_dir: str | Path | None = None,
    include_images: bool = True,
    gallery_size: int = DEFAULT_GALLERY_SIZE,
    overwrite: bool = False,
) -> Path:
    """Write the HTML report of an evaluation folder; returns its path.

    Args:
        results_dir: the folder ``evaluate_set`` wrote (``results.json``, ``predictions.csv``).
        output: the HTML file [default: ``<results_dir>/report.html``].
        set_dir: the set, if it moved since the evaluation [default: the path in ``results.json``].
        include_images: False (``--no-images``) leaves every picture of an image out; plots stay.
        gallery_size: how many of the largest prediction changes to show.

    Raises:
        InputError: results or predictions missing or unreadable, the set missing.
        OutputError: the report exists and ``overwrite`` is false, is a symlink or a folder, or is a
            file the report reads (the results, predictions, the set's files or images).
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape  # noqa: PLC0415

    folder = Path(results_dir)
    results = read_results(folder)
    folder = folder if folder.is_dir() else folder.parent
    output = Path(output) if output is not None else folder / "report.html"
    predictions = _read_predictions(folder)
    set_path = Path(set_dir) if set_dir is not None else Path(results["set"]["path"])
    stress_set = read_stress_set(set_path)
    if stress_set.sha256 != results["set"]["sha256"]:
        raise InputError(stress_set.json_path, "the set changed since it was evaluated (set.json checksum differs); evaluate it again")
    # the report never replaces what it reads: the results, the set, its images
    inputs = {"--results": folder / RESULTS_JSON, "predictions": folder / PREDICTIONS_CSV, **stress_set.input_files()}
    output = check_report_output(output, overwrite, inputs)
    scrub = Scrubber.for_images(r.image for r in stress_set.rows)

    tables, paired_tables = _summary_tables(results, scrub)
    gallery, gallery_columns, gallery_scale = _gallery(results, folder, stress_set, predictions, scrub, include_images, gallery_size)
    qc = results.get("qc", {})
    rejected = [
        {"id": scrub.text(r["id"]), "recipe": scrub.text(str(r.get("recipe") or "")),
         "score": "—" if r.get("score") is None else f"{r['score']:.3f}", "reason": scrub.text(r.get("reason") or "unspecified")}
        for r in qc.get("rejected", [])
    ]  # fmt: skip
    s = results["set"]
    boot = results["evaluation"].get("bootstrap", {})
    task = results["task"]
    model_name, settings_rows = _edit_settings(results, scrub)
    ev = results["evaluation"]
    context = {
        "shortcut": _shortcut(results, scrub),
        "model_name": model_name,
        "settings_rows": settings_rows,
        "qc": _qc_section(results, scrub),
        "score_plot": score_histogram(qc),
        "interval_notes": [scrub.text(v) for v in (ev.get("intervals") or {}).values()],
        "gallery_scale": gallery_scale,
        "title": scrub.text(f"Stress test of {results['predictor'].get('spec', {}).get('name') or results['predictor'].get('ref')} on {s['name']}"),
        "version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "results_created": results.get("provenance", {}).get("created"),
        "include_images": include_images,
        "task": task,
        "predictor": {
            "name": results["predictor"].get("spec", {}).get("name") or results["predictor"].get("ref"),
            "form": results["predictor"].get("form"),
            "version": results["predictor"].get("bundle_version"),
        },
        "set": s,
        "tables": tables,
        "paired_tables": paired_tables,
        "value_note": "percentages (accuracy, sensitivity, specificity, flip rate), AUROC in [0, 1]" if task == "classification"
        else "Dice in percent and distances",
        "ci_note": f"{int(round(boot.get('confidence', 0.95) * 100))}% confidence intervals that keep the clustering of {boot.get('sources')} source images (each with its real image and all its edits; methods below)",
        "scope_note": results["evaluation"].get("metric_scope", "").rstrip(".") + ".",
        "paired_note": (
            "Flip rate: share of edits whose prediction differs from their source image's."
            if task == "classification"
            else "Paired Δ: an edit's Dice (HD95, ASD) minus its source image's, against the same original mask."
        ),
        "distance_unit": results["evaluation"].get("distance_unit"),
        "plots": _plots(results, scrub),
        "subgroup_tables": _subgroup_tables(results, scrub),
        "min_subgroup": MIN_SUBGROUP_SIZE,
        "gallery": gallery,
        "gallery_columns": gallery_columns,
        "gallery_note": (
            f"The {len(gallery)} edits whose prediction changed most from their source image's"
            + ("" if task == "classification" else " (Dice against the original mask)")
            + (". Pictures: a crop around the edit region (original | edited | difference), then the whole images; "
               "outlines: the edit region (yellow) and the keep region (cyan)." if include_images else ".")
        ),
        "rejected": rejected,
        "reasons": sorted(((scrub.text(k), v) for k, v in qc.get("reasons", {}).items()), key=lambda kv: -kv[1]),
        "threshold": qc.get("score_threshold"),
        "provenance": _provenance(results, scrub),
    }

    def finalize(value: Any) -> Any:
        # Second line of defence: no identifier from a DICOM header reaches the page.
        if isinstance(value, str) and not value.startswith("data:image/"):
            return scrub.text(value)
        return "" if value is None else value

    env = Environment(
        loader=FileSystemLoader(str(Path(__file__).with_name("templates"))),
        autoescape=select_autoescape(["html"]),
        finalize=finalize,
        keep_trailing_newline=True,
    )
    html = env.get_template("report.html").render(**context)
    with atomic_path(output, overwrite=overwrite) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return output


__all__ = ["DEFAULT_GALLERY_SIZE", "format_estimate", "largest_changes", "write_report"]
