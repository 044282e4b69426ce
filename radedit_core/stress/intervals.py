"""Confidence intervals for proportions of clustered images, right at 0 % and 100 %.

Edits of one source image are not independent, and a stress-test group is
often small and at a boundary (a shortcut model is 0/6 right on the edits).
A percentile bootstrap of 0/6 can only give [0, 0]; the intervals here never
collapse there:

* a proportion (accuracy, sensitivity, specificity, flip rate): the Wilson
  score interval (Wilson 1927) at the *effective* sample size n / deff, where
  the design effect deff comes from the source-image clustering (Kish 1965:
  the ratio of the cluster-robust variance of the mean to the binomial one;
  at least 1).  Where the rows do not vary (p = 0 or 1) the clustering cannot
  be estimated and the worst case is taken: deff = the mean number of rows per
  source (every edit of a source a copy of the first);
* a difference of two proportions: Newcombe's hybrid score interval (Newcombe
  1998, method 10), the MOVER combination of the two Wilson intervals
  (Zou & Donner 2008), with the phi correlation of paired rows where the two
  proportions are measured on the same pairs (Newcombe 1998b);
* a difference of two such differences (the shortcut effect): MOVER again;
* edits against their own sources: the exact McNemar test (the binomial test
  of the discordant pairs, :func:`scipy.stats.binomtest`).

Values and bounds are fractions (0..1; differences -1..1, effects -2..2).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

WILSON = "Wilson score interval at the effective n (design effect of the source-image clustering)"
NEWCOMBE = "Newcombe hybrid score interval (MOVER of clustered Wilson intervals)"
NEWCOMBE_PAIRED = "Newcombe paired hybrid score interval (clustered Wilson intervals, phi correlation)"
MOVER = "MOVER difference of two Newcombe intervals"
BOOTSTRAP = "percentile bootstrap over source images"
#: Groups with fewer images than this are marked too small to interpret.
MIN_INTERPRETABLE = 10


def _z(confidence: float) -> float:
    from scipy.stats import norm  # noqa: PLC0415

    return float(norm.ppf(0.5 + confidence / 2))


def design_effect(values: np.ndarray, clusters: np.ndarray) -> float:
    """Kish's design effect of the mean of ``values`` (one per row) with rows grouped by ``clusters``.

    The cluster-robust (sandwich) variance of the mean over the i.i.d.
    variance, at least 1.  When the values do not vary the worst case, the mean
    cluster size, is returned.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n == 0:
        return 1.0
    _, index = np.unique(np.asarray(clusters).astype(str), return_inverse=True)
    c = int(index.max()) + 1
    mean_size = n / c
    residual = values - values.mean()
    if n < 2 or c < 2 or float((residual**2).sum()) <= 1e-15:
        return max(1.0, mean_size)
    # both with their small-sample factor, so that one row per source gives exactly 1
    iid = float((residual**2).sum()) / (n * (n - 1))
    per_cluster = np.bincount(index, weights=residual, minlength=c)
    robust = float((per_cluster**2).sum()) / n**2 * c / (c - 1)
    return max(1.0, robust / iid)


def wilson(p: float, n_effective: float, confidence: float) -> list[float]:
    """Wilson score interval of proportion ``p`` at (possibly fractional) sample size ``n_effective``.

    Equals :meth:`scipy.stats.binomtest(k, n).proportion_ci(method="wilson")` for whole n.
    """
    if n_effective <= 0:
        return [0.0, 1.0]
    z = _z(confidence)
    z2 = z * z
    centre = (p + z2 / (2 * n_effective)) / (1 + z2 / n_effective)
    half = z / (1 + z2 / n_effective) * math.sqrt(p * (1 - p) / n_effective + z2 / (4 * n_effective**2))
    return [max(0.0, centre - half), min(1.0, centre + half)]


def proportion(successes: np.ndarray, clusters: np.ndarray, confidence: float) -> dict[str, Any] | None:
    """``{"value", "ci", "method", "n", "n_effective", "design_effect"}`` of a 0/1 array (None when empty)."""
    x = np.asarray(successes, dtype=np.float64)
    if x.size == 0:
        return None
    deff = design_effect(x, clusters)
    n_eff = x.size / deff
    p = float(x.mean())
    return {"value": p, "ci": wilson(p, n_eff, confidence), "method": WILSON, "n": int(x.size),
            "n_effective": round(n_eff, 3), "design_effect": round(deff, 3)}  # fmt: skip


