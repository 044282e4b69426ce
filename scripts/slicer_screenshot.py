"""Make the RadEdit extension's screenshot (``RadEditSlicer/Resources/Screenshots/RadEdit.png``).

No Slicer application runs here, so this is not a capture of Slicer.  What
it shows is made from real outputs:

* the views: a real edit of a synthetic chest X-ray with the bundled demo
  model (``tiny``), run by the module's own logic (``RadEditCoreLogic``) on a
  headless Slicer scene (the ``slicer-core`` wheel): original | edited |
  difference, as the module's comparison layout shows them;
* the panel: the module's ``Resources/UI/RadEdit.ui`` rendered by Qt 5
  offscreen (PyQt5), filled with what ``RadEditLib.panel`` decides for that
  scene (segment rows and check states, pixel counts, Apply enabled, the
  worker's outcome).  The CTK/MRML widgets of the file are drawn as the Qt
  classes they derive from (ctkCollapsibleButton as a framed section,
  qMRMLNodeComboBox as a QComboBox, ctkPathLineEdit as a QLineEdit), so the
  panel looks like Slicer's, not exactly.

Usage (from the repository root, about a minute on a CPU)::

    QT_QPA_PLATFORM=offscreen PYTHONPATH=$PWD:$PWD/tests python scripts/slicer_screenshot.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "RadEditSlicer"
sys.path[:0] = [str(MODULE_DIR), str(REPO / "tests")]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

#: CTK/MRML classes of RadEdit.ui -> the Qt class each derives from (or looks like).
STAND_INS = {
    "qMRMLWidget": "QWidget",
    "ctkCollapsibleButton": "QGroupBox",
    "qMRMLNodeComboBox": "QComboBox",
    "ctkPathLineEdit": "QLineEdit",
}


def run_edit(work: Path, steps: int):
    """A real edit with the demo model, through the module's logic on a headless scene."""
    import slicer_bootstrap as sb
    from RadEditLib import panel
    from RadEditLib.logic import RadEditCoreLogic
    from RadEditLib.protocol import PAPER_PROMPTS, EditParameters
    from radedit_core.synthetic import chest_phantom, quantise

    core = sb.bootstrap()
    phantom = chest_phantom(256, 224, seed=11)
    array = quantise(phantom.image, 12).astype(np.int16)
    volume = sb.add_cxr_volume(core.scene, array, "Chest PA", spacing=(0.4, 0.4, 1.0))
    segmentation = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    lungs = sb.paint_segment(segmentation, volume, "lungs", phantom.mask("left_lung", "right_lung"))
    pacemaker = sb.paint_segment(segmentation, volume, "pacemaker", phantom.mask("pacemaker"), (0.2, 0.8, 0.2))
    sb.paint_segment(segmentation, volume, "heart", phantom.mask("heart"), (0.9, 0.6, 0.2))

    class Parameters:  # the parameter node's fields the panel reads
        inputVolume, editSegmentIds, keepSegmentIds = volume, [lungs], [pacemaker]
        prompt = PAPER_PROMPTS["edema"]

    Parameters.segmentation = segmentation
    logic = RadEditCoreLogic(core.scene, core.segmentations_logic, python=sys.executable, work_root=work)
    masks, problem = panel.MaskCache(logic.takeSegmentArrays).get(Parameters)
    assert problem is None, problem
    parameters = EditParameters(prompt=Parameters.prompt, steps=steps, model="tiny", device="cpu", dtype="float32")
    run = logic.edit(volume, segmentation, [lungs], [pacemaker], parameters, timeout=900)
    result = run.result_volume
    from RadEditLib import mrml

    edited = mrml.single_slice(result)
    outcome = panel.edit_outcome(run.process.state, run.process.result, run.process.error_message)
    return {
        "values": {
            "inputVolume": volume.GetName(), "segmentation": segmentation.GetName(), "resultVolume": result.GetName(),
            "prompt": parameters.prompt, "guidance": parameters.guidance, "steps": parameters.steps,
            "skipRatio": parameters.skip_ratio, "seed": parameters.seed, "dilation": parameters.dilate,
            "keepMode": parameters.keep_mode, "model": parameters.model, "device": parameters.device,
            "trustRemoteCode": parameters.trust_remote_code,
        },
        "rows": panel.segment_rows(Parameters),
        "masks_text": panel.masks_text(masks, problem),
        "apply": panel.apply_enabled(Parameters, busy=False),
        "status": outcome.status,
        "original": array,
        "edited": edited,
        "result_name": result.GetName(),
    }


def qt_ui_file(path: Path, out: Path) -> Path:
    """RadEdit.ui with the CTK/MRML classes replaced by their Qt stand-ins and their own properties dropped."""
    from PyQt5 import QtWidgets

    tree = ET.parse(path)
    for widget in tree.iter("widget"):
        cls = widget.get("class")
        if cls in STAND_INS:
            widget.set("class", STAND_INS[cls])
            qt_class = getattr(QtWidgets, STAND_INS[cls])
            for prop in list(widget.findall("property")):
                name = prop.get("name")
                if prop.get("stdset") == "0":
                    continue
                if name == "text" and qt_class is QtWidgets.QGroupBox:
                    prop.set("name", "title")
                elif not hasattr(qt_class, "set" + name[0].upper() + name[1:]):
                    widget.remove(prop)
    custom = tree.getroot().find("customwidgets")
    if custom is not None:
        tree.getroot().remove(custom)
    tree.getroot().remove(tree.getroot().find("connections")) if tree.getroot().find("connections") is not None else None
    tree.write(out)
    return out


