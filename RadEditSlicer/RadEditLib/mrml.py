"""MRML plumbing of the module: segments -> masks, volumes <-> NRRD files.

Uses only MRML/VTK classes (no Qt, no ``slicer.util``, no ``slicer.modules``),
with the scene and the segmentations logic passed in, so the same code runs
inside Slicer and against the ``slicer-core`` wheel in headless tests.
Files are written and read with Slicer's own volume storage node, so the
worker sees exactly the grid (IJK -> LPS) that Slicer holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import vtk
from vtk.util import numpy_support

import slicer

#: Node attributes the module sets on its result volumes.
ATTR_PREFIX = "RadEdit."
ATTR_SOURCE_VOLUME = ATTR_PREFIX + "SourceVolumeID"
ATTR_JOB_DIR = ATTR_PREFIX + "JobDirectory"
ATTR_INPUT = ATTR_PREFIX + "Input"
ATTR_OUTPUT = ATTR_PREFIX + "Output"
ATTR_SIDECAR = ATTR_PREFIX + "Provenance"
ATTR_EDIT_MASK = ATTR_PREFIX + "EditMask"
ATTR_KEEP_MASK = ATTR_PREFIX + "KeepMask"
ATTR_PROMPT = ATTR_PREFIX + "Prompt"
ATTR_DIFFERENCE = ATTR_PREFIX + "DifferenceVolumeID"


class MaskProblem(ValueError):
    """The chosen segments cannot make the masks (message for the user)."""


def volume_array(volume_node) -> np.ndarray:
    """Voxels as a (slices, rows, columns) array, a copy."""
    image = volume_node.GetImageData()
    if image is None or image.GetPointData().GetScalars() is None:
        raise ValueError(f"volume '{volume_node.GetName()}' has no image data")
    dims = image.GetDimensions()
    scalars = image.GetPointData().GetScalars()
    if scalars.GetNumberOfComponents() != 1:
        raise ValueError(
            f"volume '{volume_node.GetName()}' has {scalars.GetNumberOfComponents()} components per voxel; "
            "RadEdit edits grayscale images"
        )
    return numpy_support.vtk_to_numpy(scalars).reshape(dims[2], dims[1], dims[0]).copy()


def single_slice(volume_node) -> np.ndarray:
    """The 2D image of a one-slice volume (a chest X-ray loaded from DICOM)."""
    array = volume_array(volume_node)
    if array.shape[0] != 1:
        raise ValueError(
            f"volume '{volume_node.GetName()}' has {array.shape[0]} slices; RadEdit edits single "
            "2D images (one-slice volumes, as Slicer loads a radiograph)"
        )
    return array[0]


def _image_data_like(reference_node, array: np.ndarray) -> vtk.vtkImageData:
    dims = reference_node.GetImageData().GetDimensions()
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    if tuple(array.shape) != (dims[2], dims[1], dims[0]):
        raise ValueError(f"array {array.shape} does not fit the volume's grid {(dims[2], dims[1], dims[0])}")
    image = vtk.vtkImageData()
    image.SetDimensions(dims)
    vtk_array = numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True)
    image.GetPointData().SetScalars(vtk_array)
    return image


def add_volume_like(scene, reference_node, array: np.ndarray, name: str, class_name="vtkMRMLScalarVolumeNode"):
    """A new volume on ``reference_node``'s grid holding ``array``."""
    node = scene.AddNewNodeByClass(class_name, scene.GenerateUniqueName(name))
    node.CopyOrientation(reference_node)
    node.SetAndObserveImageData(_image_data_like(reference_node, array))
    node.CreateDefaultDisplayNodes()
    return node


def write_volume(volume_node, path: str | Path) -> Path:
    """Write with Slicer's storage node (NRRD: LPS space directions, as ITK reads them)."""
    path = Path(path)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(1)
    if not storage.WriteData(volume_node):
        raise OSError(f"could not write '{volume_node.GetName()}' to {path}")
    return path


def write_array_like(scene, reference_node, array: np.ndarray, path: str | Path, labelmap: bool = False) -> Path:
    """Write ``array`` on ``reference_node``'s grid (a temporary node, removed after)."""
    class_name = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(class_name, "__RadEditTemp__")
    try:
        node.CopyOrientation(reference_node)
        node.SetAndObserveImageData(_image_data_like(reference_node, array))
        return write_volume(node, path)
    finally:
        scene.RemoveNode(node)


