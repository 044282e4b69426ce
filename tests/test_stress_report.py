"""Stress tests, report: self-contained HTML checked in a real headless browser (Debian's
chromium), --no-images, and no patient attributes from DICOM headers."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radedit_core.errors import InputError, OutputError
from radedit_core.stress.evaluate import evaluate_set
from radedit_core.stress.predictor_forms import load_predictor
from radedit_core.stress.report import format_estimate, write_report
from stress_sets import PATIENT, classification_set, dicom_set, segmentation_set

TESTS = Path(__file__).parent
RESAMPLES = 200
DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
#: Reports the browser check loads: runs after the load event and records every image's state.
PROBE = (
    "<script>window.addEventListener('load', () => { document.body.setAttribute('data-probe', JSON.stringify("
    "Array.from(document.images, i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt, "
    "i.getBoundingClientRect().width]))); document.body.setAttribute('data-scroll', JSON.stringify("
    "[document.documentElement.scrollWidth, document.documentElement.clientWidth])); });</script>"
)
#: The width the report must fit without horizontal scrolling.
PAGE_WIDTH = 1280


@pytest.fixture(scope="module")
def toy_models():
    import sys

    sys.path.insert(0, str(TESTS))
    yield
    sys.path.remove(str(TESTS))


@pytest.fixture(scope="module")
def cls_results(tmp_path_factory, toy_models) -> Path:
    base = tmp_path_factory.mktemp("report")
    stress_set = classification_set(base / "set")
    predictor = load_predictor("stress_toy_models:weak_classifier", device="cpu")
    return evaluate_set(stress_set, predictor, None, base / "results", n_resamples=RESAMPLES, progress=False).output


@pytest.fixture(scope="module")
def seg_results(tmp_path_factory, toy_models) -> Path:
    base = tmp_path_factory.mktemp("report")
    stress_set = segmentation_set(base / "set")
    predictor = load_predictor("stress_toy_models:lung_segmenter", device="cpu")
    return evaluate_set(stress_set, predictor, None, base / "results", n_resamples=RESAMPLES, progress=False).output


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.fail("chromium not found: install Debian's chromium (scripts/install_system_packages.sh)", pytrace=False)
    return exe


def render(report: Path, tmp_path: Path, scroll: list | None = None) -> tuple[list[list], np.ndarray]:
    """(every <img>: complete, naturalWidth, naturalHeight, alt, shown width) and a screenshot, from headless
    chromium in a 1280 px wide window; ``scroll`` receives [page scroll width, window width]."""
    exe = chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'chromium-profile'}"]  # fmt: skip
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = subprocess.run([exe, *flags, f"--window-size={PAGE_WIDTH},2000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout  # fmt: skip
    match = re.search(r'data-probe="([^"]*)"', dom)
    assert match, "the report did not finish loading in chromium"
    images = json.loads(html.unescape(match.group(1)))
    if scroll is not None:
        scroll.extend(json.loads(html.unescape(re.search(r'data-scroll="([^"]*)"', dom).group(1))))
    shot = tmp_path / "screenshot.png"
    subprocess.run([exe, *flags, f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri()],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    return images, np.asarray(Image.open(shot).convert("L"), dtype=np.float64)


def _assert_self_contained(text: str) -> None:
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:image/png;base64,)""", text), "a resource outside the file"


def test_report_renders_in_chromium_with_every_image_loaded(cls_results, tmp_path):
    report = write_report(cls_results)
    assert report == cls_results / "report.html"
    text = report.read_text(encoding="utf-8")
    _assert_self_contained(text)
    # the paper-style table: real vs synthetic with CIs, differences and flip rates
    assert "Real + edits (pooled, no shams)" in text and "remove-opacity" in text and "Flip rate (%)" in text
    # 100 % and -100 points on a few images are not certainties: the intervals keep a width
    assert "100.0 [100.0, 100.0]" not in text and "-100.0 [-100.0, -100.0]" not in text
    assert re.search(r"100\.0 \[\d\d\.\d, 100\.0\]", text) and "Wilson score interval" in text
    assert "editing score 0.12 &lt; 0.2" in text  # the filtered-out edit and its reason
    assert "guidance sweep" in text  # a dose-response curve
    assert "<h2>Quality control</h2>" in text and "SSIM" in text and "removed by" in text
    scroll: list = []
    images, shot = render(report, tmp_path, scroll)
    assert scroll[0] <= scroll[1] <= PAGE_WIDTH, f"the page scrolls sideways at {PAGE_WIDTH} px: {scroll}"
    crops = [i for i in images if i[3] == "edited, around the edit region"]
    assert len(images) >= 6 and len(crops) == 8
    assert all(i[4] >= 384 for i in images if "around the edit region" in i[3]), "gallery crops under 384 px"
    for complete, width, height, alt, _ in images:
        assert complete and width > 0 and height > 0, alt
    Image.fromarray(shot.astype(np.uint8)).save(cls_results / "screenshot.png")
    assert shot.std() > 20 and np.mean(shot < 200) > 0.02, "the screenshot is blank"
    with pytest.raises(OutputError):
        write_report(cls_results)


