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


def _grayscale_image(volume_node):
    """The volume's vtkImageData, checked: it has voxels, one component each."""
    image = volume_node.GetImageData()
    if image is None or image.GetPointData().GetScalars() is None:
        raise ValueError(f"volume '{volume_node.GetName()}' has no image data")
    scalars = image.GetPointData().GetScalars()
    if scalars.GetNumberOfComponents() != 1:
        raise ValueError(
            f"volume '{volume_node.GetName()}' has {scalars.GetNumberOfComponents()} components per voxel; "
            "RadEdit edits grayscale images"
        )
    return image


def volume_array(volume_node) -> np.ndarray:
    """Voxels as a (slices, rows, columns) array, a copy."""
    image = _grayscale_image(volume_node)
    dims = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0]).copy()


def _one_slice(volume_node, slices: int) -> None:
    if slices != 1:
        raise ValueError(
            f"volume '{volume_node.GetName()}' has {slices} slices; RadEdit edits single "
            "2D images (one-slice volumes, as Slicer loads a radiograph)"
        )


def single_slice(volume_node) -> np.ndarray:
    """The 2D image of a one-slice volume (a chest X-ray loaded from DICOM)."""
    array = volume_array(volume_node)
    _one_slice(volume_node, array.shape[0])
    return array[0]


def single_slice_extent(volume_node) -> tuple[int, int, int, int, int, int]:
    """The IJK extent of a one-slice grayscale volume, checked as :func:`single_slice` checks it
    (same ``ValueError``), without copying its voxels."""
    image = _grayscale_image(volume_node)
    _one_slice(volume_node, image.GetDimensions()[2])
    return tuple(image.GetExtent())


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


@dataclass(frozen=True, eq=False)
class SegmentLabelmap:
    """One segment's labelmap voxels as copied from MRML, in the volume's IJK index space."""

    name: str
    voxels: np.ndarray  # (slices, rows, columns) of the labelmap's scalar type; a copy, shared by segments of one layer
    extent: tuple[int, int, int, int, int, int]  # (i0, i1, j0, j1, k0, k1) of ``voxels`` on the volume's IJK grid
    label: int | None  # the segment's value in its (maybe shared) layer; None: every non-zero voxel (an export)


@dataclass(frozen=True, eq=False)
class SegmentArrays:
    """What the masks are made of, taken from MRML: copies of arrays and index extents, nothing computed.

    :func:`take_segment_arrays` makes it on the GUI thread (MRML and VTK
    objects are not thread-safe); :func:`masks_from_arrays` turns it into
    masks in any thread, as it holds no MRML or VTK object.
    """

    extent: tuple[int, int, int, int, int, int]  # the volume's IJK extent (one slice: k0 == k1)
    edit_ids: tuple[str, ...]
    keep_ids: tuple[str, ...]
    segments: dict[str, SegmentLabelmap]  # every chosen segment (none when no edit segment is chosen)


def take_segment_arrays(
    scene,
    segmentations_logic,
    segmentation_node,
    edit_ids: Sequence[str],
    keep_ids: Sequence[str],
    reference_volume,
) -> SegmentArrays:
    """The MRML half of the masks: copy each chosen segment's labelmap voxels, nothing more.

    A segment painted on the volume's grid (the Segment Editor's default;
    neither node under a transform) is copied straight from its binary
    labelmap, with its extent in the volume's IJK index space and its label
    value (segments may share a layer); segments of one layer share one copy.
    Any other segment (painted on another grid, a closed-surface source, a
    transform) is exported onto the volume's grid with the segmentations
    logic through a temporary labelmap node, and that node's voxels copied.
    Raises :class:`MaskProblem` (no segmentation, a segment that is not in
    it or could not be exported) and ``ValueError`` (the volume is not a
    one-slice grayscale image).  Cropping, the union, keep-wins and the
    checks on the pixels are :func:`masks_from_arrays`'.
    """
    extent = single_slice_extent(reference_volume)
    if segmentation_node is None:
        raise MaskProblem("choose a segmentation that holds the edit (and keep) segments")
    edit_ids, keep_ids = tuple(edit_ids), tuple(keep_ids)
    segmentation = segmentation_node.GetSegmentation()
    segments: dict[str, SegmentLabelmap] = {}
    layers: list[tuple[object, np.ndarray]] = []  # (labelmap, its copy): one copy per shared layer
    chosen = dict.fromkeys((*edit_ids, *keep_ids)) if edit_ids else {}  # no edit segment: nothing to make
    for segment_id in chosen:
        segment = segmentation.GetSegment(segment_id)
        if segment is None:
            raise MaskProblem(f"segment '{segment_id}' is not in '{segmentation_node.GetName()}'")
        taken = _labelmap_on_grid(segmentation_node, segment, reference_volume, layers)
        if taken is None:
            taken = _exported(scene, segmentations_logic, segmentation_node, segment_id, reference_volume)
        segments[segment_id] = taken
    return SegmentArrays(extent, edit_ids, keep_ids, segments)