def read_volume(scene, path: str | Path, name: str):
    """Load a volume file into a new node that keeps no link to the file."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    # Force the reader to keep a one-slice volume single-file (no series guess).
    storage.SetSingleFile(1)
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        raise OSError(f"could not read the edited image {path}")
    node.CreateDefaultDisplayNodes()
    return node


def _elements(matrix) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def ijk_to_ras(volume_node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def same_grid(a, b, tol: float = 1e-5) -> bool:
    """Same voxel centres: dimensions, origin and the axes that have more than one voxel.

    The slice axis of a one-slice volume places nothing (k is always 0), and
    Slicer's reader rebuilds it right-handed, so it is not compared there.
    """
    da = a.GetImageData().GetDimensions() if a.GetImageData() else None
    db = b.GetImageData().GetDimensions() if b.GetImageData() else None
    if da is None or da != db:
        return False
    columns = [axis for axis in range(3) if da[axis] > 1] + [3]
    ma, mb = ijk_to_ras(a)[:3, columns], ijk_to_ras(b)[:3, columns]
    return bool(np.allclose(ma, mb, atol=tol, rtol=0))


# -- segments -> masks ----------------------------------------------------------------


@dataclass
class SegmentMasks:
    edit: np.ndarray  # bool (rows, columns) on the volume's grid
    keep: np.ndarray | None

    @property
    def edit_pixels(self) -> int:
        return int(np.count_nonzero(self.edit))

    @property
    def keep_pixels(self) -> int:
        return 0 if self.keep is None else int(np.count_nonzero(self.keep))

    @property
    def overlap(self) -> np.ndarray:
        if self.keep is None:
            return np.zeros_like(self.edit)
        return self.edit & self.keep

    @property
    def overlap_pixels(self) -> int:
        return int(np.count_nonzero(self.overlap))

    def summary(self) -> str:
        text = f"edit {self.edit_pixels} px, keep {self.keep_pixels} px"
        if self.overlap_pixels:
            text += f"; {self.overlap_pixels} px in both: kept (keep wins)"
        return text


def segment_names(segmentation_node) -> list[tuple[str, str]]:
    """(segment ID, name) of every segment, in display order."""
    segmentation = segmentation_node.GetSegmentation()
    return [
        (segmentation.GetNthSegmentID(i), segmentation.GetNthSegment(i).GetName())
        for i in range(segmentation.GetNumberOfSegments())
    ]


def segment_mask(scene, segmentations_logic, segmentation_node, segment_ids: Sequence[str], reference_volume) -> np.ndarray:
    """Union of ``segment_ids`` as a bool array on ``reference_volume``'s own grid.

    Each segment is resampled on its own (overlapping segments stay whole)
    onto the volume's grid: directly from its labelmap where it can
    (:func:`_labelmap_on_grid`), else exported with the segmentations logic,
    which also handles transforms and other source representations.
    """
    segmentation = segmentation_node.GetSegmentation()
    mask = np.zeros(single_slice(reference_volume).shape, dtype=bool)
    for segment_id in segment_ids:
        if segmentation.GetSegment(segment_id) is None:
            raise MaskProblem(f"segment '{segment_id}' is not in '{segmentation_node.GetName()}'")
        direct = _labelmap_on_grid(segmentation_node, segment_id, reference_volume)
        if direct is not None:
            mask |= direct
            continue
        before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__RadEditMask__")
        try:
            ids = vtk.vtkStringArray()
            ids.InsertNextValue(segment_id)
            if not segmentations_logic.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap, reference_volume):
                raise MaskProblem(f"segment '{segmentation.GetSegment(segment_id).GetName()}' could not be exported")
            if not same_grid(labelmap, reference_volume):
                raise MaskProblem(
                    f"segment '{segmentation.GetSegment(segment_id).GetName()}' did not come out on the "
                    "volume's grid"
                )
            mask |= single_slice(labelmap) != 0
        finally:
            _remove_export_leftovers(scene, labelmap, before)
    return mask


def _labelmap_on_grid(segmentation_node, segment_id: str, reference_volume) -> np.ndarray | None:
    """The segment's binary labelmap resampled onto the volume's grid without scene nodes, or None.

    What ``ExportSegmentsToLabelmapNode`` does for the common case (a
    labelmap segment painted on the volume's own grid, as the Segment Editor
    does, neither node under a transform: only the extent differs), with the
    same resampler (``vtkOrientedImageDataResample``) but no
    temporary volume, display node and colour table in the scene: about a
    quarter of the time, and no scene events for other modules to answer.
    Segments in a shared layer are told apart by their label value.  Other
    cases (another grid, a closed-surface source, transforms) return None:
    the export handles them.
    """
    if segmentation_node.GetParentTransformNode() is not None or reference_volume.GetParentTransformNode() is not None:
        return None
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    labelmap = segment.GetRepresentation(slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName())
    if labelmap is None or labelmap.GetPointData().GetScalars() is None:
        return None
    matrix = vtk.vtkMatrix4x4()
    reference_volume.GetIJKToRASMatrix(matrix)
    painted = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(painted)
    if not np.allclose(_elements(painted), _elements(matrix), atol=1e-6, rtol=0):
        return None  # painted on another grid: the export's resampling is the reference
    reference = slicer.vtkOrientedImageData()
    reference.SetExtent(reference_volume.GetImageData().GetExtent())
    reference.SetImageToWorldMatrix(matrix)
    resampled = slicer.vtkOrientedImageData()
    if not slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference, resampled, False, True
    ):
        return None
    if resampled.GetExtent() != reference.GetExtent():
        return None
    dims = resampled.GetDimensions()
    values = numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0])
    return values[0] == segment.GetLabelValue()


def _remove_export_leftovers(scene, labelmap, before: set) -> None:
    """Remove the temporary labelmap and what the export made for it.

    Removing a node leaves its display node and the colour table the export
    created in the scene; nodes that existed before (a colour table the user
    already had) are kept.
    """
    made = [
        scene.GetNthNode(i)
        for i in range(scene.GetNumberOfNodes())
        if scene.GetNthNode(i).GetID() not in before
    ]
    display_ids = {labelmap.GetNthDisplayNodeID(i) for i in range(labelmap.GetNumberOfDisplayNodes())}
    for node in made:
        if node is labelmap or node.GetID() in display_ids or node.IsA("vtkMRMLColorTableNode"):
            scene.RemoveNode(node)


def masks_from_segments(
    scene,
    segmentations_logic,
    segmentation_node,
    edit_ids: Sequence[str],
    keep_ids: Sequence[str],
    reference_volume,
) -> SegmentMasks:
    if segmentation_node is None:
        raise MaskProblem("choose a segmentation that holds the edit (and keep) segments")
    if not edit_ids:
        raise MaskProblem("choose at least one edit segment: the region to change")
    both = sorted(set(edit_ids) & set(keep_ids))
    if both:
        names = [segmentation_node.GetSegmentation().GetSegment(s).GetName() for s in both]
        raise MaskProblem(f"segments {names} are chosen both to edit and to keep; choose each once")
    edit = segment_mask(scene, segmentations_logic, segmentation_node, edit_ids, reference_volume)
    if not edit.any():
        raise MaskProblem("the edit segments are empty on the volume's grid: paint the region to change")
    keep = None
    if keep_ids:
        keep = segment_mask(scene, segmentations_logic, segmentation_node, keep_ids, reference_volume)
    return SegmentMasks(edit=edit, keep=keep)


# -- names -------------------------------------------------------------------------------


def result_name(source_name: str, prompt: str, limit: int = 48) -> str:
    """``"<source> RadEdit: <prompt>"``, the prompt shortened at a word boundary."""
    prompt = re.sub(r"\s+", " ", prompt).strip().rstrip(".")
    if len(prompt) > limit:
        cut = prompt[:limit].rsplit(" ", 1)[0]
        prompt = (cut or prompt[:limit]) + "…"
    return f"{source_name} RadEdit: {prompt}"


def series_description(prompt: str, limit: int = 64) -> str:
    """A DICOM SeriesDescription (LO, at most 64 characters)."""
    text = "RadEdit: " + re.sub(r"\s+", " ", prompt).strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def difference_volume(scene, source_node, edited_node, name: str | None = None):
    """``edited - source`` as float32 on the source's grid, shown with a diverging map."""
    source = volume_array(source_node).astype(np.float32)
    edited = volume_array(edited_node).astype(np.float32)
    diff = edited - source
    node = add_volume_like(scene, source_node, diff, name or f"{edited_node.GetName()} difference")
    display = node.GetDisplayNode()
    extent = float(np.abs(diff).max()) or 1.0
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(2.0 * extent, 0.0)
    for color_id in (
        "vtkMRMLColorTableNodeFileDivergingBlueRed.txt",
        "vtkMRMLProceduralColorNodeRedGreenBlue",
    ):
        if scene.GetNodeByID(color_id) is not None:
            display.SetAndObserveColorNodeID(color_id)
            break
    return node


def place_beside(scene, source_node, new_node) -> None:
    """Put ``new_node`` in the source's study/series folder of the Data module."""
    sh = scene.GetSubjectHierarchyNode()
    if sh is None:
        return
    source_item = sh.GetItemByDataNode(source_node)
    new_item = sh.GetItemByDataNode(new_node)
    if source_item and new_item:
        sh.SetItemParent(new_item, sh.GetItemParent(source_item))
