"""How long the Slicer module's mask computation holds the GUI thread (slicer-core, headless).

    PYTHONPATH=.:tests python benchmarks/slicer_masks_gui_thread.py [--rows 3000] [--columns 2500] [--repeats 15]

Two segments painted on the volume's grid as the Segment Editor leaves them
(an edit ellipse, a keep strip crossing it: two labelmap layers), on a
one-slice volume of the given size.  Prints, in milliseconds (median and
slowest of the repeats), the GUI thread's half (``takeSegmentArrays``:
copies of the labelmap arrays), the background half
(``mrml.masks_from_arrays``: cropping, unions, keep-wins, counts), and the
GUI thread's half when the segments are not on the volume's grid and go
through the segmentations logic's export.  The figures in the module's
docstring and docs/slicer.md come from this script.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import slicer_bootstrap as sb  # tests/: the slicer-core wheel, bootstrapped as the tests do

from RadEditLib import mrml
from RadEditLib.logic import RadEditCoreLogic


def timed(function, repeats: int) -> tuple[float, float, object]:
    """(median ms, slowest ms, last result)."""
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return 1000 * statistics.median(seconds), 1000 * max(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--columns", type=int, default=2500)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--whole", action="store_true", help="an edit segment as large as the image (a full-size labelmap)")
    args = parser.parse_args()

    core = sb.bootstrap()
    rows, cols = args.rows, args.columns
    volume = sb.add_cxr_volume(core.scene, np.zeros((rows, cols), np.int16), "CXR", spacing=(0.14, 0.14, 1.0))
    segmentation = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    r, c = np.ogrid[:rows, :cols]
    lung = ((r - rows * 0.45) / (rows * 0.3)) ** 2 + ((c - cols * 0.3) / (cols * 0.15)) ** 2 <= 1
    if args.whole:
        lung = ((r - rows / 2) / (rows / 2)) ** 2 + ((c - cols / 2) / (cols / 2)) ** 2 <= 1.2
    drain = np.zeros((rows, cols), bool)
    drain[rows // 5 : 4 * rows // 5, int(cols * 0.28) : int(cols * 0.28) + max(cols // 100, 2)] = True
    edit_id = sb.paint_segment(segmentation, volume, "lung", lung)
    keep_id = sb.paint_segment(segmentation, volume, "drain", drain)
    logic = RadEditCoreLogic(core.scene, core.segmentations_logic)

    take_ms, take_max, arrays = timed(lambda: logic.takeSegmentArrays(volume, segmentation, [edit_id], [keep_id]), args.repeats)
    finish_ms, finish_max, masks = timed(lambda: mrml.masks_from_arrays(arrays), args.repeats)
    assert np.array_equal(masks.edit, lung) and np.array_equal(masks.keep, drain)
    on_grid = mrml._labelmap_on_grid
    mrml._labelmap_on_grid = lambda *a: None  # every segment through ExportSegmentsToLabelmapNode
    try:
        export_ms, export_max, exported = timed(
            lambda: logic.takeSegmentArrays(volume, segmentation, [edit_id], [keep_id]), max(3, args.repeats // 3)
        )
    finally:
        mrml._labelmap_on_grid = on_grid
    assert np.array_equal(mrml.masks_from_arrays(exported).edit, lung)

    copied = sum({id(s.voxels): s.voxels.nbytes for s in arrays.segments.values()}.values()) / 1e6
    print(f"{rows} x {cols} image, 2 segments ({segmentation.GetSegmentation().GetNumberOfLayers()} labelmap layers, "
          f"{copied:.1f} MB copied), {masks.summary()}")
    print(f"GUI thread, segments on the volume's grid (takeSegmentArrays): median {take_ms:.1f} ms, slowest {take_max:.1f} ms")
    print(f"background thread (masks_from_arrays):                      median {finish_ms:.1f} ms, slowest {finish_max:.1f} ms")
    print(f"GUI thread, segments exported (not on the grid):            median {export_ms:.1f} ms, slowest {export_max:.1f} ms")


if __name__ == "__main__":
    main()
