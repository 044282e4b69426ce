"""The phantom chest world: determinism, masks that match pixels, correlations, site cues, data set output."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_erosion, gaussian_filter
from scipy.stats import binomtest

from radedit_core.dicom import read_dicom_image, read_dicom_mask
from radedit_core.dicom.validate import dciodvfy_executable, validate_dicom
from radedit_core.errors import ConfigError, OutputError
from radedit_core.phantom_world import (
    STRUCTURES,
    CaseParameters,
    WorldConfig,
    quantise,
    render_case,
    sample_case,
    sample_parameters,
    write_dataset,
)
from radedit_core.phantom_world import dataset as dataset_module
from radedit_core.phantom_world.dataset import LABELS, MASK_NAMES
from radedit_core.phantom_world.devices import DevicesParameters, PacemakerParameters
from radedit_core.phantom_world.findings import EdemaParameters, FindingsParameters
from radedit_core.phantom_world.reports import impression
from radedit_core.phantom_world.world import render_layers

ROOT = Path(__file__).resolve().parents[1]
FINDINGS = ("pneumothorax", "effusion", "edema", "consolidation")


def everything_world(site: str) -> WorldConfig:
    """A world where every finding and device is present, at one site."""
    return WorldConfig.from_dict(
        {
            "sites": {"A": {"probability": 1.0 if site == "A" else 0.0}, "B": {"probability": 1.0 if site == "B" else 0.0}},
            "prevalence": {name: 1.0 for name in FINDINGS},
            "site_only": {},
            "drain_given_pneumothorax": 1.0,
            "pacemaker": 1.0,
            "ecg": 1.0,
        }
    )


@pytest.fixture(scope="module")
def full_cases():
    """One case per site with every structure drawn."""
    return {site: sample_case(everything_world(site), seed) for site, seed in (("A", 11), ("B", 12))}


def seeds_of(config: WorldConfig, want, count: int, limit: int = 400) -> list[int]:
    found = [s for s in range(limit) if want(sample_parameters(config, s))]
    assert len(found) >= count, "not enough matching seeds"
    return found[:count]


# -- determinism ----------------------------------------------------------------------------


def test_same_seed_same_case_other_seed_other_case():
    config = WorldConfig()
    a, b, c = sample_case(config, 5), sample_case(config, 5), sample_case(config, 6)
    assert a.image.dtype == np.float32 and a.image.shape == (512, 512)
    assert np.array_equal(a.image, b.image)
    assert all(np.array_equal(a.masks[k], b.masks[k]) for k in STRUCTURES)
    assert a.report == b.report and a.labels == b.labels and a.parameters.to_dict() == b.parameters.to_dict()
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.masks["right_lung"], c.masks["right_lung"])
    assert 0.0 < float(a.image.min()) and float(a.image.max()) < 1.0


def test_parameters_rerender_from_json(full_cases):
    case = full_cases["B"]
    params = CaseParameters.from_dict(json.loads(json.dumps(case.parameters.to_dict())))
    again = render_case(params)
    assert np.array_equal(again.image, case.image)
    assert all(np.array_equal(again.masks[k], case.masks[k]) for k in STRUCTURES)


def test_prevalence_changes_findings_not_the_patient():
    """Independent random streams: the same seed in a world without findings is the same anatomy."""
    seed = seeds_of(WorldConfig(), lambda p: p.findings.pneumothorax is not None, 1)[0]
    with_ptx = sample_case(WorldConfig(), seed)
    healthy = sample_case(WorldConfig.from_dict({"prevalence": {n: 0.0 for n in FINDINGS}}), seed)
    assert healthy.labels["pneumothorax"] == 0 and with_ptx.labels["pneumothorax"] == 1
    assert np.array_equal(healthy.masks["left_lung"], with_ptx.masks["left_lung"])
    assert np.array_equal(healthy.masks["right_lung"], with_ptx.masks["right_lung"])


# -- masks match pixels ---------------------------------------------------------------------


@pytest.mark.parametrize("site", ["A", "B"])
def test_every_mask_is_exactly_where_its_structure_changes_the_image(full_cases, site):
    case = full_cases[site]
    for name in STRUCTURES:
        mask = case.masks[name]
        assert mask.any(), f"{name} not drawn"
        without = render_case(case.parameters, exclude=[name])
        changed = without.image != case.image
        assert not without.masks[name].any()
        assert np.array_equal(changed, mask), (
            f"{name}: {int((changed & ~mask).sum())} pixels changed outside the mask, "
            f"{int((mask & ~changed).sum())} mask pixels unchanged"
        )


def test_findings_lie_in_the_lungs_and_overlap_devices_in_separate_masks(full_cases):
    for case in full_cases.values():
        lungs = case.mask("lungs")
        assert np.array_equal(lungs, case.masks["left_lung"] | case.masks["right_lung"])
        for name in FINDINGS:
            assert not (case.masks[name] & ~lungs).any(), f"{name} outside the lungs"
        # The drain runs through the pneumothorax's pleural air: both masks hold the shared pixels.
        overlap = case.masks["drain"] & case.masks["pneumothorax"]
        assert overlap.sum() > 50
        assert (case.masks["drain"] & ~case.masks["pneumothorax"]).any()
        assert (case.masks["pneumothorax"] & ~case.masks["drain"]).any()


def test_drain_crosses_the_pneumothorax_in_the_default_world():
    config = WorldConfig()
    seeds = seeds_of(config, lambda p: p.devices.drain is not None and p.findings.pneumothorax is not None, 6)
    for seed in seeds:
        case = sample_case(config, seed)
        assert case.parameters.devices.drain.side == case.parameters.findings.pneumothorax.side
        assert (case.masks["drain"] & case.masks["pneumothorax"]).sum() > 20, f"seed {seed}"


def test_no_lung_markings_beyond_the_pleural_line(full_cases):
    """Inside the pneumothorax the lung layers are smooth; the rest of that lung has texture."""
    case = full_cases["A"]
    side = case.parameters.findings.pneumothorax.side
    _, layers = render_layers(case.parameters)
    lung = layers[f"{side}_lung"].density + layers["pneumothorax"].density
    detail = lung - gaussian_filter(lung, 2.0)
    ptx = binary_erosion(case.masks["pneumothorax"], iterations=4)
    rest = binary_erosion(case.masks[f"{side}_lung"] & ~case.masks["pneumothorax"], iterations=4)
    assert ptx.sum() > 500 and rest.sum() > 500
    assert detail[ptx].std() < 0.25 * detail[rest].std()
    # And the image is darker there than in the aerated lung (bright = dense).
    assert case.image[ptx].mean() < case.image[rest].mean()


# -- correlations ---------------------------------------------------------------------------


def _labels(config: WorldConfig, n: int = 400, offset: int = 1000) -> list[dict]:
    return [sample_parameters(config, offset + s).labels() for s in range(n)]


def _assert_rate(k: int, n: int, p: float) -> None:
    assert n > 0
    assert binomtest(k, n, p).pvalue > 1e-3, f"{k}/{n} is not a sample of rate {p}"


def test_configured_correlations_are_reproduced():
    config = WorldConfig()
    rows = _labels(config)
    ptx = [r for r in rows if r["pneumothorax"]]
    no_ptx = [r for r in rows if not r["pneumothorax"]]
    _assert_rate(sum(r["drain"] for r in ptx), len(ptx), config.drain_given_pneumothorax)
    _assert_rate(sum(r["drain"] for r in no_ptx), len(no_ptx), config.drain_given_no_pneumothorax)
    at_a = [r for r in rows if r["site"] == "A"]
    at_b = [r for r in rows if r["site"] == "B"]
    _assert_rate(len(at_a), len(rows), config.sites["A"].probability)
    assert sum(r["consolidation"] for r in at_a) == 0  # the site-only finding never appears at A
    _assert_rate(sum(r["consolidation"] for r in at_b), len(at_b), config.prevalence["consolidation"])
    for name in ("pneumothorax", "effusion", "edema"):
        _assert_rate(sum(r[name] for r in rows), len(rows), config.prevalence[name])
    _assert_rate(sum(r["pacemaker"] for r in rows), len(rows), config.pacemaker)


def test_correlations_are_parameters():
    config = WorldConfig.from_dict(
        {"drain_given_pneumothorax": 0.5, "drain_given_no_pneumothorax": 0.3, "site_only": {"consolidation": "A"}}
    )
    rows = _labels(config)
    ptx = [r for r in rows if r["pneumothorax"]]
    no_ptx = [r for r in rows if not r["pneumothorax"]]
    _assert_rate(sum(r["drain"] for r in ptx), len(ptx), 0.5)
    _assert_rate(sum(r["drain"] for r in no_ptx), len(no_ptx), 0.3)
    assert sum(r["consolidation"] for r in rows if r["site"] == "B") == 0
    assert sum(r["consolidation"] for r in rows if r["site"] == "A") > 0


# -- sites ----------------------------------------------------------------------------------


def test_sites_differ_in_marker_field_of_view_and_storage():
    config = WorldConfig()
    per_site = {site: seeds_of(config, lambda p, s=site: p.site == s, 3) for site in ("A", "B")}
    stats = {}
    for site, seeds in per_site.items():
        for seed in seeds:
            case = sample_case(config, seed)
            marker = case.masks["marker"]
            rows, cols = np.nonzero(marker)
            box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            stats.setdefault(site, []).append(
                {
                    "row": rows.mean() / 512,
                    "col": cols.mean() / 512,
                    "fill": marker.sum() / box,
                    "lungs": case.mask("lungs").mean(),
                    "photometric": case.storage.photometric,
                    "spacing": case.storage.pixel_spacing_mm,
                }
            )
    for a in stats["A"]:
        # Site A: "R" in a thin frame at the top left, tight field of view.
        assert a["row"] < 0.2 and a["col"] < 0.2 and a["fill"] < 0.45 and a["photometric"] == "MONOCHROME2"
    for b in stats["B"]:
        # Site B: "L" on a plate at the upper right, wide field of view.
        assert b["row"] < 0.3 and b["col"] > 0.75 and b["fill"] > 0.6 and b["photometric"] == "MONOCHROME1"
    assert max(b["lungs"] for b in stats["B"]) < min(a["lungs"] for a in stats["A"])
    assert min(b["spacing"] for b in stats["B"]) > max(a["spacing"] for a in stats["A"])


# -- reports --------------------------------------------------------------------------------


def test_reports_use_the_papers_prompt_phrasing():
    none = FindingsParameters()
    assert impression(none, DevicesParameters()) == "No acute cardiopulmonary process."
    edema = FindingsParameters(edema=EdemaParameters("moderate", 0.2, 0.75, 0.05, 1.0))
    assert impression(edema, DevicesParameters()) == "Moderate pulmonary edema. The heart size is normal."
    pacemaker = DevicesParameters(pacemaker=PacemakerParameters("left", (0, 0), 0, (44, 40), 2, 1.0, 15))
    assert impression(none, pacemaker) == (
        "Left pectoral pacemaker in place. The position of the leads is as expected. "
        "Otherwise unremarkable chest radiographic examination."
    )
    config = WorldConfig()
    seed = seeds_of(config, lambda p: p.findings.pneumothorax is not None and p.devices.drain is not None, 1)[0]
    params = sample_parameters(config, seed)
    ptx = params.findings.pneumothorax
    text = impression(FindingsParameters(pneumothorax=ptx), DevicesParameters(drain=params.devices.drain))
    assert text == f"{ptx.size.capitalize()} {ptx.side} pneumothorax. {ptx.side.capitalize()} chest drain in place."
    drain_only = impression(FindingsParameters(), DevicesParameters(drain=params.devices.drain))
    assert drain_only.startswith(f"{ptx.side.capitalize()} chest drain in place. No pneumothorax.")


def test_report_negatives_state_no_pneumothorax_once_in_every_report_without_one():
    plain, negatives = WorldConfig(), WorldConfig.from_dict({"report_negatives": True})
    counts = {"with": 0, "without": 0}
    drained = seeds_of(plain, lambda p: p.findings.pneumothorax is None and p.devices.drain is not None, 2)
    for seed in [*range(80), *drained]:
        params, base = sample_parameters(negatives, seed), sample_parameters(plain, seed)
        # The setting changes the text only, never what is drawn.
        assert dataclasses.replace(params, report_negatives=False).to_dict() == base.to_dict()
        text = impression(params.findings, params.devices, negatives=True)
        base_text = impression(base.findings, base.devices)
        if params.findings.pneumothorax is None:
            counts["without"] += 1
            assert text.count("No pneumothorax.") == 1
            if params.devices.drain is None:
                assert text == base_text + " No pneumothorax."
            else:  # the default world's reports already state it, after the drain's sentence
                assert text == base_text and "chest drain in place. No pneumothorax." in text
        else:
            counts["with"] += 1
            assert text == base_text and "No pneumothorax" not in text
    assert min(counts.values()) > 5
    seed = seeds_of(negatives, lambda p: p.findings.pneumothorax is None and p.devices.drain is None, 1)[0]
    case = sample_case(negatives, seed)
    assert case.report == impression(case.parameters.findings, case.parameters.devices) + " No pneumothorax."
    again = CaseParameters.from_dict(json.loads(json.dumps(case.parameters.to_dict())))
    assert again.report_negatives is True and render_case(again).report == case.report
    # A world file's booleans read as the settings layer reads every front end's.
    for given, read in ((True, True), ("yes", True), ("false", False), (0, False), ("on", True)):
        assert WorldConfig.from_dict({"report_negatives": given}).report_negatives is read
    for bad in ("maybe", 2, [True]):
        with pytest.raises(ConfigError, match=r"world config: report_negatives: expected true or false, got"):
            WorldConfig.from_dict({"report_negatives": bad})
    with pytest.raises(ConfigError, match="report_negatives must be true or false, got 'yes'"):
        WorldConfig(report_negatives="yes")


# -- config ---------------------------------------------------------------------------------


def test_world_config_yaml_round_trip_and_errors(tmp_path):
    config = WorldConfig.from_dict({"prevalence": {"pneumothorax": 0.4}, "sites": {"B": {"marker": {"letter": "R"}}}})
    path = tmp_path / "world.yaml"
    path.write_text(config.to_yaml())
    again = WorldConfig.from_yaml(path)
    assert again.to_dict() == config.to_dict()
    assert again.prevalence["pneumothorax"] == 0.4 and again.prevalence["edema"] == 0.15
    assert again.sites["B"].marker.letter == "R" and again.sites["B"].marker.style == "plate"
    bad = tmp_path / "bad.yaml"
    bad.write_text("prevalence:\n  pneumothorax: 1.5\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: prevalence\.pneumothorax must be a probability"):
        WorldConfig.from_yaml(bad)
    bad.write_text("prevalance: {}\n")
    with pytest.raises(ConfigError, match="unknown key"):
        WorldConfig.from_yaml(bad)
    bad.write_text("site_only: {consolidation: C}\n")
    with pytest.raises(ConfigError, match="unknown site 'C'"):
        WorldConfig.from_yaml(bad)


# -- data set output ------------------------------------------------------------------------


def _read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_png_dataset_rows_files_and_reload(tmp_path):
    from monai.data import load_decathlon_datalist

    config = WorldConfig()
    summary = write_dataset(tmp_path / "world", 4, config, seed=3, format="png", progress=False)
    folder = summary.folder
    assert not (tmp_path / ".world.partial").exists()
    datalist = json.loads((folder / "datalist.json").read_text())
    assert set(datalist) == {"training", "validation", "testing"}
    rows = [r for split in datalist.values() for r in split]
    assert len(rows) == 4 and sorted(r["id"] for r in rows) == [f"case_{i:05d}" for i in range(4)]
    for row in rows:
        assert all(isinstance(v, (str, int)) for v in row.values()), "rows are flat"
        assert {"id", "image", "report", "site", *LABELS, *(f"mask_{m}" for m in MASK_NAMES)} <= set(row)
        case = sample_case(config, row["seed"])
        image = _read_png(folder / row["image"])
        assert image.dtype == np.uint16 and np.array_equal(image, quantise(case.image, 16))
        for name in MASK_NAMES:
            mask = _read_png(folder / row[f"mask_{name}"])
            assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
            assert np.array_equal(mask.astype(bool), case.mask(name)), name
        for label in LABELS:
            assert row[label] == case.labels[label] == int(case.masks[label].any())
        assert row["report"] == case.report and row["site"] == case.site
        record = json.loads((folder / "cases" / f"{row['id']}.json").read_text())
        assert record["row"]["seed"] == row["seed"] and record["parameters"]["seed"] == row["seed"]
    # MONAI reads the datalist and resolves every path against its folder.
    loaded = load_decathlon_datalist(folder / "datalist.json", data_list_key="training")
    assert loaded and all(Path(item["mask_drain"]).is_file() and Path(item["image"]).is_file() for item in loaded)
    csv_lines = (folder / "datalist.csv").read_text().splitlines()
    assert len(csv_lines) == 5 and csv_lines[0].startswith("id,split,seed,image,report,site")
    provenance = json.loads((folder / "dataset.json").read_text())
    assert provenance["seed"] == 3 and provenance["n"] == 4
    assert sum(provenance["statistics"]["splits"].values()) == 4
    assert WorldConfig.from_yaml(folder / "world.yaml").to_dict() == config.to_dict()
    # Deterministic per seed: a second run, in two processes, writes the same bytes.
    again = write_dataset(tmp_path / "again", 4, config, seed=3, format="png", progress=False, workers=2).folder
    for name in ("datalist.json", "datalist.csv", "dataset.json", "images/case_00003.png", "masks/case_00003/lungs.png"):
        assert _digest(folder / name) == _digest(again / name), name


def test_dataset_is_atomic_resumes_and_rejects_bad_arguments(tmp_path, monkeypatch):
    target = tmp_path / "world"
    with pytest.raises(ConfigError, match="--n"):
        write_dataset(target, 0, progress=False)
    with pytest.raises(ConfigError, match="--format"):
        write_dataset(target, 2, format="jpeg", progress=False)
    assert not target.exists()

    calls = []
    real = dataset_module.sample_case

    def failing(config, seed):
        calls.append(seed)
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return real(config, seed)

    monkeypatch.setattr(dataset_module, "sample_case", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_dataset(target, 4, seed=9, progress=False)
    assert not target.exists()  # nothing appears before the whole set is written
    staging = tmp_path / ".world.partial"
    done = sorted(p.name for p in (staging / "cases").glob("*.json"))
    assert done == ["case_00000.json", "case_00001.json"]
    stamps = {p: p.stat().st_mtime_ns for p in (staging / "cases").glob("*.json")}
    monkeypatch.setattr(dataset_module, "sample_case", real)
    resumed = write_dataset(target, 4, seed=9, progress=False).folder
    assert all(resumed / "cases" / p.name for p in stamps)
    assert all((resumed / "cases" / p.name).stat().st_mtime_ns == t for p, t in stamps.items())  # kept
    fresh = write_dataset(tmp_path / "fresh", 4, seed=9, progress=False).folder
    assert _digest(resumed / "datalist.json") == _digest(fresh / "datalist.json")
    assert _digest(resumed / "images/case_00003.png") == _digest(fresh / "images/case_00003.png")
    before = _digest(resumed / "datalist.json")
    with pytest.raises(OutputError, match="already exists"):
        write_dataset(target, 2, seed=1, progress=False)
    assert _digest(resumed / "datalist.json") == before  # untouched


def test_dicom_dataset_validates_and_reads_back(tmp_path):
    if dciodvfy_executable() is None:
        pytest.fail("dciodvfy not found: install dicom3tools (scripts/install_system_packages.sh)", pytrace=False)
    config = WorldConfig()
    seeds = {}
    for i in range(40):  # the first cases of seed 0 at each site
        site = sample_parameters(config, dataset_module.case_seed(0, i)).site
        seeds.setdefault(site, i)
    n = max(seeds.values()) + 1
    assert n <= 4, "seed 0's first cases should cover both sites"
    folder = write_dataset(tmp_path / "dcm", n, config, seed=0, format="dicom", seg=True, progress=False).folder
    rows = {r["id"]: r for r in json.loads((folder / "datalist.json").read_text())["training"]}
    rows.update({r["id"]: r for split in ("validation", "testing") for r in json.loads((folder / "datalist.json").read_text())[split]})
    photometrics = set()
    for row in rows.values():
        for rel in (row["image"], row["seg"]):
            report = validate_dicom(folder / rel)
            assert report.ok, str(report)
        case = sample_case(config, row["seed"])
        image = read_dicom_image(folder / row["image"])
        photometrics.add(str(image.metadata["dataset"].PhotometricInterpretation))
        assert np.array_equal(image.array, quantise(case.image, 12))  # MONOCHROME1 is flipped back on reading
        assert image.geometry.spacing[0] == pytest.approx(case.storage.pixel_spacing_mm, abs=1e-6)
        for name in ("left_lung", "marker"):
            assert np.array_equal(read_dicom_mask(folder / row["seg"], image, select=name).astype(bool), case.masks[name])
    assert photometrics == {"MONOCHROME1", "MONOCHROME2"}


def test_radedit_phantom_reports_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "world.yaml"
    bad.write_text("ecg: 2\n")
    # In this process (tests/cli_runner.py): the message and exit code are under test, not the
    # process boundary, and a subprocess would spend ~12 s importing first.
    from cli_runner import radedit

    proc = radedit("phantom", "--out", tmp_path / "out", "--n", "2", "--config", bad, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"radedit: error: {bad}: ecg must be a probability in [0, 1], got 2"]
    assert not (tmp_path / "out").exists()
