"""The paper's experiments (Sec. 5, Tables 1-3) measured in the phantom world.

:func:`run_replication` does everything :mod:`benchmarks/phantom_replication.py`
prints, in numbered steps:

1. **Splits** (:mod:`.worlds`): render the judge, weak, strong, healthy and
   test splits at the contract size (:mod:`.data`), with disjoint case seeds.
2. **Networks** (:mod:`.networks`), each trained on its own split:

   * the *judge*: a 5-label classifier (pneumothorax, drain, consolidation,
     edema, pacemaker) on the balanced world: it decides whether an edit
     removed or added a finding and whether the drain survived (a drain
     detector, not pixel identity);
   * the *weak* predictor (pneumothorax and consolidation, one logit each) on
     the biased world (drain with pneumothorax, consolidation only at site B),
     the *strong* one on the balanced world;
   * the *weak* lung segmenter on healthy phantoms, the *strong* one on the
     balanced world (findings and devices).

3. **Manifestation shift** (Sec. 5.3, Table 2): test cases with a pneumothorax
   and a drain; remove the pneumothorax ("No pneumothorax" by default) three
   ways: RadEdit (edit = pneumothorax mask, keep = drain mask, with the
   CLI's defaults, pixel keep and keep scope ``mask``, unless
   ``keep_mode``/``keep_scope`` say otherwise), the global edit (no masks:
   the LANCE-style baseline) and the edit mask without the keep mask.
   Measured per method: pneumothorax removed (judge), drain still present
   (judge), lung Dice of the strong segmenter after the edit against the
   original lung mask, and the distance to the *true* counterfactual (the
   same case rendered without its pneumothorax): the mean absolute
   difference inside the pneumothorax mask, and the share of the region's
   mean darkness (air where lung should be) that the edit removed, over the
   pneumothorax less the drain's own pixels (which the keep must keep; in
   results written before this measure, over the whole mask: they carry no
   ``darkness_region``).  The same figures for
   the *perfect edit*, the true counterfactual with the source's pixels where
   a keep mask keeps them (RadEdit's dilated, scoped keep mask, pasted as
   pixels in latent keep mode too; the drain's own pixels alone; nothing:
   the true counterfactual itself): what a flawless edit that keeps those
   pixels bit for bit measures, a reference rather than a bound (an edit can
   score beyond it through its errors).
   DiffEdit's automatic mask (diffusers' ``generate_mask``
   rule, :mod:`radedit_core.pipelines.diffedit_mask`) is scored against the
   true pneumothorax mask (Dice) and for how much of the drain it takes in.
4. **Weak vs strong predictor**: accuracy on the real biased test set and on
   the synthetic "drain, no pneumothorax" set (the RadEdit edits, label 0),
   95% bootstrap CIs over source images (:class:`~radedit_core.stress.metrics.SourceBootstrap`).
5. **Acquisition shift** (Sec. 5.2, Table 1): consolidation only at site B;
   site-B cases with consolidation have it removed inside its bounding box
   (devices kept); weak and strong consolidation predictors on the real test
   set, on the edits and on the perfect edits (the patient drawn without the
   consolidation, the source under the edits' keep mask), label 0.
6. **Population shift** (Sec. 5.4, Table 3): healthy test cases get edema
   (inside the lungs), a pacemaker (inside its would-be box: the same patient
   drawn with a pacemaker shows where) and an upper lobe consolidation (inside
   its would-be box), always keeping a band along the lung borders in pixel
   mode (keep scope ``mask``: the band is a region, not a device); weak and
   strong segmenters' Dice against the ORIGINAL lung masks.

Edits go through :class:`radedit_core.workflow.RadEditor` (the toolkit's one
edit path), metrics through MONAI (:mod:`radedit_core.stress.metrics`).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ConfigError
from ..imaging import masks
from ..imaging.transform import ModelSpaceTransform
from ..phantom_world import Case, render_case, sample_case
from ..settings import DEFAULT_KEEP_SCOPE, PAPER_PROMPTS, EditSettings
from ..stress.metrics import (
    ClassificationTable,
    SourceBootstrap,
    classification_group,
    segmentation_scores,
    weighted_mean,
)
from .data import TOP, case_image, contract_tensor, render_set
from .networks import Recipe, TrainedNetwork, fit, predict_probabilities
from .report import goals
from .worlds import SPLITS, check_disjoint, describe, world_config

JUDGE_CLASSES = ("pneumothorax", "drain", "consolidation", "edema", "pacemaker")
NORMAL = PAPER_PROMPTS["normal"]
NO_PNEUMOTHORAX = PAPER_PROMPTS["no-pneumothorax"]


@dataclass
class ReplicationConfig:
    """Sizes and settings of one run (:meth:`full` and :meth:`quick` are the two presets).

    ``cases``: split name -> cases rendered; ``epochs``: network -> training
    epochs; ``removals``: pneumothorax-with-drain test cases edited (x3
    methods); ``consolidations``: site-B consolidation cases edited;
    ``additions``: healthy test cases, each given edema, a pacemaker and a
    consolidation.  Edits: ``steps`` T, ``skip_ratio``, ``guidance`` (the
    paper's 15), mask ``dilate`` (5 px), seed.  ``threads``: the torch
    threads the whole run computes with (:func:`fixed_threads`), whatever
    ``OMP_NUM_THREADS`` says: float sums split over another number of threads
    round differently, which moves a small network's training and so the
    figures.  ``keep_mode`` and ``keep_scope``: how the manifestation shift's
    RadEdit column keeps the drain (default: the CLI's, pixel keep and keep
    scope ``mask``, as every other edit of the run keeps its devices; the
    paper's latent keep with ``keep_mode="latent"``).
    """

    mode: str
    cases: dict[str, int]
    epochs: dict[str, int]
    removals: int
    consolidations: int
    additions: int
    size: int = 128
    steps: int = 50
    skip_ratio: float = 0.3
    guidance: float = 15.0
    dilate: int = 5
    border_px: int = 6
    removal_prompt: str = NO_PNEUMOTHORAX
    seed: int = 0
    resamples: int = 2000
    diffedit: bool = True
    threads: int = 1
    keep_mode: str = "pixel"
    keep_scope: str = DEFAULT_KEEP_SCOPE

    def __post_init__(self) -> None:
        # The edit settings are checked by the one settings layer when the config is made, not at the first edit.
        self.edit_settings(self.removal_prompt, self.keep_mode, self.keep_scope)

    @classmethod
    def full(cls, **changes: Any) -> "ReplicationConfig":
        return replace(
            cls(
                mode="full",
                cases={"judge": 1200, "weak": 1000, "strong": 1000, "healthy": 500, "test": 400, "healthy_test": 0},
                epochs={"judge": 25, "weak": 15, "strong": 20, "segmenter": 12},
                removals=40,
                consolidations=24,
                additions=16,
            ),
            **changes,
        )

    @classmethod
    def quick(cls, **changes: Any) -> "ReplicationConfig":
        return replace(
            cls(
                mode="quick",
                cases={"judge": 240, "weak": 200, "strong": 200, "healthy": 100, "test": 100, "healthy_test": 0},
                epochs={"judge": 20, "weak": 16, "strong": 16, "segmenter": 20},
                removals=6,
                consolidations=4,
                additions=2,
                steps=20,
                resamples=500,
            ),
            **changes,
        )

    def scaled(self, factor: float) -> "ReplicationConfig":
        """The same run on ``factor`` times the cases (each split, and the edited cases, at least 1).

        A smaller run of the same code: every step runs, on fewer cases (the tests' check that the
        figures do not depend on the thread count).
        """
        if not 0 < factor <= 1:
            raise ConfigError(f"scale: expected a factor in (0, 1], got {factor!r}")
        size = lambda n: max(1, round(n * factor)) if n else 0  # noqa: E731
        return replace(self, cases={k: size(v) for k, v in self.cases.items()}, removals=size(self.removals),
                       consolidations=size(self.consolidations), additions=size(self.additions))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def edit_settings(self, prompt: str, keep_mode: str = "pixel", keep_scope: str = DEFAULT_KEEP_SCOPE) -> EditSettings:
        return EditSettings(prompts=[prompt], weights=[self.guidance], steps=self.steps, skip_ratio=self.skip_ratio,
                            seed=self.seed, dilate=self.dilate, keep_mode=keep_mode, keep_scope=keep_scope)  # fmt: skip


@dataclass
class Timer:
    """Seconds per named stage, for the record."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, started: float) -> None:
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 1)


def _log(progress: Callable[[str], None] | None, text: str) -> None:
    if progress is not None:
        progress(text)


# -- helpers -------------------------------------------------------------------------------------
def erode(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` (bool) eroded by ``px`` pixels with a disc (:func:`radedit_core.imaging.masks.erode`)."""
    return masks.erode(mask, px)


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` (bool) dilated by ``px`` pixels with a disc, as edits dilate their masks (``--dilate``)."""
    return masks.dilate(np.asarray(mask, dtype=bool).astype(np.float32), px) > 0


def bounding_box(mask: np.ndarray, margin: int = 0) -> np.ndarray:
    """The mask's bounding box (grown by ``margin`` px) as a bool mask; empty for an empty mask."""
    out = np.zeros(mask.shape, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size:
        r0, r1 = max(rows[0] - margin, 0), min(rows[-1] + margin + 1, mask.shape[0])
        c0, c1 = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, mask.shape[1])
        out[r0:r1, c0:c1] = True
    return out


def border_band(lungs: np.ndarray, px: int) -> np.ndarray:
    """The lung borders: pixels within ``px`` of the lung outline, on both sides."""
    return dilate(lungs, px) & ~erode(lungs, px)


def stored(case: Case) -> np.ndarray:
    return case_image(case).array


def bootstrap_accuracy(correct: np.ndarray, sources: np.ndarray, resamples: int, seed: int) -> dict[str, Any]:
    """Accuracy with a 95% CI over source images (MONAI confusion counts through the stress module)."""
    correct = np.asarray(correct, dtype=np.float64)
    boot = SourceBootstrap(sources=[str(s) for s in sources], n_resamples=resamples, seed=seed)
    labels = np.ones(len(correct))
    table = ClassificationTable(labels=labels, probabilities=correct, decisions=correct)
    entry, _ = classification_group(table, np.ones(len(correct), bool), boot)
    acc = entry["metrics"]["accuracy"]
    return {"value": acc["value"], "ci": acc["ci"], "n": entry["n"]}


def bootstrap_mean(values: np.ndarray, sources: np.ndarray, resamples: int, seed: int) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    boot = SourceBootstrap(sources=[str(s) for s in sources], n_resamples=resamples, seed=seed)
    value, resampled = weighted_mean(values, np.ones(len(values), bool), boot)
    return {"value": value, "ci": boot.interval(resampled), "n": int(np.isfinite(values).sum())}


def classifier_accuracy(
    probabilities: np.ndarray, labels: np.ndarray, sources: np.ndarray, resamples: int, seed: int
) -> dict[str, Any]:
    """Accuracy (threshold 0.5) with its bootstrap CI, plus sensitivity/specificity where defined."""
    decisions = (np.asarray(probabilities) >= 0.5).astype(np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    boot = SourceBootstrap(sources=[str(s) for s in sources], n_resamples=resamples, seed=seed)
    table = ClassificationTable(labels=labels, probabilities=np.asarray(probabilities, np.float64), decisions=decisions)
    entry, _ = classification_group(table, np.ones(len(labels), bool), boot)
    out = {"n": entry["n"], "n_positive": entry["n_positive"], "n_negative": entry["n_negative"]}
    for name, est in entry["metrics"].items():
        out[name] = est
    return out


# -- the run -------------------------------------------------------------------------------------
PREDICTOR_CLASSES = ("pneumothorax", "consolidation")


@dataclass
class Networks:
    judge: TrainedNetwork
    weak: TrainedNetwork  # PREDICTOR_CLASSES on the biased world
    strong: TrainedNetwork  # PREDICTOR_CLASSES on the balanced world
    weak_segmenter: TrainedNetwork
    strong_segmenter: TrainedNetwork

    def records(self) -> dict[str, Any]:
        return {k: v.record() for k, v in vars(self).items()}


class Replication:
    """One run: the config, the editor, the cache folder; :meth:`run` returns the results mapping."""

    def __init__(self, config: ReplicationConfig, editor, cache: Path, workers: int = 1,
                 progress: Callable[[str], None] | None = None, bars: bool = False):  # fmt: skip
        self.config = config
        self.editor = editor
        self.cache = Path(cache)
        self.workers = workers
        self.progress = progress
        self.bars = bars
        self.timer = Timer()

    # 1. splits
    def render(self) -> dict[str, Any]:
        c = self.config
        sizes = {k: v for k, v in c.cases.items() if v}
        check_disjoint({**sizes, "healthy_test": c.additions})
        sets = {}
        for name, n in sizes.items():
            started = time.perf_counter()
            _log(self.progress, f"rendering split {name!r}: {n} cases")
            sets[name] = render_set(SPLITS[name], n, c.size, self.workers, self.cache, self.bars)
            self.timer.add(f"render {name}", started)
        return sets

    # 2. networks
    def train(self, sets: dict[str, Any]) -> Networks:
        c = self.config
        e = c.epochs

        def one(name: str, recipe: Recipe, split: str) -> TrainedNetwork:
            _log(self.progress, f"training {name} on split {split!r} ({len(sets[split])} cases)")
            started = time.perf_counter()
            net = fit(name, recipe, sets[split], self.cache, self.bars)
            self.timer.add(f"train {name}", started)
            return net

        classifier = lambda classes, epochs, seed: Recipe("classifier", classes, epochs, seed=seed)  # noqa: E731
        segmenter = Recipe("segmenter", ("lungs",), e["segmenter"], seed=c.seed + 7)
        return Networks(
            judge=one("judge", classifier(JUDGE_CLASSES, e["judge"], c.seed + 1), "judge"),
            weak=one("weak_predictor", classifier(PREDICTOR_CLASSES, e["weak"], c.seed + 2), "weak"),
            strong=one("strong_predictor", classifier(PREDICTOR_CLASSES, e["strong"], c.seed + 3), "strong"),
            weak_segmenter=one("weak_segmenter", segmenter, "healthy"),
            strong_segmenter=one("strong_segmenter", replace(segmenter, seed=c.seed + 8), "strong"),
        )

    def edit(self, image, edit_mask, keep_mask, prompt: str, keep_mode: str = "pixel", keep_scope: str = DEFAULT_KEEP_SCOPE):
        settings = self.config.edit_settings(prompt, keep_mode, keep_scope)
        return self.editor.edit(image, edit_mask, keep_mask, settings).image

    def tensors(self, images) -> np.ndarray:
        return np.stack([contract_tensor(im, self.config.size) for im in images])

    def lung_dice(self, net: TrainedNetwork, images, lungs: list[np.ndarray]) -> np.ndarray:
        """Dice (MONAI) of the segmenter's lungs on each image against the given (original) masks."""
        probs = predict_probabilities(net, self.tensors(images))
        out = []
        for p, im, truth in zip(probs, images, lungs):
            pred = net.predictor.to_source_grid(p, im)[0].astype(bool)
            out.append(segmentation_scores(pred, truth)["dice"])
        return np.asarray(out)

    # 3.-6. the experiments
    def run(self) -> dict[str, Any]:
        c = self.config
        started = time.perf_counter()
        sets = self.render()
        nets = self.train(sets)
        results: dict[str, Any] = {
            "config": c.to_dict(),
            "splits": describe({k: v for k, v in c.cases.items() if v} | {"healthy_test": c.additions}),
            "split_statistics": {k: s.summary() for k, s in sets.items()},
            "networks": nets.records(),
        }
        results["networks_on_real_test"] = self.real_test_figures(sets["test"], nets)
        manifestation = self.manifestation_shift(sets["test"], nets)
        results["manifestation"] = manifestation
        results["acquisition"] = self.acquisition_shift(sets["test"], nets)
        results["population"] = self.population_shift(nets)
        self.timer.add("total", started)
        results["timings_s"] = self.timer.seconds
        return results

    def real_test_figures(self, test, nets: Networks) -> dict[str, Any]:
        """Each classifier's accuracy on the real biased test set (the judge per label)."""
        c = self.config
        sources = test.seeds
        out: dict[str, Any] = {}
        judge = predict_probabilities(nets.judge, test.images)
        for k, label in enumerate(JUDGE_CLASSES):
            out[f"judge:{label}"] = classifier_accuracy(judge[:, k], test.labels[label], sources, c.resamples, c.seed)
        for name, net in (("weak", nets.weak), ("strong", nets.strong)):
            p = predict_probabilities(net, test.images)
            for k, label in enumerate(PREDICTOR_CLASSES):
                out[f"{name}:{label}"] = classifier_accuracy(p[:, k], test.labels[label], sources, c.resamples, c.seed)
        return out

    def _test_cases(self, test, want: Callable[[int], bool], n: int) -> list[Case]:
        config = SPLITS["test"].config()
        picked = [int(s) for i, s in enumerate(test.seeds) if want(i)][:n]
        return [sample_case(config, s) for s in picked]

    def manifestation_shift(self, test, nets: Networks) -> dict[str, Any]:
        c = self.config
        cases = self._test_cases(test, lambda i: test.labels["pneumothorax"][i] == 1 and test.labels["drain"][i] == 1,
                                 c.removals)  # fmt: skip
        methods = {
            "radedit": lambda im, ca: self.edit(im, ca.masks["pneumothorax"], ca.masks["drain"], c.removal_prompt,
                                                c.keep_mode, c.keep_scope),
            "global": lambda im, ca: self.edit(im, None, None, c.removal_prompt),
            "edit_mask_only": lambda im, ca: self.edit(im, ca.masks["pneumothorax"], None, c.removal_prompt),
        }
        sources = np.asarray([ca.seed for ca in cases])
        images = [case_image(ca) for ca in cases]
        lungs = [ca.lungs for ca in cases]
        counterfactuals = [stored(render_case(ca.parameters, exclude=["pneumothorax"])) for ca in cases]
        ptx_masks = [ca.masks["pneumothorax"] for ca in cases]
        out: dict[str, Any] = {"cases": len(cases), "prompt": c.removal_prompt, "methods": {},
                               "darkness_region": "pneumothorax less the drain"}  # fmt: skip

        # The darkness is measured where an edit may change the image: the drain's own pixels, which the
        # keep mask must keep bit for bit, are left out (as in the ring figure, keep_ring.measure).
        finding = [m & ~ca.masks["drain"] for m, ca in zip(ptx_masks, cases, strict=True)]
        gaps = [(s.array.astype(np.float64) - cf)[m].mean() for s, cf, m in zip(images, counterfactuals, finding)]

        def measure(edited) -> dict[str, np.ndarray]:
            judge = predict_probabilities(nets.judge, self.tensors(edited))
            diff = [e.array.astype(np.float64) - cf for e, cf in zip(edited, counterfactuals)]
            err = [np.abs(d)[m].mean() / TOP for d, m in zip(diff, ptx_masks)]
            # The pneumothorax is air where lung should be: darker on average than the true
            # counterfactual. The share of that mean difference an edit removes is 0 for the
            # source, 1 when the region's mean matches the counterfactual's (the markings
            # themselves cannot match: the model does not know where the vessels ran).
            closed = [1.0 - abs(d[m].mean()) / abs(g) for d, m, g in zip(diff, finding, gaps)]
            return {
                "p_pneumothorax": judge[:, 0],
                "p_drain": judge[:, 1],
                "lung_dice": self.lung_dice(nets.strong_segmenter, edited, lungs),
                "counterfactual_mae": np.asarray(err),
                "counterfactual_gap_closed": np.asarray(closed),
                "weak": predict_probabilities(nets.weak, self.tensors(edited))[:, 0],
                "strong": predict_probabilities(nets.strong, self.tensors(edited))[:, 0],
            }

        real = measure(images)
        out["real"] = self._summaries(real, sources)
        # The perfect edit: the true counterfactual wherever an edit may change the image, the source
        # bit for bit where the keep mask keeps it: what a flawless edit with that keep mask measures.
        kept = {"keep_mask": [self.kept_pixels(im, ca.masks["pneumothorax"], ca.masks["drain"], c.keep_scope)
                              for im, ca in zip(images, cases, strict=True)],
                "drain_only": [ca.masks["drain"] for ca in cases],
                "nothing_kept": [np.zeros_like(ca.masks["drain"]) for ca in cases]}  # fmt: skip
        out["perfect_edit"] = {}
        for name, keep in kept.items():
            m = measure([replace(im, array=np.where(k, im.array, cf))
                         for im, cf, k in zip(images, counterfactuals, keep, strict=True)])  # fmt: skip
            out["perfect_edit"][name] = {**self._summaries(m, sources),
                                         "predictors": self._on_removals(m, sources)}  # fmt: skip
        edits: dict[str, list] = {}
        for name, method in methods.items():
            started = time.perf_counter()
            _log(self.progress, f"manifestation shift: {name} on {len(cases)} cases")
            edits[name] = [method(im, ca) for im, ca in zip(images, cases)]
            self.timer.add(f"edit {name}", started)
            m = measure(edits[name])
            out["methods"][name] = self._summaries(m, sources)
            if name == "radedit":
                radedit_measures = m
        out["predictors"] = self._weak_strong(test, radedit_measures, sources, "pneumothorax", nets)
        if c.diffedit:
            out["diffedit"] = self.diffedit_masks(cases, images, sources)
        return out

    def _on_removals(self, probabilities: dict[str, np.ndarray], sources: np.ndarray) -> dict[str, Any]:
        """Each predictor's accuracy on images whose finding was removed (label 0), from its probabilities."""
        c = self.config
        return {name: classifier_accuracy(probabilities[name], np.zeros(len(sources)), sources, c.resamples, c.seed)
                for name in ("weak", "strong")}  # fmt: skip

    def kept_pixels(self, image, edit: np.ndarray, keep: np.ndarray | None, keep_scope: str) -> np.ndarray:
        """Where an edit with these masks keeps the source: ``keep`` dilated (the config's ``dilate``)
        and scoped as :meth:`edit` does (bool, source grid; the pixel paste's region in pixel keep
        mode; nowhere without a keep mask)."""
        if keep is None:
            return np.zeros(image.shape, dtype=bool)
        return masks.make_masks(image, edit, keep, dilate_px=self.config.dilate, keep_scope=keep_scope).keep > 0

    def _summaries(self, m: dict[str, np.ndarray], sources: np.ndarray) -> dict[str, Any]:
        c = self.config
        removed = m["p_pneumothorax"] < 0.5
        kept = m["p_drain"] >= 0.5
        return {
            "pneumothorax_removed": bootstrap_accuracy(removed, sources, c.resamples, c.seed),
            "drain_present": bootstrap_accuracy(kept, sources, c.resamples, c.seed),
            "lung_dice": bootstrap_mean(m["lung_dice"], sources, c.resamples, c.seed),
            "counterfactual_mae": bootstrap_mean(m["counterfactual_mae"], sources, c.resamples, c.seed),
            "counterfactual_gap_closed": bootstrap_mean(m["counterfactual_gap_closed"], sources, c.resamples, c.seed),
            "removed_and_drain_present": bootstrap_accuracy(removed & kept, sources, c.resamples, c.seed),
        }

    def _weak_strong(self, test, edited: dict[str, np.ndarray], sources: np.ndarray, label: str,
                     nets: Networks) -> dict[str, Any]:  # fmt: skip
        """Accuracy of both predictors on the real test set and on the edits (label 0); "accepted": the
        edits the judge calls a success (finding removed, drain present), the paper's quality filter's role."""
        c = self.config
        out: dict[str, Any] = {}
        accepted = (edited["p_pneumothorax"] < 0.5) & (edited["p_drain"] >= 0.5)
        k = PREDICTOR_CLASSES.index(label)
        synthetic = self._on_removals(edited, sources)
        for name, net in (("weak", nets.weak), ("strong", nets.strong)):
            real_p = predict_probabilities(net, test.images)[:, k]
            syn_p = edited[name]
            zeros = np.zeros(len(syn_p))
            out[name] = {
                "real": classifier_accuracy(real_p, test.labels[label], test.seeds, c.resamples, c.seed),
                "synthetic": synthetic[name],
                "synthetic_accepted": (classifier_accuracy(syn_p[accepted], zeros[accepted], sources[accepted],
                                                           c.resamples, c.seed) if accepted.any() else None),  # fmt: skip
            }
        out["accepted_edits"] = int(accepted.sum())
        return out

    def diffedit_masks(self, cases: list[Case], images, sources: np.ndarray) -> dict[str, Any]:
        from ..pipelines.diffedit_mask import diffedit_mask, latent_mask_to_source  # noqa: PLC0415

        c = self.config
        started = time.perf_counter()
        _log(self.progress, f"DiffEdit masks on {len(cases)} cases")
        pipe = self.editor.pipe
        dice, drain_inside, area = [], [], []
        for ca, im in zip(cases, images):
            tf = ModelSpaceTransform.fit(im, pipe.model_resolution)
            result = diffedit_mask(pipe, tf.image_to_model(im.array), ca.report, c.removal_prompt, generator=c.seed)
            mask = latent_mask_to_source(result.mask, tf)
            dice.append(segmentation_scores(mask, ca.masks["pneumothorax"])["dice"])
            drain = ca.masks["drain"]
            drain_inside.append(float(mask[drain].mean()) if drain.any() else float("nan"))
            area.append(float(mask.mean()))
        self.timer.add("diffedit masks", started)
        return {
            "dice": bootstrap_mean(np.asarray(dice), sources, c.resamples, c.seed),
            "drain_fraction_inside": bootstrap_mean(np.asarray(drain_inside), sources, c.resamples, c.seed),
            "mask_area_fraction": bootstrap_mean(np.asarray(area), sources, c.resamples, c.seed),
            "settings": {"num_maps_per_mask": 10, "mask_encode_strength": 0.5, "mask_thresholding_ratio": 3.0,
                         "num_inference_steps": 50, "guidance_scale": 7.5,
                         "source_prompt": "the case's report", "target_prompt": c.removal_prompt},  # fmt: skip
        }

    def acquisition_shift(self, test, nets: Networks) -> dict[str, Any]:
        c = self.config
        cases = self._test_cases(test, lambda i: test.labels["consolidation"][i] == 1 and test.sites[i] == "B",
                                 c.consolidations)  # fmt: skip
        sources = np.asarray([ca.seed for ca in cases])
        images = [case_image(ca) for ca in cases]
        started = time.perf_counter()
        _log(self.progress, f"acquisition shift: removing consolidation in {len(cases)} site-B cases")
        regions = []  # (edit, keep) of each case: its consolidation's box, its devices and markers
        for ca in cases:
            keep = ca.mask("drain", "pacemaker", "ecg", "marker")
            regions.append((bounding_box(ca.masks["consolidation"], margin=8), keep if keep.any() else None))
        edited = [self.edit(im, box, keep, NORMAL) for im, (box, keep) in zip(images, regions, strict=True)]
        self.timer.add("edit consolidation removal", started)
        # The perfect edit: the same patient drawn without the consolidation, the source where the
        # edits' keep mask keeps it.
        perfect = [replace(im, array=np.where(self.kept_pixels(im, box, keep, DEFAULT_KEEP_SCOPE), im.array,
                                              stored(render_case(ca.parameters, exclude=["consolidation"]))))
                   for ca, im, (box, keep) in zip(cases, images, regions, strict=True)]  # fmt: skip
        edited_x, perfect_x = self.tensors(edited), self.tensors(perfect)
        perfect_p = {name: predict_probabilities(net, perfect_x)[:, 1]
                     for name, net in (("weak", nets.weak), ("strong", nets.strong))}  # fmt: skip
        perfect_judge = predict_probabilities(nets.judge, perfect_x)[:, 2]
        judge = predict_probabilities(nets.judge, edited_x)[:, 2]
        real_judge = predict_probabilities(nets.judge, self.tensors(images))[:, 2]
        measures = {name: predict_probabilities(net, edited_x)[:, 1]
                    for name, net in (("weak", nets.weak), ("strong", nets.strong))}  # fmt: skip
        removed = judge < 0.5
        out = {
            "cases": len(cases),
            "prompt": NORMAL,
            "consolidation_removed": bootstrap_accuracy(removed, sources, c.resamples, c.seed),
            "judge_on_sources": bootstrap_accuracy(real_judge >= 0.5, sources, c.resamples, c.seed),
            "predictors": {},
            "perfect_edit": {"consolidation_removed": bootstrap_accuracy(perfect_judge < 0.5, sources, c.resamples,
                                                                         c.seed),
                             "predictors": self._on_removals(perfect_p, sources)},
        }  # fmt: skip
        synthetic = self._on_removals(measures, sources)
        for name, net in (("weak", nets.weak), ("strong", nets.strong)):
            real_p = predict_probabilities(net, test.images)[:, 1]
            zeros = np.zeros(len(cases))
            out["predictors"][name] = {
                "real": classifier_accuracy(real_p, test.labels["consolidation"], test.seeds, c.resamples, c.seed),
                "synthetic": synthetic[name],
                "synthetic_accepted": (classifier_accuracy(measures[name][removed], zeros[removed], sources[removed],
                                                           c.resamples, c.seed) if removed.any() else None),  # fmt: skip
            }
        out["accepted_edits"] = int(removed.sum())
        return out

    def population_shift(self, nets: Networks) -> dict[str, Any]:
        c = self.config
        split = SPLITS["healthy_test"]
        seeds = split.case_seeds(c.additions)
        healthy = split.config()
        with_pacemaker = world_config("healthy", pacemaker=1.0, pacemaker_left=1.0)
        with_consolidation = world_config(
            "healthy", prevalence={"consolidation": 1.0}, site_only={}, severity={"consolidation": {"upper": 1.0}}
        )
        cases = [sample_case(healthy, s) for s in seeds]
        images = [case_image(ca) for ca in cases]
        lungs = [ca.lungs for ca in cases]
        sources = np.asarray(seeds)
        recipes: dict[str, list] = {"edema": [], "pacemaker": [], "consolidation": []}
        started = time.perf_counter()
        _log(self.progress, f"population shift: adding edema, pacemaker, consolidation to {len(cases)} healthy cases")
        for s, ca, im in zip(seeds, cases, images):
            band = border_band(ca.lungs, c.border_px)
            inside = erode(ca.lungs, c.border_px)
            # The band is a region to keep whole, not a device: keep scope "mask".
            recipes["edema"].append(self.edit(im, inside, band, PAPER_PROMPTS["edema"], keep_scope="mask"))
            # The same patient drawn with the device or finding shows where it would go.
            pm = sample_case(with_pacemaker, s).masks["pacemaker"]
            recipes["pacemaker"].append(self.edit(im, bounding_box(pm, margin=8) & ~band, band, PAPER_PROMPTS["pacemaker"],
                                                  keep_scope="mask"))  # fmt: skip
            cons_case = sample_case(with_consolidation, s)
            side = cons_case.parameters.findings.consolidation.side
            region = bounding_box(cons_case.masks["consolidation"], margin=8) & inside
            recipes["consolidation"].append(self.edit(im, region, band, PAPER_PROMPTS[f"consolidation-{side}"],
                                                      keep_scope="mask"))  # fmt: skip
        self.timer.add("edit additions", started)
        out: dict[str, Any] = {"cases": len(cases), "border_px": c.border_px, "segmenters": {}, "added": {}}
        drops: dict[str, dict[str, np.ndarray]] = {}
        for name, net in (("weak", nets.weak_segmenter), ("strong", nets.strong_segmenter)):
            real = self.lung_dice(net, images, lungs)
            rows = {"real": bootstrap_mean(real, sources, c.resamples, c.seed)}
            drops[name] = {}
            for recipe, edited in recipes.items():
                dice = self.lung_dice(net, edited, lungs)
                rows[recipe] = bootstrap_mean(dice, sources, c.resamples, c.seed)
                drops[name][recipe] = real - dice
            out["segmenters"][name] = rows
        # Paired over the source images: each segmenter's Dice drop on an addition, and how much
        # more the weak one drops than the strong one (the paper's Table 3 point).
        out["dice_drop"] = {name: {r: bootstrap_mean(d, sources, c.resamples, c.seed) for r, d in per.items()}
                            for name, per in drops.items()}  # fmt: skip
        out["weak_minus_strong_drop"] = {
            r: bootstrap_mean(drops["weak"][r] - drops["strong"][r], sources, c.resamples, c.seed) for r in recipes
        }
        # What the judge reads in each addition: the finding asked for ("added"), and each other
        # label it calls present ("read_as"), which says why an addition is not detected (an
        # edema painted as focal opacities reads as consolidation).
        out["read_as"] = {}
        for recipe, edited in recipes.items():
            p = predict_probabilities(nets.judge, self.tensors(edited))
            asked = p[:, JUDGE_CLASSES.index(recipe)] >= 0.5
            out["added"][recipe] = bootstrap_accuracy(asked, sources, c.resamples, c.seed)
            out["read_as"][recipe] = {label: bootstrap_accuracy(p[:, k] >= 0.5, sources, c.resamples, c.seed)
                                      for k, label in enumerate(JUDGE_CLASSES) if label != recipe}  # fmt: skip
        return out


@contextlib.contextmanager
def fixed_threads(threads: int):
    """Torch computes with ``threads`` threads and deterministic algorithms inside; both restored after.

    The figures then depend on the config alone: the same with ``OMP_NUM_THREADS=1`` and ``=2``.
    """
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())  # fmt: skip
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1], warn_only=before[2])


def run_replication(
    config: ReplicationConfig,
    model: str = "tiny",
    cache: str | Path | None = None,
    workers: int = 1,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
    bars: bool = False,
) -> dict[str, Any]:
    """Load the model, run every step (see the module docstring) and return the results mapping.

    Everything runs with ``config.threads`` torch threads and deterministic
    algorithms (:func:`fixed_threads`), so the figures do not depend on the
    thread count of the calling process.
    """
    import tempfile  # noqa: PLC0415

    from ..workflow import RadEditor  # noqa: PLC0415

    started = time.perf_counter()
    with fixed_threads(config.threads):
        editor = RadEditor.load(model, device=device, dtype="float32")
        editor.set_progress(False)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(cache) if cache is not None else Path(tmp)
            run = Replication(config, editor, folder, workers, progress, bars)
            run.timer.add("load model", started)
            results = run.run()
        results["threads"] = torch.get_num_threads()
    results["model"] = editor.components.provenance()
    results["goals"] = goals(results)
    return results


__all__ = ["JUDGE_CLASSES", "PREDICTOR_CLASSES", "Replication", "ReplicationConfig", "fixed_threads", "run_replication"]
