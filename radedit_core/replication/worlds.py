"""The worlds and disjoint splits of the phantom replication.

Every set of cases is ``n`` cases of one :class:`~radedit_core.phantom_world.WorldConfig`
drawn with one *data set seed*: case ``i`` is
``sample_case(world, case_seed(seed, i))``.  Different data set seeds give
different patients (53-bit case seeds; :func:`check_disjoint` verifies that no
case seed repeats across the splits a run uses), so every network is trained
and tested on its own patients:

=================  =========  ======  ===============================================================
split              world      seed    used for
=================  =========  ======  ===============================================================
``judge``          balanced   201     the judges: pneumothorax / drain / consolidation classifier
``weak``           biased     301     the weak predictors (pneumothorax, consolidation)
``strong``         balanced   401     the strong predictors and the strong lung segmenter
``healthy``        healthy    501     the weak lung segmenter
``test``           biased     901     the real (biased) test set and the sources of the removals
``healthy_test``   healthy    902     the sources of the additions (population shift)
=================  =========  ======  ===============================================================

The generative model (the demo model) was trained on data set seed 101 of
its own world (``scripts/train_demo_model.py``).

Worlds (changes to the default world, :class:`WorldConfig()`):

* **biased** = the default world with stronger confounders (world
  settings, never the edit): P(drain | pneumothorax) = 0.9 and P(drain | no
  pneumothorax) = :data:`DRAIN_WITHOUT_PNEUMOTHORAX` = 0 (the
  manifestation-shift confounder; the paper's CANDID-PTX has "very few
  images [with] a chest drain and no pneumothorax", and the default world's
  0.02 taught a weak predictor that a drain alone is no pneumothorax, so that
  it read the finding as much as the drain), consolidation only at site B and
  there in :data:`SITE_B_CONSOLIDATION` = 0.9 of cases (the default world's
  0.4 left the site a weaker predictor of consolidation than the finding
  itself, so that a weak predictor had no reason to take the shortcut).
* **balanced**: the same patients and findings with the confounders broken:
  a drain in half of all cases whatever the pneumothorax, pneumothorax in
  half, consolidation at both sites (0.35), pacemakers in 0.3 and edema in 0.3
  (abnormal lungs for the strong segmenter).
* **healthy**: no finding and no pacemaker (ECG electrodes as usual): what
  the weak lung segmenter sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..phantom_world import WorldConfig, case_seed

#: P(consolidation | site B) in the biased world (0 at site A).
SITE_B_CONSOLIDATION = 0.9
#: P(drain | no pneumothorax) in the biased world (P(drain | pneumothorax) stays the default 0.9).
DRAIN_WITHOUT_PNEUMOTHORAX = 0.0
BIASED: dict[str, Any] = {
    "prevalence": {"consolidation": SITE_B_CONSOLIDATION},
    "drain_given_no_pneumothorax": DRAIN_WITHOUT_PNEUMOTHORAX,
}
BALANCED: dict[str, Any] = {
    "prevalence": {"pneumothorax": 0.5, "edema": 0.3, "consolidation": 0.35},
    "site_only": {},
    "drain_given_pneumothorax": 0.5,
    "drain_given_no_pneumothorax": 0.5,
    "pacemaker": 0.3,
}
HEALTHY: dict[str, Any] = {
    "prevalence": {"pneumothorax": 0.0, "effusion": 0.0, "edema": 0.0, "consolidation": 0.0},
    "drain_given_pneumothorax": 0.0,
    "drain_given_no_pneumothorax": 0.0,
    "pacemaker": 0.0,
}
WORLDS = {"biased": BIASED, "balanced": BALANCED, "healthy": HEALTHY}


@dataclass(frozen=True)
class Split:
    """``n`` cases of ``world`` drawn with data set seed ``seed``."""

    name: str
    world: str
    seed: int

    def config(self) -> WorldConfig:
        return world_config(self.world)

    def case_seeds(self, n: int) -> list[int]:
        return [case_seed(self.seed, i) for i in range(n)]


SPLITS = {
    "judge": Split("judge", "balanced", 201),
    "weak": Split("weak", "biased", 301),
    "strong": Split("strong", "balanced", 401),
    "healthy": Split("healthy", "healthy", 501),
    "test": Split("test", "biased", 901),
    "healthy_test": Split("healthy_test", "healthy", 902),
}
#: The data set seed of the generative model's training world (scripts/train_demo_model.py).
GENERATIVE_MODEL_SEED = 101


def world_config(name: str, **changes: Any) -> WorldConfig:
    """The named world (see the module docstring), with ``changes`` merged in (WorldConfig.from_dict keys)."""
    base = {k: (dict(v) if isinstance(v, dict) else v) for k, v in WORLDS[name].items()}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return WorldConfig.from_dict(base, source=f"world {name!r}")


def check_disjoint(sizes: dict[str, int], generative_images: int = 2000) -> None:
    """Raise if any case seed occurs in two of the splits (with their sizes) or in the generative model's data."""
    seen: dict[int, str] = {s: "generative model" for s in (case_seed(GENERATIVE_MODEL_SEED, i) for i in range(generative_images))}
    for name, n in sizes.items():
        for s in SPLITS[name].case_seeds(n):
            other = seen.setdefault(s, name)
            if other != name:
                raise AssertionError(f"case seed {s} is in split {name!r} and in {other!r}")


def describe(sizes: dict[str, int]) -> list[dict[str, Any]]:
    """One record per split: its world, data set seed and size (for the JSON output)."""
    return [{"split": k, "world": SPLITS[k].world, "seed": SPLITS[k].seed, "cases": int(n)} for k, n in sizes.items()]