def test_segmentation_report_renders_with_mask_galleries(seg_results, tmp_path):
    report = write_report(seg_results, tmp_path / "seg.html", gallery_size=3)
    text = report.read_text(encoding="utf-8")
    _assert_self_contained(text)
    assert "HD95 (mm)" in text and "add-consolidation" in text and "Δ Dice vs sources" in text
    images, shot = render(report, tmp_path)
    assert len([i for i in images if i[3] == "edited, around the edit region"]) == 3
    assert all(complete and width > 0 for complete, width, _, _, _ in images)
    assert shot.std() > 20


def test_no_images_leaves_every_picture_of_an_image_out(cls_results, tmp_path):
    with_images = write_report(cls_results, tmp_path / "full.html", gallery_size=2).read_text(encoding="utf-8")
    without = write_report(cls_results, tmp_path / "share.html", include_images=False).read_text(encoding="utf-8")
    alts = re.findall(r'<img [^>]*alt="([^"]*)"', without)
    assert alts and not any("edit region" in a or "whole image" in a for a in alts)  # only plots of figures remain
    # two gallery rows of six panels (crops and whole images) and their one colour scale
    assert len(DATA_URI.findall(with_images)) == len(alts) + 2 * 6 + 1
    assert "--no-images" in without and "case00-no-opacity-g5" in without  # the table of changes stays


def test_no_patient_attributes_reach_the_report(tmp_path, toy_models):
    stress_set = dicom_set(tmp_path / "set")
    predictor = load_predictor("stress_toy_models:weak_classifier", device="cpu")
    ev = evaluate_set(stress_set, predictor, None, tmp_path / "results", n_resamples=RESAMPLES, progress=False)
    report = write_report(ev.output)
    text = DATA_URI.sub("", report.read_text(encoding="utf-8")).lower()
    identifiers = ["doe", "jane", PATIENT["patient_id"], PATIENT["patient_birth_date"], "1980-01-01"]
    leaked = [value for value in identifiers if value.lower() in text]
    assert not leaked, f"patient attributes in the report: {leaked}"
    assert "[redacted]-0-no-opacity" in text  # the edit's id held the PatientID
    assert "edits of [redacted]&#39;s study" in text  # the builder's note named the patient
    assert "patientid" not in text  # an identifying column is never a subgroup
    # results.json (the local record: ids, the builder's provenance as written) copies nothing from headers
    assert PATIENT["patient_birth_date"] not in (ev.output / "results.json").read_text()
    # and the DICOM edits really carry them (the test is not vacuous)
    import pydicom

    edit = next((tmp_path / "set" / "edits").rglob("edited.dcm"))
    assert str(pydicom.dcmread(edit).PatientName) == PATIENT["patient_name"]


def test_report_refuses_a_changed_set_and_missing_results(cls_results, tmp_path):
    with pytest.raises(InputError, match="results not found"):
        write_report(tmp_path)
    moved = tmp_path / "results"
    shutil.copytree(cls_results, moved)
    results = json.loads((moved / "results.json").read_text())
    results["set"]["sha256"] = "0" * 64
    (moved / "results.json").write_text(json.dumps(results))
    with pytest.raises(InputError, match="the set changed since it was evaluated"):
        write_report(moved, tmp_path / "r.html")


def test_estimates_are_formatted_like_the_paper_tables():
    assert format_estimate({"value": 0.991, "ci": [0.982, 0.997]}, "accuracy") == "99.1 [98.2, 99.7]"
    assert format_estimate({"value": -0.2, "ci": [-0.3, -0.1]}, "dice", signed=True) == "-20.0 [-30.0, -10.0]"
    assert format_estimate({"value": 0.9123, "ci": None}, "auroc") == "0.912"
    assert format_estimate({"value": 4.214, "ci": [3.0, 5.5]}, "hd95") == "4.21 [3.00, 5.50]"
    assert format_estimate(None, "accuracy") == "—"


def test_the_summary_names_the_model_of_the_batch_runners_fingerprint_and_its_settings_as_numbers():
    from radedit_core.stress.privacy import Scrubber
    from radedit_core.stress.report import _edit_settings

    set_provenance = {
        "model": {"spec": {"name": "tiny", "unet": {"source": "/somewhere/unet"}}, "dtype": "float32", "vae_dtype": "float32"},
        "edit_settings": {"remove-pneumothorax": {"steps": 50, "skip_ratio": 0.3, "guidance": 15.0, "seed": 0, "dilate": 5}},
    }
    name, rows = _edit_settings({"provenance": {"set": set_provenance}}, Scrubber())
    assert name == "tiny (float32, VAE float32)"
    assert rows == [{"cells": ["remove-pneumothorax", "50", "0.3", "15", "0", "5"]}]


def test_the_summary_says_a_filter_was_skipped_only_when_one_was():
    from radedit_core.stress.privacy import Scrubber
    from radedit_core.stress.report import _qc_section

    unscored = _qc_section({"qc": {"score_status": "unavailable: BioViL-T is not installed"}}, Scrubber())
    assert unscored["banner"].startswith("Editing score unavailable") and not unscored["filters_skipped"]
    skipped = _qc_section({"qc": {"score_status": "unavailable: x", "filters_not_applied": "min_score (remove-ptx)"}},
                          Scrubber())  # fmt: skip
    assert skipped["banner"].startswith("Filter not applied: min_score") and skipped["filters_skipped"]