def mover(d: float, a: tuple[float, list[float]], b: tuple[float, list[float]], phi: float = 0.0,
          bounds: tuple[float, float] = (-1.0, 1.0)) -> list[float]:  # fmt: skip
    """MOVER interval of ``d = a - b`` from each estimate and its interval (``phi``: their correlation)."""
    (pa, (la, ua)), (pb, (lb, ub)) = a, b
    low = (pa - la) ** 2 - 2 * phi * (pa - la) * (ub - pb) + (ub - pb) ** 2
    high = (ua - pa) ** 2 - 2 * phi * (ua - pa) * (pb - lb) + (pb - lb) ** 2
    return [max(bounds[0], d - math.sqrt(max(low, 0.0))), min(bounds[1], d + math.sqrt(max(high, 0.0)))]


def difference(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """``a - b`` of two independent (or positively correlated: conservative) :func:`proportion` estimates."""
    if not a or not b or a.get("ci") is None or b.get("ci") is None:
        return None
    d = a["value"] - b["value"]
    return {"value": d, "ci": mover(d, (a["value"], a["ci"]), (b["value"], b["ci"])), "method": NEWCOMBE}


def paired_difference(a: np.ndarray, b: np.ndarray, clusters: np.ndarray, confidence: float) -> dict[str, Any] | None:
    """Mean of ``a - b`` over pairs (0/1 each: an edit right, its source right), Newcombe's paired interval.

    The design effect is that of the per-pair differences (of ``a`` where they
    do not vary), applied to both marginal Wilson intervals.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return None
    deff = design_effect(a - b, clusters) if np.ptp(a - b) > 0 else max(design_effect(a, clusters), design_effect(b, clusters))
    n_eff = a.size / deff
    pa, pb = float(a.mean()), float(b.mean())
    ia, ib = wilson(pa, n_eff, confidence), wilson(pb, n_eff, confidence)
    # phi of the 2 x 2 table of the pairs as Newcombe (1998b, method 10) corrects it: 0 where a
    # margin is empty; AD - BC less N/2 when it is above N/2, 0 from 0 to N/2, as is when negative.
    # Uncorrected, a table without discordant pairs has phi = 1 and an interval of zero width.
    both, only_a = float((a * b).sum()), float((a * (1 - b)).sum())
    only_b, neither = float(((1 - a) * b).sum()), float(((1 - a) * (1 - b)).sum())
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    cross = both * neither - only_a * only_b
    corrected = cross - a.size / 2 if cross > a.size / 2 else min(cross, 0.0)
    phi = 0.0 if margins == 0 else corrected / math.sqrt(margins)
    d = pa - pb
    return {"value": d, "ci": mover(d, (pa, ia), (pb, ib), phi), "method": NEWCOMBE_PAIRED, "pairs": int(a.size),
            "n_effective": round(n_eff, 3), "design_effect": round(deff, 3)}  # fmt: skip


def difference_of_differences(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """``a - b`` of two :func:`paired_difference` estimates (independent pairs), MOVER on [-2, 2]."""
    if not a or not b:
        return None
    d = a["value"] - b["value"]
    return {"value": d, "ci": mover(d, (a["value"], a["ci"]), (b["value"], b["ci"]), bounds=(-2.0, 2.0)), "method": MOVER}


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test of paired 0/1 outcomes: two-sided binomial test of the discordant pairs."""
    from scipy.stats import binomtest  # noqa: PLC0415

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_b, only_a = int((~a & b).sum()), int((a & ~b).sum())
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(binomtest(only_a, discordant, 0.5).pvalue)
    return {"p_value": p, "discordant": discordant, "only_first": only_a, "only_second": only_b,
            "method": "exact McNemar test (binomial test of the discordant pairs)"}  # fmt: skip


__all__ = [
    "BOOTSTRAP", "MIN_INTERPRETABLE", "MOVER", "NEWCOMBE", "NEWCOMBE_PAIRED", "WILSON", "design_effect", "difference",
    "difference_of_differences", "mcnemar_exact", "mover", "paired_difference", "proportion", "wilson",
]  # fmt: skip
