"""The replication's table beside the paper's figures, and its goals checked.

Paper figures (Pérez-García, Bond-Taylor et al., ECCV 2024): Table 1
(acquisition shift, COVID-19), Table 2 (manifestation shift, pneumothorax),
Table 3 (population shift, lung segmentation), and the DiffEdit mask Dice
(Sec. 5.3).  Accuracies and Dice in percent.
"""

from __future__ import annotations

from typing import Any

PAPER = {
    "manifestation": {"weak": {"real": 93.3, "synthetic": 17.9}, "strong": {"real": 93.7, "synthetic": 81.7}},
    "acquisition": {"weak": {"real": 99.1, "synthetic": 5.5}, "strong": {"real": 74.4, "synthetic": 76.0}},
    "population": {
        "weak": {"real": 97.4, "edema": 93.8, "pacemaker": 85.0, "consolidation": 85.9},
        "strong": {"real": 95.5, "edema": 93.9, "pacemaker": 87.3, "consolidation": 88.1},
    },
    "diffedit_dice": 18.4,
}


def _v(est: dict[str, Any] | None, key: str = "value") -> float | None:
    if not est:
        return None
    if key in est and isinstance(est[key], dict):
        est = est[key]
    return est.get("value") if isinstance(est, dict) else None


def pct(est: dict[str, Any] | None, scale: float = 100.0) -> str:
    """'93.3 [90.1, 96.0]' from {'value', 'ci'} (fractions -> percent)."""
    if not est or est.get("value") is None:
        return "n/a"
    text = f"{est['value'] * scale:.1f}"
    ci = est.get("ci")
    if ci:
        text += f" [{ci[0] * scale:.1f}, {ci[1] * scale:.1f}]"
    return text


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals of the phantom replication (the paper's claims, issue #19 §3) with the measured
    values (fractions) and whether each is reached.

    ``level``: ``must`` (manifestation shift, Table 2) or ``should`` (acquisition, Table 1;
    population, Table 3).  Drops are real minus synthetic accuracy; the population goals
    compare each segmenter's Dice drop on an addition, paired over the source images.
    ``perfect_edit``: for the removal goals (manifestation and acquisition), the same figure on
    the perfect edit (the true counterfactual, the source under the edit's keep mask): what a
    flawless edit keeping those pixels measures, the reference a goal's threshold is read
    against (an edit can score beyond it through its errors: a band of the finding left beside
    the drain props the drain up); None for the additions or without perfect edits.
    """
    man = results["manifestation"]["methods"]
    pred = results["manifestation"]["predictors"]
    acq = results["acquisition"]["predictors"]
    pop = results["population"]
    out = []

    perfect = _perfect(results, "manifestation")
    acq_perfect = _perfect(results, "acquisition")

    def goal(name: str, value: float | None, ok: bool | None, target: str, level: str = "must",
             perfect_edit: float | None = None) -> None:  # fmt: skip
        out.append({"goal": name, "target": target, "measured": value, "level": level,
                    "reached": bool(ok) if value is not None and ok is not None else None, "perfect_edit": perfect_edit})  # fmt: skip

    kept = _v(man["radedit"]["drain_present"])
    goal("RadEdit keeps the drain", kept, kept is not None and kept >= 0.95, ">= 95% of edits",
         perfect_edit=_v(perfect.get("drain_present")))  # fmt: skip
    lost = None if _v(man["global"]["drain_present"]) is None else 1.0 - _v(man["global"]["drain_present"])
    goal("the global edit loses the drain", lost, lost is not None and lost >= 0.5, ">= 50% of edits")
    removed = _v(man["radedit"]["pneumothorax_removed"])
    goal("RadEdit removes the pneumothorax", removed, removed is not None and removed >= 0.9, ">= 90% of edits",
         perfect_edit=_v(perfect.get("pneumothorax_removed")))  # fmt: skip
    dark = _v(man["radedit"]["counterfactual_gap_closed"])
    goal("RadEdit removes the finding's darkness", dark, dark is not None and dark >= 0.75, ">= 75% of its mean",
         perfect_edit=_v(perfect.get("counterfactual_gap_closed")))  # fmt: skip
    weak_drop = _drop(pred["weak"])
    goal("weak predictor drops on the synthetic set", weak_drop, weak_drop is not None and weak_drop >= 0.5,
         ">= 50 accuracy points", perfect_edit=_perfect_drop(pred["weak"], perfect, "weak"))  # fmt: skip
    strong_drop = _drop(pred["strong"])
    goal("strong predictor stays", strong_drop, strong_drop is not None and strong_drop <= 0.1, "drops <= 10 points",
         perfect_edit=_perfect_drop(pred["strong"], perfect, "strong"))  # fmt: skip
    weak_drop = _drop(acq["weak"])
    goal("acquisition: the weak predictor is exposed", weak_drop, weak_drop is not None and weak_drop >= 0.3,
         "drops >= 30 points", "should", _perfect_drop(acq["weak"], acq_perfect, "weak"))  # fmt: skip
    strong_drop = _drop(acq["strong"])
    goal("acquisition: the strong predictor stays", strong_drop, strong_drop is not None and strong_drop <= 0.1,
         "drops <= 10 points", "should", _perfect_drop(acq["strong"], acq_perfect, "strong"))  # fmt: skip
    for recipe, est in pop["added"].items():
        added = _v(est)
        goal(f"population: {recipe} added (judge)", added, added is not None and added >= 0.7, ">= 70% of edits",
             "should")  # fmt: skip
    for recipe, est in pop.get("weak_minus_strong_drop", {}).items():
        more, ci = _v(est), (est or {}).get("ci")
        goal(f"population: the weak segmenter drops more on {recipe}", more, ci is not None and ci[0] > 0,
             "weak minus strong Dice drop > 0, its 95% CI above 0", "should")  # fmt: skip
    dice = _v(pop["segmenters"]["strong"]["edema"])
    goal("strong segmenter's Dice on edema edits", dice, dice is not None and dice >= 0.93, ">= 0.93 (paper 93.9)",
         "should")  # fmt: skip
    return out


def _drop(entry: dict[str, Any]) -> float | None:
    real, syn = _v(entry["real"].get("accuracy")), _v(entry["synthetic"].get("accuracy"))
    return None if real is None or syn is None else real - syn


def _perfect(results: dict[str, Any], shift: str) -> dict[str, Any]:
    """A removal shift's perfect-edit figures ({} in results written without them): the manifestation
    shift's with RadEdit's keep mask."""
    perfect = results[shift].get("perfect_edit", {})
    return perfect.get("keep_mask", {}) if shift == "manifestation" else perfect


def _perfect_drop(entry: dict[str, Any], perfect: dict[str, Any], name: str) -> float | None:
    """The predictor's drop from the real test set to the perfect edits (None without them)."""
    return _drop({"real": entry["real"], "synthetic": perfect.get("predictors", {}).get(name, {})})


def table(results: dict[str, Any]) -> str:
    """The printed table: each experiment's figures beside the paper's, then the goals."""
    lines: list[str] = []
    man = results["manifestation"]
    c = results["config"]
    lines.append(f"Phantom replication ({c['mode']} mode): T={c['steps']}, skip {c['skip_ratio']}, "
                 f"guidance {c['guidance']:g}, dilate {c['dilate']} px; 95% bootstrap CIs over source images")  # fmt: skip
    lines.append("")
    lines.append(f"Manifestation shift: remove the pneumothorax ('{man['prompt']}') from {man['cases']} cases with a drain")
    keep = f"keep {c.get('keep_mode', 'latent')}" + (f", {c['keep_scope']}" if c.get("keep_scope", "mask") != "mask" else "")
    radedit = f"RadEdit ({keep})"
    wide = max(22, len(radedit))  # the RadEdit column grows with a longer keep label; its cells with it
    perfect = man.get("perfect_edit", {})
    head = f"  {'measure':38s} {'real':>20s} {radedit:>{wide}s} {'global edit':>22s} {'edit mask only':>22s}"
    if perfect:
        head += f" {'perfect edit':>22s} {'perfect, drain only':>22s}"
    lines.append(head)
    rows = (("pneumothorax removed (judge), %", "pneumothorax_removed", 100.0),
            ("drain present (detector), %", "drain_present", 100.0),
            ("lung Dice after edit (strong seg.), %", "lung_dice", 100.0),
            ("MAE to true counterfactual in mask, %", "counterfactual_mae", 100.0),
            # results written before the darkness left the drain's pixels out name no region
            ("darkness removed outside the drain, %" if man.get("darkness_region")
             else "mean darkness removed (vs. counterfactual), %", "counterfactual_gap_closed", 100.0))  # fmt: skip
    for label, key, scale in rows:
        cells = [pct(man["real"][key], scale)] + [pct(man["methods"][m][key], scale) for m in ("radedit", "global", "edit_mask_only")]
        cells += [pct(perfect[m][key], scale) for m in ("keep_mask", "drain_only") if m in perfect]
        widths = (20, wide, 22, 22, 22, 22)[: len(cells)]
        lines.append(f"  {label:38s} " + " ".join(f"{cell:>{w}s}" for cell, w in zip(cells, widths, strict=True)))
    if perfect:
        lines.append("  perfect edit: the true counterfactual, the source where RadEdit's keep mask keeps it (drain only:"
                     " where the drain lies): what a flawless edit keeping those pixels measures")  # fmt: skip
        if "nothing_kept" in perfect:
            nothing = perfect["nothing_kept"]
            lines.append(f"  the true counterfactual itself (its drain drawn over lung): pneumothorax removed "
                         f"{pct(nothing['pneumothorax_removed'])} %, drain present {pct(nothing['drain_present'])} %")  # fmt: skip
    if "diffedit" in man:
        d = man["diffedit"]
        lines.append(f"  DiffEdit automatic mask vs true pneumothorax mask: Dice {pct(d['dice'])} % "
                     f"(paper {PAPER['diffedit_dice']}); it covers {pct(d['drain_fraction_inside'])} % of the drain")  # fmt: skip
    lines.append("")
    for title, key, figures in (("Pneumothorax predictors (Table 2, manifestation shift)", "manifestation", man["predictors"]),
                                ("Consolidation predictors (Table 1, acquisition shift)", "acquisition",
                                 results["acquisition"]["predictors"])):  # fmt: skip
        lines.append(f"{title}: accuracy, %")
        perfect_acc = _perfect(results, key).get("predictors", {})
        lines.append(f"  {'predictor':10s} {'real biased test':>22s} {'synthetic':>22s} {'synthetic, accepted':>22s}"
                     f" {'paper real':>11s} {'paper synth.':>13s}" + (f" {'perfect edit':>22s}" if perfect_acc else ""))  # fmt: skip
        for name in ("weak", "strong"):
            e = figures[name]
            acc = e["synthetic_accepted"]["accuracy"] if e.get("synthetic_accepted") else None
            lines.append(f"  {name:10s} {pct(e['real'].get('accuracy')):>22s} {pct(e['synthetic'].get('accuracy')):>22s} "
                         f"{pct(acc):>22s} {PAPER[key][name]['real']:>11.1f} {PAPER[key][name]['synthetic']:>13.1f}"
                         + (f" {pct(perfect_acc[name].get('accuracy')):>22s}" if perfect_acc else ""))  # fmt: skip
        extra = results["acquisition"] if key == "acquisition" else man["predictors"]
        lines.append(f"  edits accepted by the judge: {extra['accepted_edits']}")
        if key == "acquisition" and "perfect_edit" in extra:
            lines.append("  perfect edit (the patient drawn without the consolidation, the source under the keep mask): "
                         f"consolidation gone (judge) {pct(extra['perfect_edit']['consolidation_removed'])} %")  # fmt: skip
        lines.append("")
    pop = results["population"]
    lines.append(f"Lung segmenters (Table 3, population shift): Dice against the original masks, %, {pop['cases']} healthy cases")
    lines.append(f"  {'segmenter':10s} " + " ".join(f"{k:>22s}" for k in ("real", "edema", "pacemaker", "consolidation")))
    for name in ("weak", "strong"):
        rows_ = pop["segmenters"][name]
        lines.append(f"  {name:10s} " + " ".join(f"{pct(rows_[k]):>22s}" for k in ("real", "edema", "pacemaker", "consolidation")))
        lines.append(f"  {'  paper':10s} " + " ".join(f"{PAPER['population'][name][k]:>22.1f}"
                                                      for k in ("real", "edema", "pacemaker", "consolidation")))  # fmt: skip
    lines.append("  finding added (judge), %: " + ", ".join(f"{k} {pct(v)}" for k, v in pop["added"].items()))
    for recipe, read in pop.get("read_as", {}).items():
        calls = ", ".join(f"{k} {pct(v)}" for k, v in read.items())
        lines.append(f"    {recipe} edits the judge also calls, %: {calls}")
    if "dice_drop" in pop:
        for name in ("weak", "strong"):
            lines.append(f"  Dice drop, {name}, points: "
                         + ", ".join(f"{k} {pct(v)}" for k, v in pop["dice_drop"][name].items()))  # fmt: skip
        lines.append("  weak minus strong Dice drop, points: "
                     + ", ".join(f"{k} {pct(v)}" for k, v in pop["weak_minus_strong_drop"].items()))  # fmt: skip
    lines.append("")
    lines.append("Goals:")
    for g in goals(results):
        value = "n/a" if g["measured"] is None else f"{g['measured'] * 100:.1f}"
        mark = {True: "reached", False: "NOT reached", None: "n/a"}[g["reached"]]
        ref = "" if g.get("perfect_edit") is None else f" (perfect edit: {g['perfect_edit'] * 100:.1f})"
        lines.append(f"  {g['level']:6s} {g['goal']:50s} {value:>7s}  (target {g['target']}): {mark}{ref}")
    lines.append("")
    t = results["timings_s"]
    lines.append("Timings, s: " + ", ".join(f"{k} {v:g}" for k, v in t.items()))
    return "\n".join(lines)


__all__ = ["PAPER", "goals", "pct", "table"]