def _labelmap_on_grid(segmentation_node, segment, reference_volume, layers: list) -> SegmentLabelmap | None:
    """A copy of the segment's binary labelmap where it lies on the volume's grid, else None.

    On the same grid (the labelmap's image-to-world matrix is the volume's
    IJK-to-RAS) the labelmap's extent is a box in the volume's own index
    space: what ``ExportSegmentsToLabelmapNode`` would resample is then a
    crop or a zero pad of it, which :func:`masks_from_arrays` does on the
    copy, with no temporary volume, display node and colour table in the
    scene and no scene events for other modules to answer.
    """
    if segmentation_node.GetParentTransformNode() is not None or reference_volume.GetParentTransformNode() is not None:
        return None
    labelmap = segment.GetRepresentation(slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName())
    if labelmap is None or labelmap.GetPointData().GetScalars() is None:
        return None
    matrix = vtk.vtkMatrix4x4()
    reference_volume.GetIJKToRASMatrix(matrix)
    painted = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(painted)
    if not np.allclose(_elements(painted), _elements(matrix), atol=1e-6, rtol=0):
        return None  # painted on another grid: the export's resampling is the reference
    scalars = labelmap.GetPointData().GetScalars()
    if scalars.GetNumberOfComponents() != 1:
        return None
    voxels = next((copy for layer, copy in layers if layer is labelmap), None)
    if voxels is None:
        i0, i1, j0, j1, k0, k1 = labelmap.GetExtent()
        voxels = numpy_support.vtk_to_numpy(scalars).reshape(k1 - k0 + 1, j1 - j0 + 1, i1 - i0 + 1).copy()
        layers.append((labelmap, voxels))
    return SegmentLabelmap(segment.GetName(), voxels, tuple(labelmap.GetExtent()), int(segment.GetLabelValue()))


def _exported(scene, segmentations_logic, segmentation_node, segment_id: str, reference_volume) -> SegmentLabelmap:
    """The segment exported onto the volume's grid by the segmentations logic (a temporary node)."""
    name = segmentation_node.GetSegmentation().GetSegment(segment_id).GetName()
    before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__RadEditMask__")
    try:
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        if not segmentations_logic.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap, reference_volume):
            raise MaskProblem(f"segment '{name}' could not be exported")
        if not same_grid(labelmap, reference_volume):
            raise MaskProblem(f"segment '{name}' did not come out on the volume's grid")
        return SegmentLabelmap(name, volume_array(labelmap), single_slice_extent(reference_volume), None)
    finally:
        _remove_export_leftovers(scene, labelmap, before)


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


def segment_on_grid(labelmap: SegmentLabelmap, extent: Sequence[int]) -> np.ndarray:
    """The segment as a bool (rows, columns) array on the one-slice grid ``extent``.

    The labelmap's voxels are cropped to the grid, the rest zero-padded (the
    nearest-neighbour resampling of an image already on the grid), on the
    grid's slice, and compared with the segment's label value (non-zero for
    an exported labelmap).  Pure numpy: runs in any thread.
    """
    g, e = tuple(extent), labelmap.extent
    mask = np.zeros((g[3] - g[2] + 1, g[1] - g[0] + 1), dtype=bool)
    i0, i1, j0, j1 = max(g[0], e[0]), min(g[1], e[1]), max(g[2], e[2]), min(g[3], e[3])
    if not e[4] <= g[4] <= e[5] or i0 > i1 or j0 > j1:
        return mask  # the labelmap does not reach the image
    voxels = labelmap.voxels[g[4] - e[4], j0 - e[2] : j1 - e[2] + 1, i0 - e[0] : i1 - e[0] + 1]
    mask[j0 - g[2] : j1 - g[2] + 1, i0 - g[0] : i1 - g[0] + 1] = (
        voxels != 0 if labelmap.label is None else voxels == labelmap.label
    )
    return mask


def masks_from_arrays(arrays: SegmentArrays) -> SegmentMasks:
    """The numeric half of the masks: edit and keep masks on the volume's grid from copied arrays.

    Each segment is placed on the grid on its own (:func:`segment_on_grid`:
    overlapping segments stay whole), the edit and keep segments are each
    united; where both cover a pixel, keep wins (:class:`SegmentMasks`).
    Holds no MRML or VTK object, so it runs in a background thread.
    Raises :class:`MaskProblem` with words for the user: no edit segment
    chosen, a segment chosen both to edit and to keep, edit segments with no
    painted pixel on the grid.
    """
    if not arrays.edit_ids:
        raise MaskProblem("choose at least one edit segment: the region to change")
    both = sorted(set(arrays.edit_ids) & set(arrays.keep_ids))
    if both:
        names = [arrays.segments[s].name for s in both]
        raise MaskProblem(f"segments {names} are chosen both to edit and to keep; choose each once")

    def union(ids: Sequence[str]) -> np.ndarray:
        mask = segment_on_grid(arrays.segments[ids[0]], arrays.extent)
        for segment_id in ids[1:]:
            mask |= segment_on_grid(arrays.segments[segment_id], arrays.extent)
        return mask

    edit = union(arrays.edit_ids)
    if not edit.any():
        raise MaskProblem("the edit segments are empty on the volume's grid: paint the region to change")
    return SegmentMasks(edit=edit, keep=union(arrays.keep_ids) if arrays.keep_ids else None)


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
