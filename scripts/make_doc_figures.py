"""Make the documentation's pictures from real outputs of the toolkit on the demo model.

    python scripts/make_doc_figures.py [--out docs/images] [--work DIR] [--cases 24] [--steps 50]

* ``main-job.png``: the main job (``python -m monai.bundle run edit --config_file
  monai_bundle/configs/inference.json``, the README's first command, at its full settings) as
  original | edited | difference | masks of the sample study, drawn by the stress report's own
  gallery panels (:func:`radedit_core.stress.report.gallery_panels`: crops around the edit region
  above the whole images, mask outlines, one difference colour scale);
* ``gallery-row.png``: one row of a stress report's gallery, from a phantom-world stress set;
* ``stress-report.png``: the top of that stress report (headless Chromium's screenshot).

The stress set is built by the CLI as the Stress tests page shows (a phantom world, the
manifestation-shift recipe, the demo model) and evaluated with a phantom-world pneumothorax
classifier that learned the drain shortcut (``tests/stress_phantom_predictors.py``, the
documentation examples' stand-in for the reader's model). The PNGs are reduced to a 256-colour
palette so that they stay small in the repository.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(*args: str, cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    print("+", " ".join(args), flush=True)
    subprocess.run(args, cwd=cwd, env=env, check=True)


def save_png(data: bytes, path: Path, width: int | None = None) -> None:
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    if width is not None and image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def picture_bytes(picture: dict) -> bytes:
    return base64.b64decode(picture["src"].split(",", 1)[1])


def gallery_row(source: Path, edited: Path, masks: list) -> bytes:
    """One stress-report gallery row as a PNG: its crop panels above its whole-image panels, titled."""
    from PIL import Image, ImageDraw

    from radedit_core.stress.report import GalleryImages, gallery_panels

    images = GalleryImages.read(source, edited, masks)
    panels = gallery_panels(images, max(images.largest_change(), 1e-3))
    rows = [[p for p in panels if p["crop"]], [p for p in panels if not p["crop"]]]
    pictures = [[Image.open(io.BytesIO(picture_bytes(p))).convert("RGB") for p in row] for row in rows]
    gap, title = 8, 18
    width = max(sum(im.width for im in row) + gap * (len(row) - 1) for row in pictures)
    height = sum(max(im.height for im in row) + title for row in pictures) + gap
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for row, ims in zip(rows, pictures):
        x = 0
        for panel, im in zip(row, ims):
            draw.text((x + 2, y + 2), panel["title"], fill="black")
            sheet.paste(im, (x, y + title))
            x += im.width + gap
        y += max(im.height for im in ims) + title + gap
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def main_job(work: Path, out: Path) -> None:
    from radedit_core.dicom import read_dicom_image, read_dicom_mask
    from radedit_core.stress.report import EDIT_COLOUR, KEEP_COLOUR

    bundle = work / "bundle"
    shutil.copytree(ROOT / "monai_bundle", bundle, ignore=shutil.ignore_patterns("eval"))
    run(sys.executable, "-m", "monai.bundle", "run", "edit", "--config_file", str(bundle / "configs" / "inference.json"),
        cwd=ROOT)
    edited = next((bundle / "eval").glob("sample_study-*/edited.dcm"))
    study = ROOT / "radedit_core" / "data" / "sample_study"
    image = read_dicom_image(study / "cxr.dcm")
    masks = [(f"{segment} ({role})", read_dicom_mask(study / "seg.dcm", image, select=segment) > 0, colour)
             for segment, role, colour in (("pneumothorax", "edit", EDIT_COLOUR), ("drain", "keep", KEEP_COLOUR))]
    save_png(gallery_row(study / "cxr.dcm", edited, masks), out / "main-job.png", width=900)


def stress_report(work: Path, out: Path, cases: int, steps: int) -> None:
    from radedit_core.imaging.io import read_image, read_mask_array
    from radedit_core.stress.report import EDIT_COLOUR, KEEP_COLOUR

    sys.path.insert(0, str(ROOT / "tests"))
    import stress_phantom_predictors as predictors

    run(sys.executable, str(ROOT / "scripts" / "make_phantom_world.py"), "--out", "phantom", "--n", str(cases),
        "--seed", "0", "--splits", "0,0,1", cwd=work)
    radedit = [sys.executable, "-m", "radedit_core.cli"]
    run(*radedit, "stress", "build", "--datalist", "phantom/datalist.json", "--recipes",
        str(ROOT / "radedit_core/data/recipes/phantom_world/manifestation.yaml"), "--output", "stress_set",
        "--subgroups", "site", "--model", "tiny", "--steps", str(steps), cwd=work)
    model = predictors.train(*predictors.world_images(150, seed=1))
    predictors.save(model, work / "weak.ts", "weak (learned the drain)")
    run(*radedit, "stress", "evaluate", "--set", "stress_set", "--predictor", "weak.ts", "--output", "results", cwd=work)
    run(*radedit, "stress", "report", "--results", "results", cwd=work)

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        raise SystemExit("chromium not found: install Debian's chromium (scripts/install_system_packages.sh)")
    shot = work / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                    f"--user-data-dir={work / 'chromium-profile'}", f"--screenshot={shot}", "--window-size=1280,1600",
                    (work / "results" / "report.html").as_uri()], check=True, capture_output=True, timeout=180)
    save_png(shot.read_bytes(), out / "stress-report.png", width=800)

    rows = json.loads((work / "stress_set" / "set.json").read_text())["testing"]
    edit = next(r for r in rows if r["kind"] == "synthetic" and r.get("recipe") == "remove-pneumothorax")
    source = next(r for r in rows if r["id"] == edit["source"])
    folder = work / "stress_set"
    image = read_image(folder / edit["image"])
    masks = []
    for key, name, colour in (("edit_mask", "pneumothorax (edit)", EDIT_COLOUR), ("keep_mask", "drain (keep)", KEEP_COLOUR)):
        if edit.get(key):
            masks.append((name, read_mask_array(folder / edit[key], image) > 0, colour))
    save_png(gallery_row(folder / source["image"], folder / edit["image"], masks), out / "gallery-row.png", width=900)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--work", type=Path, default=None, help="keep the intermediate outputs here")
    parser.add_argument("--cases", type=int, default=24, help="phantom-world cases of the stress set")
    parser.add_argument("--steps", type=int, default=50, help="steps of the stress set's edits")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        main_job(work, args.out)
        stress_report(work, args.out, args.cases, args.steps)


if __name__ == "__main__":
    main()