def to_qimage(array: np.ndarray, low: float, high: float, diverging: bool = False):
    from PyQt5 import QtGui

    scaled = np.clip((array.astype(np.float32) - low) / max(high - low, 1e-6), 0.0, 1.0)
    if diverging:  # blue (darker) - white - red (brighter), as the difference volume's colour map
        t = scaled * 2.0 - 1.0
        rgb = np.stack([1.0 - np.clip(-t, 0, 1), 1.0 - np.abs(t), 1.0 - np.clip(t, 0, 1)], axis=-1)
    else:
        rgb = np.repeat(scaled[..., None], 3, axis=-1)
    rgb = np.ascontiguousarray((rgb * 255).astype(np.uint8))
    h, w, _ = rgb.shape
    return QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format_RGB888).copy()


def render(data: dict, out: Path) -> None:
    import types

    from PyQt5 import QtCore, QtGui, QtWidgets, uic
    from RadEditLib import panel

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    app.setStyle("Fusion")
    with tempfile.TemporaryDirectory() as tmp:
        ui = uic.loadUi(str(qt_ui_file(MODULE_DIR / "Resources" / "UI" / "RadEdit.ui", Path(tmp) / "RadEdit.ui")))
    qt = types.SimpleNamespace(QListWidgetItem=QtWidgets.QListWidgetItem, Qt=QtCore.Qt)
    find = lambda cls, name: ui.findChild(cls, name)  # noqa: E731
    # What parameterNodeWrapper shows in the bound widgets: the values of this edit.
    bound = {
        w.get("name"): p.find("string").text
        for w in ET.parse(MODULE_DIR / "Resources" / "UI" / "RadEdit.ui").iter("widget")
        for p in w.findall("property")
        if p.get("name") == "SlicerParameterName"
    }
    values = data["values"]
    for name, parameter in bound.items():
        widget = ui.findChild(QtWidgets.QWidget, name)
        value = values.get(parameter)
        if value is None or widget is None:
            continue
        if isinstance(widget, QtWidgets.QComboBox):
            index = widget.findText(str(value))
            if index < 0:
                widget.addItem(str(value))
                index = widget.count() - 1
            widget.setCurrentIndex(index)
        elif isinstance(widget, QtWidgets.QAbstractSpinBox):
            widget.setValue(value)
        elif isinstance(widget, QtWidgets.QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QtWidgets.QLineEdit):
            widget.setText(str(value))
            widget.setCursorPosition(0)
    find(QtWidgets.QComboBox, "presetComboBox").addItem("Presets (RadEdit paper)...")
    for which, name in (("edit", "editSegmentsList"), ("keep", "keepSegmentsList")):
        widget = find(QtWidgets.QListWidget, name)
        for row in data["rows"]:
            widget.addItem(panel.segment_item(qt, row, which))
    find(QtWidgets.QLabel, "masksLabel").setText(data["masks_text"])
    find(QtWidgets.QLabel, "statusLabel").setText(data["status"])
    apply = find(QtWidgets.QPushButton, "applyButton")
    apply.setEnabled(data["apply"][0])
    find(QtWidgets.QPushButton, "cancelButton").setEnabled(False)
    find(QtWidgets.QProgressBar, "progressBar").hide()
    for box in ui.findChildren(QtWidgets.QGroupBox):
        if box.title().lower().startswith(("advanced", "settings")):
            for child in box.findChildren(QtWidgets.QWidget):
                child.hide()  # collapsed, as in the module
    ui.resize(420, 10)
    ui.adjustSize()
    ui.resize(420, ui.sizeHint().height())
    panel_image = ui.grab().toImage()

    original, edited = data["original"], data["edited"]
    low, high = np.percentile(original, [1, 99])
    difference = edited.astype(np.float32) - original.astype(np.float32)
    extent = float(np.abs(difference).max()) or 1.0
    views = [
        ("Original", to_qimage(original, low, high)),
        ("RadEdit: edema", to_qimage(edited, low, high)),
        ("Difference", to_qimage(difference, -extent, extent, diverging=True)),
    ]
    scale = 2
    vw, vh = original.shape[1] * scale, original.shape[0] * scale
    caption = ("Panel: RadEdit.ui drawn by Qt offscreen (CTK/MRML widgets as their Qt bases). Views: a real edit "
               "with the bundled demo model (tiny) by the module's logic. Not a Slicer screen capture.")
    width = panel_image.width() + 3 * (vw + 8) + 16
    height = max(panel_image.height(), vh + 28) + 40
    canvas = QtGui.QImage(width, height, QtGui.QImage.Format_RGB888)
    canvas.fill(QtGui.QColor(40, 40, 40))
    painter = QtGui.QPainter(canvas)
    painter.drawImage(0, 0, panel_image)
    painter.setPen(QtGui.QColor(230, 230, 230))
    x = panel_image.width() + 8
    for title, image in views:
        painter.drawText(x, 18, title)
        painter.drawImage(QtCore.QRect(x, 26, vw, vh), image)
        x += vw + 8
    painter.setPen(QtGui.QColor(180, 180, 180))
    painter.drawText(QtCore.QRect(8, height - 36, width - 16, 32), QtCore.Qt.TextWordWrap, caption)
    painter.end()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not canvas.save(str(out)):
        raise OSError(f"could not write {out}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODULE_DIR / "Resources" / "Screenshots" / "RadEdit.png")
    parser.add_argument("--steps", type=int, default=30, help="editing steps of the demo model")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        data = run_edit(Path(work), args.steps)
        render(data, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
