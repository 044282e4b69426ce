"""Metrics of a stress test: MONAI metrics, a bootstrap over source images, breakdowns.

* Per image, with MONAI: the confusion-matrix entries of each class decision
  (``get_confusion_matrix``, which ``ConfusionMatrixMetric`` accumulates) and,
  for segmentation, Dice (``DiceMetric``), the 95th-percentile Hausdorff
  distance (``HausdorffDistanceMetric(percentile=95)``) and the symmetric
  average surface distance (``SurfaceDistanceMetric(symmetric=True)``) against
  the ORIGINAL masks, in mm from the image's pixel spacing (pixels for PNG).
  An empty prediction has Dice 0 and no distance (counted as ``empty``).
* Per group of images (the real set, each recipe's synthetic set, all edits,
  real and synthetic pooled, a subgroup, one value of a swept setting):
  accuracy; sensitivity, specificity (``compute_confusion_matrix_metric``) and
  AUROC (``compute_roc_auc``, what ``ROCAUCMetric`` computes) where the group
  holds both classes; mean Dice, HD95 and ASD.
* 95% confidence intervals that keep the source-image clustering (one source
  gives several edits, which are not independent) and stay honest at 0 % and
  100 % (:mod:`.intervals`): proportions (accuracy, sensitivity, specificity,
  flip rate) get clustered Wilson intervals and their differences Newcombe's;
  AUROC, Dice, distances and probability changes a percentile bootstrap that
  resamples SOURCE images (each with its real image and all its edits), the
  same resamples for every group.  Every estimate names its ``method``; groups
  of fewer than :data:`~.intervals.MIN_INTERPRETABLE` images are marked
  ``too_small``.
* Prediction flip rates: the share of edits whose decision differs from their
  source image's, with the mean change of the probability.
* Per recipe with a sham control, the shortcut effect (:func:`shortcut_effects`):
  (accuracy on the edits against their edited labels minus on their sources)
  minus (the same for the shams), with its interval and exact McNemar tests.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from . import intervals
from .stress_set import SHAM_SUFFIX

CLASSIFICATION_METRICS = ("accuracy", "sensitivity", "specificity", "auroc")
SEGMENTATION_METRICS = ("dice", "hd95", "asd")
#: Metrics where larger is better (the rest are distances).
HIGHER_IS_BETTER = {"accuracy": True, "sensitivity": True, "specificity": True, "auroc": True, "dice": True,
                    "hd95": False, "asd": False, "flip_rate": False}  # fmt: skip
DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
#: Subgroups smaller than this are reported by size only (small cells can identify people).
MIN_SUBGROUP_SIZE = 5
MAX_SUBGROUP_VALUES = 20


# -- per image (MONAI) -------------------------------------------------------------------
def confusion_rows(decisions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-image (TP, FP, TN, FN) of binary decisions ``[N]`` against labels ``[N]`` -> ``[N, 4]``."""
    from monai.metrics import get_confusion_matrix  # noqa: PLC0415

    y_pred = torch.as_tensor(np.asarray(decisions, dtype=np.float32)).reshape(-1, 1)
    y = torch.as_tensor(np.asarray(labels, dtype=np.float32)).reshape(-1, 1)
    if y_pred.shape[0] == 0:
        return np.zeros((0, 4))
    return get_confusion_matrix(y_pred, y, include_background=True)[:, 0, :].double().numpy()


