"""The phantom chest world: procedural chest radiographs where the paper's claims can be measured.

The published RadEdit weights cannot be used everywhere, and a demo model
trained on a fixed drawing only shows the mechanics.  This world has what the
paper's three experiments need, learnable by a small latent diffusion model
(512 x 512 images, clear and not too fine visual signals):

* **manifestation shift** (Sec. 5.3): pneumothorax with a visible pleural line
  and no lung markings beyond it, and the chest drain that treats it, drawn
  on top (their masks overlap, so the edit mask and keep mask can separate
  them);
* **acquisition shift** (Sec. 5.2): two sites with different visible cues
  (laterality marker style and position, field of view, contrast curve,
  noise), and a finding present at only one of them;
* **population shift** (Sec. 5.4): lung masks that do not change with the
  findings, for segmentation stress tests (edema, pacemaker, consolidation).

Modules: :mod:`.geometry` (patient plane, shapes), :mod:`.rendering`
(layers), :mod:`.anatomy`, :mod:`.findings`, :mod:`.devices`,
:mod:`.acquisition` (sites, marker, image formation), :mod:`.reports`
(impressions), :mod:`.world` (config, sampling, rendering),
:mod:`.dataset` (writing PNG or DICOM data sets with MONAI datalists),
:mod:`.dicom` (CR instances and SEGs of cases).

The default world (:class:`WorldConfig()`)
-------------------------------------------
* 512 x 512 images; sites A and B with probability 0.5 each.
* Site A: 380 mm field of view (0.74 mm pixels), patient centred, soft contrast
  (gain 1.9), low noise, an "R" lead marker in a thin frame at the top left,
  stored MONOCHROME2.  Site B: 440 mm field of view (0.86 mm pixels, the
  patient smaller and lower in the image), harder and darker contrast (gain
  2.5), more and coarser noise, a larger "L" marker on a plastic plate at the
  upper right, stored MONOCHROME1.
* Findings, independent of each other: pneumothorax 0.25, pleural effusion
  0.15, pulmonary edema 0.15, consolidation 0.4 **at site B only** (0 at A).
* Devices: P(drain | pneumothorax) = 0.9, P(drain | no pneumothorax) = 0.02
  (on the pneumothorax's side, tip at the apex); pacemaker 0.15 (generator on
  the left 90 %); ECG electrodes 0.3.
* Sizes: pneumothorax and effusion small/moderate/large, edema
  mild/moderate/severe, consolidation in an upper (0.6) or lower lobe.

Every case has one boolean mask per structure (:data:`STRUCTURES`: ``body``,
``right_lung``, ``left_lung``, ``heart``, ``mediastinum``, ``spine``,
``ribs``, ``clavicles``, the four findings, ``drain``, ``pacemaker``,
``ecg``, ``marker``; ``lungs`` is the union of the lungs), which is exactly
where that structure changes the image (see :mod:`.rendering`).

Use::

    from radedit_core.phantom_world import WorldConfig, sample_case, write_dataset
    case = sample_case(WorldConfig(), seed=3)
    case.image, case.masks["pneumothorax"], case.labels, case.report
    write_dataset("phantom", n=1000, config=WorldConfig.from_yaml("world.yaml"), seed=0, format="png")
"""

from __future__ import annotations

from .acquisition import MarkerStyle, SiteConfig, default_sites
from .dataset import DatasetSummary, write_dataset
from .world import (
    GROUPS,
    STRUCTURES,
    Case,
    CaseParameters,
    Storage,
    WorldConfig,
    case_seed,
    quantise,
    render_case,
    sample_case,
    sample_parameters,
)

__all__ = [
    "GROUPS",
    "STRUCTURES",
    "Case",
    "CaseParameters",
    "DatasetSummary",
    "MarkerStyle",
    "SiteConfig",
    "Storage",
    "WorldConfig",
    "case_seed",
    "default_sites",
    "quantise",
    "render_case",
    "sample_case",
    "sample_parameters",
    "write_dataset",
]
