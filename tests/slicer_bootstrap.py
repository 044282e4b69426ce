"""A headless Slicer core for tests: the ``slicer-core`` wheel, bootstrapped.

The wheel gives the ``slicer`` package with the MRML scene, nodes and the
module logics, but no application: nothing registers the logics on a scene.
This does what ``qSlicerCoreApplication`` does at start-up for the pieces the
RadEdit module uses (the order follows KitwareMedical's trame-slicer):

1. a scene, with the default crosshair node,
2. the application logic on that scene, and its colour logic with the
   default colour tables (labelmap exports look them up),
3. the segmentations and subject hierarchy logics, given the scene and the
   application logic and registered on it by name.

Importing this module imports ``slicer``: where the wheel is missing the tests
fail with the import error (CI installs it; they must not silently skip).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import slicer  # noqa: F401 - the slicer-core wheel; an ImportError here is a test failure
import vtk
from vtk.util import numpy_support

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "RadEditSlicer"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))


@dataclass
class SlicerCore:
    scene: object
    app_logic: object
    segmentations_logic: object
    subject_hierarchy_logic: object

    def clear(self) -> None:
        self.scene.Clear(False)
        # Slicer's scene always has its subject hierarchy (the Data module's tree).
        self.scene.GetSubjectHierarchyNode()


def _register(app_logic, scene, logic, name: str):
    logic.SetMRMLScene(scene)
    logic.SetMRMLApplicationLogic(app_logic)
    app_logic.SetModuleLogic(name, logic)
    return logic


def bootstrap() -> SlicerCore:
    out = vtk.vtkOutputWindow()
    # VTK warnings go to stderr (pytest shows them on failure) instead of a window.
    out.SetDisplayModeToAlwaysStdErr()
    vtk.vtkOutputWindow.SetInstance(out)

    scene = slicer.vtkMRMLScene()
    crosshair = slicer.vtkMRMLCrosshairNode()
    crosshair.SetCrosshairName("default")
    scene.AddNode(crosshair)

    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    color_logic = app_logic.GetColorLogic()
    color_logic.SetMRMLScene(scene)
    color_logic.AddDefaultColorNodes()
    app_logic.SetModuleLogic("Colors", color_logic)

    segmentations = _register(app_logic, scene, slicer.vtkSlicerSegmentationsModuleLogic(), "Segmentations")
    subject_hierarchy = _register(app_logic, scene, slicer.vtkSlicerSubjectHierarchyModuleLogic(), "SubjectHierarchy")
    scene.GetSubjectHierarchyNode()
    return SlicerCore(scene, app_logic, segmentations, subject_hierarchy)


# -- scene building helpers (what loading a DICOM CXR and painting would give) ----------


def matrix(values) -> vtk.vtkMatrix4x4:
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(values[r][c]))
    return m


def add_cxr_volume(scene, array: np.ndarray, name: str, spacing=(0.2, 0.2, 1.0), origin=(0.0, 0.0, 0.0), direction=None):
    """A scalar volume as Slicer's DICOM plugin makes a radiograph (IJK: columns, rows, slices).

    ``array`` is (rows, columns) for a one-slice volume, or (slices, rows, columns).
    """
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    slices, rows, cols = array.shape
    image = vtk.vtkImageData()
    image.SetDimensions(cols, rows, slices)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetAndObserveImageData(image)
    node.SetSpacing(*spacing)
    node.SetOrigin(*origin)
    if direction is not None:
        node.SetIJKToRASDirectionMatrix(matrix(direction))
    node.CreateDefaultDisplayNodes()
    return node


def paint_segment(segmentation_node, volume_node, name: str, mask2d: np.ndarray, color=(1.0, 0.0, 0.0)) -> str:
    """Add a segment whose binary labelmap is ``mask2d`` on the volume's grid.

    The Segment Editor paints into an oriented image on the source volume's
    geometry; this writes such an image directly.
    """
    rows, cols = mask2d.shape
    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetDimensions(cols, rows, 1)
    labelmap.GetPointData().SetScalars(
        numpy_support.numpy_to_vtk(np.ascontiguousarray(mask2d.astype(np.uint8)).ravel(), deep=True)
    )
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    labelmap.SetImageToWorldMatrix(ijk_to_ras)
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    segment_id = segmentation_node.GetSegmentation().AddEmptySegment("", name, color)
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        labelmap, segmentation_node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE
    )
    return segment_id


# -- loading a DICOM radiograph as Slicer's DICOM plugin does ---------------------------------


def load_dicom_volume(scene, path: Path, name: str):
    """The one-slice volume Slicer's DICOM scalar volume plugin makes of a radiograph.

    ITK (GDCM) reads the file; its LPS geometry becomes RAS, and the node
    remembers the instance UID as the DICOM plugin records it.
    """
    import pydicom
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)  # (1, rows, columns)
    lps = np.array(image.GetDirection()).reshape(3, 3)
    ras = np.diag([-1.0, -1.0, 1.0]) @ lps
    direction = [[*ras[r], 0.0] for r in range(3)] + [[0.0, 0.0, 0.0, 1.0]]
    origin = np.diag([-1.0, -1.0, 1.0]) @ np.array(image.GetOrigin())
    node = add_cxr_volume(scene, array, name, spacing=image.GetSpacing(), origin=tuple(origin), direction=direction)
    node.SetAttribute("DICOM.instanceUIDs", str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID))
    return node