def confusion_metric(name: str, counts: np.ndarray) -> np.ndarray:
    """``accuracy``/``sensitivity``/``specificity`` from summed (TP, FP, TN, FN) ``[..., 4]`` (NaN if undefined)."""
    from monai.metrics import compute_confusion_matrix_metric  # noqa: PLC0415

    counts = np.asarray(counts, dtype=np.float64)
    flat = torch.as_tensor(counts.reshape(-1, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = compute_confusion_matrix_metric(name, flat).double().numpy()
    return values.reshape(counts.shape[:-1])


def auroc(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (MONAI ``compute_roc_auc``); NaN unless both classes occur."""
    from monai.metrics import compute_roc_auc  # noqa: PLC0415

    labels = np.asarray(labels)
    if labels.size == 0 or labels.min() == labels.max():
        return float("nan")
    return float(compute_roc_auc(torch.as_tensor(np.asarray(probabilities, dtype=np.float64)), torch.as_tensor(labels)))


def segmentation_scores(
    predicted: np.ndarray, truth: np.ndarray, spacing: Sequence[float] | None = None
) -> dict[str, float]:
    """Dice, HD95 and ASD of one 2D mask against the ground truth (MONAI).

    ``spacing`` is (row, column) in mm.  Empty prediction: Dice 0 and NaN
    distances (``empty`` = 1); both empty: Dice 1 and distances 0.
    """
    from monai.metrics import DiceMetric, HausdorffDistanceMetric, SurfaceDistanceMetric  # noqa: PLC0415

    p = torch.as_tensor(np.asarray(predicted, dtype=bool))[None, None].float()
    t = torch.as_tensor(np.asarray(truth, dtype=bool))[None, None].float()
    pred_empty, truth_empty = not bool(p.any()), not bool(t.any())
    out = {"empty": float(pred_empty), "predicted_pixels": float(p.sum())}
    if pred_empty and truth_empty:
        return {**out, "dice": 1.0, "hd95": 0.0, "asd": 0.0}
    dice = DiceMetric(include_background=True, reduction="none", ignore_empty=False)(p, t)
    out["dice"] = float(dice.reshape(-1)[0])
    if pred_empty or truth_empty:
        return {**out, "hd95": float("nan"), "asd": float("nan")}
    kwargs = {} if spacing is None else {"spacing": [float(s) for s in spacing]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd = HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")(p, t, **kwargs)
        asd = SurfaceDistanceMetric(include_background=True, symmetric=True, reduction="none")(p, t, **kwargs)
    out["hd95"] = float(hd.reshape(-1)[0])
    out["asd"] = float(asd.reshape(-1)[0])
    return out


# -- the bootstrap -----------------------------------------------------------------------
@dataclass
class SourceBootstrap:
    """Resamples of the source images.

    ``counts[b, s]`` is how often source ``s`` was drawn in resample ``b``
    (sources drawn with replacement, as many as there are).  A statistic over
    rows is evaluated on a resample by weighting each row with its source's
    count; sums go through per-source totals, so memory stays at
    ``resamples x sources`` (float32: 24 MB for 2000 resamples of 3000 sources).
    """

    sources: Sequence[str]
    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    confidence: float = DEFAULT_CONFIDENCE
    counts: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names, self.index = np.unique(np.asarray(self.sources, dtype=object).astype(str), return_inverse=True)
        self.n_sources = len(names)
        rng = np.random.default_rng(self.seed)
        draws = rng.multinomial(self.n_sources, np.full(self.n_sources, 1.0 / self.n_sources), size=self.n_resamples)
        self.counts = draws.astype(np.float32)

    def weights(self, rows: np.ndarray) -> np.ndarray:
        """``[resamples, len(rows)]``: how often each row's source was drawn (for small row sets)."""
        return self.counts[:, self.index[rows]]

    def sums(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``sum_i count[b, source(i)] * values[i]`` over the rows in ``mask``, for every resample ``b``."""
        rows = np.flatnonzero(mask)
        return self.sums_at(rows, np.asarray(values, dtype=np.float64)[rows])

    def sums_at(self, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The same for row indices ``rows`` with one value each."""
        per_source = np.bincount(self.index[rows], weights=values, minlength=self.n_sources)
        return (self.counts @ per_source.astype(np.float32)).astype(np.float64)

    def interval(self, values: np.ndarray) -> list[float] | None:
        """Percentile interval of resampled values (undefined resamples ignored)."""
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size < max(10, self.n_resamples // 2):
            return None
        tail = (1.0 - self.confidence) / 2 * 100
        lo, hi = np.percentile(values, [tail, 100 - tail])
        return [float(lo), float(hi)]

    def describe(self) -> dict[str, Any]:
        return {
            "resamples": self.n_resamples,
            "seed": self.seed,
            "confidence": self.confidence,
            "unit": "source image (its real image and every edit of it)",
            "sources": self.n_sources,
            "method": "percentile",
        }


def _estimate(value: float, resampled: np.ndarray, boot: SourceBootstrap) -> dict[str, Any] | None:
    if value is None or not np.isfinite(value):
        return None
    return {"value": float(value), "ci": boot.interval(resampled), "method": intervals.BOOTSTRAP}


#: Proportions: clustered Wilson intervals, Newcombe differences (the rest: the bootstrap).
PROPORTIONS = ("accuracy", "sensitivity", "specificity")


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def weighted_mean(values: np.ndarray, mask: np.ndarray, boot: SourceBootstrap) -> tuple[float, np.ndarray]:
    """Mean of the finite ``values`` in ``mask`` and its value in every resample."""
    v = np.asarray(values, dtype=np.float64)
    ok = mask & np.isfinite(v)
    if not ok.any():
        return float("nan"), np.full(boot.n_resamples, np.nan)
    filled = np.where(ok, v, 0.0)
    return float(v[ok].mean()), _ratio(boot.sums(filled, ok), boot.sums(np.ones_like(v), ok))


# -- group statistics --------------------------------------------------------------------
@dataclass
class ClassificationTable:
    """Per-row values of one class: labels, probabilities, decisions (NaN label = not labelled)."""

    labels: np.ndarray
    probabilities: np.ndarray
    decisions: np.ndarray

    def __post_init__(self) -> None:
        self.labelled = np.isfinite(self.labels)
        lab = np.where(self.labelled, self.labels, 0)
        self.confusion = confusion_rows(self.decisions, lab)
        self.confusion[~self.labelled] = 0


def classification_group(table: ClassificationTable, mask: np.ndarray, boot: SourceBootstrap) -> tuple[dict, dict]:
    """Metrics of one group and their resampled values (for differences)."""
    m = mask & table.labelled
    labels = table.labels[m]
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    counts = table.confusion[m].sum(axis=0)
    resampled_counts = np.stack([boot.sums(table.confusion[:, j], m) for j in range(4)], axis=1)
    metrics: dict[str, Any] = {}
    samples: dict[str, np.ndarray] = {}
    wanted = {"accuracy": m.any(), "sensitivity": n_pos > 0, "specificity": n_neg > 0}
    rows = np.flatnonzero(m)
    conf = table.confusion[rows]
    correct = conf[:, 0] + conf[:, 2]  # TP + TN
    among = {"accuracy": np.ones(rows.size, bool), "sensitivity": labels == 1, "specificity": labels == 0}
    for name, defined in wanted.items():
        if not defined:
            continue
        samples[name] = confusion_metric(name, resampled_counts)
        est = intervals.proportion(correct[among[name]], boot.index[rows[among[name]]], boot.confidence)
        if est is not None:
            est["value"] = float(confusion_metric(name, counts))  # MONAI's figure (the same fraction)
        metrics[name] = est
    if n_pos and n_neg:
        rows = np.flatnonzero(m)
        probs, labs = table.probabilities[rows], table.labels[rows]
        values = np.full(boot.n_resamples, np.nan)
        weights = boot.weights(rows).astype(int)
        for b in range(boot.n_resamples):
            idx = np.repeat(np.arange(rows.size), weights[b])
            values[b] = auroc(probs[idx], labs[idx])
        samples["auroc"] = values
        metrics["auroc"] = _estimate(auroc(probs, labs), values, boot)
    sizes = {"n": int(m.sum()), "n_positive": n_pos, "n_negative": n_neg,
             "too_small": bool(m.sum() < intervals.MIN_INTERPRETABLE)}  # fmt: skip
    return {**sizes, "metrics": metrics}, samples


def segmentation_group(scores: Mapping[str, np.ndarray], mask: np.ndarray, boot: SourceBootstrap) -> tuple[dict, dict]:
    """Mean Dice/HD95/ASD of one group (one class) and their resampled values."""
    metrics: dict[str, Any] = {}
    samples: dict[str, np.ndarray] = {}
    for name in SEGMENTATION_METRICS:
        value, resampled = weighted_mean(scores[name], mask, boot)
        samples[name] = resampled
        metrics[name] = _estimate(value, resampled, boot)
    empty = int(np.nansum(scores["empty"][mask])) if mask.any() else 0
    return {"n": int(mask.sum()), "empty_predictions": empty, "metrics": metrics,
            "too_small": bool(mask.sum() < intervals.MIN_INTERPRETABLE)}, samples  # fmt: skip


def differences(a: Mapping[str, Any], a_samples: Mapping[str, np.ndarray], b: Mapping[str, Any],
                b_samples: Mapping[str, np.ndarray], boot: SourceBootstrap) -> dict[str, Any]:  # fmt: skip
    """``a - b`` for every metric both groups define: Newcombe's interval for proportions, else the bootstrap's."""
    out = {}
    for name, est in a["metrics"].items():
        other = b["metrics"].get(name)
        if est is None or other is None or name not in b_samples:
            continue
        if name in PROPORTIONS:
            out[name] = intervals.difference(est, other)
        else:
            out[name] = _estimate(est["value"] - other["value"], a_samples[name] - b_samples[name], boot)
    return out


def paired_changes(
    edits: np.ndarray, sources: np.ndarray, values: np.ndarray, boot: SourceBootstrap, flips: bool
) -> dict[str, Any] | None:
    """Mean of ``values[edit] - values[source]`` over pairs (``flips``: share of pairs that differ)."""
    if edits.size == 0:
        return None
    change = values[edits] - values[sources]
    if flips:
        change = (change != 0).astype(np.float64)
    ok = np.isfinite(change)
    if not ok.any():
        return None
    rows = edits[ok]  # a pair counts as often as its edit's (= its source's) source is drawn
    if flips:
        est = intervals.proportion(change[ok], boot.index[rows], boot.confidence)
    else:
        resampled = _ratio(boot.sums_at(rows, change[ok]), boot.sums_at(rows, np.ones(rows.size)))
        est = _estimate(float(change[ok].mean()), resampled, boot)
    if est is not None:
        est["pairs"] = int(ok.sum())
    return est


# -- breakdowns --------------------------------------------------------------------------
@dataclass
class Group:
    """A named set of rows: ``key`` for machines, ``label`` for people."""

    key: str
    label: str
    mask: np.ndarray
    kind: str  # real | synthetic | pooled
    recipe: str | None = None


def is_sham(recipe: str | None) -> bool:
    return recipe is not None and recipe.endswith(SHAM_SUFFIX)


def standard_groups(kinds: np.ndarray, recipes: Sequence[str | None]) -> list[Group]:
    """Real, each recipe, all edits, real + edits pooled (the rows of the paper's tables).

    Sham controls (recipes ending in ``:sham``) are groups of their own and are
    never pooled with edits: an edit should change the prediction, a sham not.
    """
    real = kinds == "real"
    synthetic = kinds == "synthetic"
    sham = np.array([is_sham(r) for r in recipes], dtype=bool)
    edits = synthetic & ~sham
    groups = [Group("real", "Real", real, "real")]
    names: dict[str, None] = {}
    for r in recipes:
        if r is not None:
            names.setdefault(r)
    for name in names:
        groups.append(Group(f"recipe:{name}", name, np.array([r == name for r in recipes]) & synthetic, "synthetic", name))
    if len([n for n in names if not is_sham(n)]) > 1:
        groups.append(Group("synthetic", "All edits (no shams)", edits, "synthetic"))
    groups.append(Group("pooled", "Real + edits (pooled, no shams)", real | edits, "pooled"))
    return [g for g in groups if g.mask.any()]


def subgroup_values(values: Sequence[Any]) -> list[Any]:
    seen: dict[Any, None] = {}
    for v in values:
        if v is not None and v != "":
            seen.setdefault(v)
    return list(seen)


@dataclass
class Outcomes:
    """Everything the breakdowns need, one entry per evaluated row."""

    task: str
    classes: list[str]
    ids: list[str]
    kinds: np.ndarray
    sources: list[str]
    recipes: list[str | None]
    columns: dict[str, list[Any]]  # subgroup and sweep columns
    classification: dict[str, ClassificationTable] = field(default_factory=dict)
    segmentation: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def pairs(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(edit rows in ``mask``, their source rows) for edits whose source is a row."""
        position = {rid: i for i, (rid, kind) in enumerate(zip(self.ids, self.kinds)) if kind == "real"}
        edits, sources = [], []
        for i in np.flatnonzero(mask):
            if self.kinds[i] == "synthetic" and self.sources[i] in position:
                edits.append(i)
                sources.append(position[self.sources[i]])
        return np.asarray(edits, dtype=int), np.asarray(sources, dtype=int)


def _group_entry(out: Outcomes, cls: str, group: Group, boot: SourceBootstrap) -> tuple[dict, dict]:
    if out.task == "classification":
        entry, samples = classification_group(out.classification[cls], group.mask, boot)
    else:
        entry, samples = segmentation_group(out.segmentation[cls], group.mask, boot)
    entry = {"group": group.key, "label": group.label, "kind": group.kind, "recipe": group.recipe, **entry}
    return entry, samples


def _paired_entries(out: Outcomes, cls: str, mask: np.ndarray, boot: SourceBootstrap) -> dict[str, Any]:
    edits, sources = out.pairs(mask)
    if out.task == "classification":
        table = out.classification[cls]
        return {
            "flip_rate": paired_changes(edits, sources, table.decisions.astype(np.float64), boot, flips=True),
            "probability_change": paired_changes(edits, sources, table.probabilities, boot, flips=False),
        }
    scores = out.segmentation[cls]
    return {f"{name}_change": paired_changes(edits, sources, scores[name], boot, flips=False) for name in SEGMENTATION_METRICS}


def summarise(out: Outcomes, boot: SourceBootstrap, subgroups: Sequence[str] = (), sweeps: Sequence[str] = ()) -> dict[str, Any]:
    """Groups (with differences and flip rates), subgroups and dose-response, per class."""
    groups = standard_groups(out.kinds, out.recipes)
    result: dict[str, Any] = {"groups": {}, "shortcut": [], "subgroups": {}, "dose_response": []}
    for cls in out.classes:
        entries = []
        computed = {g.key: _group_entry(out, cls, g, boot) for g in groups}
        real = computed.get("real")
        for g in groups:
            entry, samples = computed[g.key]
            if g.kind == "synthetic":
                if real is not None:
                    entry["delta_vs_real"] = differences(entry, samples, real[0], real[1], boot)
                edits, sources = out.pairs(g.mask)
                if edits.size:
                    source_mask = np.zeros_like(g.mask)
                    source_mask[np.unique(sources)] = True
                    src_group = Group("sources", "their sources", source_mask, "real")
                    src_entry, src_samples = _group_entry(out, cls, src_group, boot)
                    entry["delta_vs_sources"] = differences(entry, samples, src_entry, src_samples, boot)
                entry.update(_paired_entries(out, cls, g.mask, boot))
            entries.append(entry)
        result["groups"][cls] = entries
        if out.task == "classification":
            result["shortcut"].extend(shortcut_effects(out, cls, boot))
        result["subgroups"][cls] = _subgroup_breakdown(out, cls, subgroups, boot)
        result["dose_response"].extend(_dose_response(out, cls, sweeps, boot))
    return result


#: |shortcut effect| up to this, with an interval that holds 0 and rules out large effects, reads
#: "follows the finding".
FOLLOWS_WITHIN = 0.15
#: A shortcut effect at or below this (interval below 0) reads "relies on something the edit kept";
#: an interval reaching this far from 0 either way holds a large effect.
RELIES_BELOW = -0.5


def shortcut_verdict(effect: dict[str, Any], n: int) -> str:
    """The plain line under a shortcut effect (the report reads "The model <line>")."""
    value, (lo, hi) = effect["value"], effect["ci"]
    small = " (few images: read with care)" if n < intervals.MIN_INTERPRETABLE else ""
    if hi < 0 and value <= RELIES_BELOW:
        return "relies on something the edit kept: right on the sources, wrong once the finding is gone" + small
    if hi < 0:
        return "partly relies on something the edit kept" + small
    if lo > 0:
        return "is more often right on the edits than on their sources, beyond the shams" + small
    # An estimate near 0 is only read as "follows" when the interval excludes large effects: on a few
    # pairs an effect of 0 [-57, +57] says nothing yet.
    if abs(value) <= FOLLOWS_WITHIN and RELIES_BELOW < lo and hi < -RELIES_BELOW:
        return "follows the finding: the edits move it as the labels say, the shams do not" + small
    return "cannot be read yet: the interval holds 0 but also large effects (more pairs narrow it)" + small


def shortcut_effects(out: Outcomes, cls: str, boot: SourceBootstrap) -> list[dict[str, Any]]:
    """Per recipe with a sham control: the shortcut effect on class ``cls``.

    (accuracy on the edits against their edited labels minus accuracy on their
    sources) minus (the same for the shams), in -1..1 per part and -2..2 in
    all, with Newcombe paired intervals per part, their MOVER difference, and
    exact McNemar tests of each part.  A model that follows the finding is
    near 0; one that relies on something the edit kept (a drain) near -1.
    """
    table = out.classification[cls]
    correct = np.where(table.labelled, table.confusion[:, 0] + table.confusion[:, 2], np.nan)
    effects = []
    for recipe in subgroup_values(out.recipes):
        if is_sham(recipe) or f"{recipe}{SHAM_SUFFIX}" not in out.recipes:
            continue
        parts = {}
        for part, name in (("edits", recipe), ("shams", f"{recipe}{SHAM_SUFFIX}")):
            mask = np.array([r == name for r in out.recipes]) & (out.kinds == "synthetic")
            edits, sources = out.pairs(mask)
            if not edits.size:
                break
            ok = np.isfinite(correct[edits]) & np.isfinite(correct[sources])
            a, b = correct[edits[ok]], correct[sources[ok]]
            est = intervals.paired_difference(a, b, boot.index[edits[ok]], boot.confidence)
            if est is None:
                break
            est["mcnemar"] = intervals.mcnemar_exact(a, b)
            est["accuracy"] = float(a.mean())
            est["source_accuracy"] = float(b.mean())
            parts[part] = est
        if len(parts) < 2:
            continue
        effect = intervals.difference_of_differences(parts["edits"], parts["shams"])
        n = min(parts["edits"]["pairs"], parts["shams"]["pairs"])
        effects.append({
            "class": cls, "recipe": recipe, "sham": f"{recipe}{SHAM_SUFFIX}", "effect": effect,
            "edits": parts["edits"], "shams": parts["shams"], "too_small": n < intervals.MIN_INTERPRETABLE,
            "verdict": shortcut_verdict(effect, n),
        })  # fmt: skip
    return effects


def _subgroup_breakdown(out: Outcomes, cls: str, columns: Sequence[str], boot: SourceBootstrap) -> dict[str, Any]:
    breakdown: dict[str, Any] = {}
    for column in columns:
        values = out.columns.get(column)
        if values is None:
            continue
        distinct = subgroup_values(values)
        if not 2 <= len(distinct) <= MAX_SUBGROUP_VALUES:
            continue
        column_values = np.asarray([str(v) for v in values], dtype=object)
        recipe_names = subgroup_values(out.recipes)
        rows = []
        for value in distinct:
            in_value = column_values == str(value)
            # one row per value and test data: the real images, then each recipe (edits and shams apart)
            parts = [("real", None, out.kinds == "real")]
            parts += [("synthetic", r, np.array([x == r for x in out.recipes]) & (out.kinds == "synthetic")) for r in recipe_names]
            for kind, recipe, part in parts:
                mask = in_value & part
                if not mask.any():
                    continue
                label = "real" if recipe is None else recipe
                if mask.sum() < MIN_SUBGROUP_SIZE:
                    rows.append({"value": str(value), "kind": kind, "recipe": recipe, "test_data": label,
                                 "n": f"<{MIN_SUBGROUP_SIZE}", "suppressed": True})  # fmt: skip
                    continue
                entry, _ = _group_entry(out, cls, Group(f"{column}={value}:{label}", str(value), mask, kind, recipe), boot)
                entry.update({"value": str(value), "test_data": label})
                if kind == "synthetic":
                    entry.update(_paired_entries(out, cls, mask, boot))
                rows.append(entry)
        breakdown[column] = rows
    return breakdown


def _dose_response(out: Outcomes, cls: str, sweeps: Sequence[str], boot: SourceBootstrap) -> list[dict[str, Any]]:
    curves = []
    recipes = subgroup_values(out.recipes)
    for recipe in recipes:
        in_recipe = np.array([r == recipe for r in out.recipes]) & (out.kinds == "synthetic")
        for parameter in sweeps:
            values = out.columns.get(parameter)
            if values is None:
                continue
            numeric = np.array([np.nan if v in (None, "") else float(v) for v in values])
            levels = np.unique(numeric[in_recipe & np.isfinite(numeric)])
            if levels.size < 2:
                continue
            points = []
            for level in levels:
                mask = in_recipe & (numeric == level)
                entry, _ = _group_entry(out, cls, Group(f"{recipe}:{parameter}={level:g}", f"{level:g}", mask, "synthetic"), boot)
                entry.update({"value": float(level)})
                entry.update(_paired_entries(out, cls, mask, boot))
                points.append(entry)
            curves.append({"class": cls, "recipe": recipe, "parameter": parameter, "points": points})
    return curves


def headline_metric(task: str) -> str:
    return "accuracy" if task == "classification" else "dice"


def iter_estimates(tree: Any, prefix: str = "") -> Iterable[tuple[str, dict[str, Any]]]:
    """Every ``{"value", "ci"}`` in a results tree, with its path (for tests and audits)."""
    if isinstance(tree, Mapping):
        if "value" in tree and "ci" in tree:
            yield prefix, tree  # type: ignore[misc]
            return
        for k, v in tree.items():
            yield from iter_estimates(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(tree, list):
        for k, v in enumerate(tree):
            yield from iter_estimates(v, f"{prefix}[{k}]")


__all__ = [
    "CLASSIFICATION_METRICS",
    "ClassificationTable",
    "DEFAULT_RESAMPLES",
    "Group",
    "HIGHER_IS_BETTER",
    "MIN_SUBGROUP_SIZE",
    "Outcomes",
    "SEGMENTATION_METRICS",
    "SourceBootstrap",
    "auroc",
    "classification_group",
    "confusion_metric",
    "confusion_rows",
    "differences",
    "headline_metric",
    "iter_estimates",
    "paired_changes",
    "segmentation_group",
    "segmentation_scores",
    "shortcut_effects",
    "standard_groups",
    "summarise",
    "weighted_mean",
]
