"""What the module's panel shows, decided from the parameter node and the segmentation alone.

Every decision of the panel is a function here, of the parameter node (any
object with the fields of ``RadEditParameterNode``) and the MRML nodes it
points to: which segments are listed and checked, the masks' pixel counts
and when to recompute them, whether Apply is enabled, what a worker's
outcome means.  ``RadEdit.py`` only mirrors the answers into Qt widgets;
the tests call these functions on the ``slicer-core`` wheel.

The two Qt helpers at the end take the ``qt`` namespace as an argument
(Slicer's PythonQt ``qt``, or PyQt5's classes in the tests), so this file
imports no Qt and the same item-building code runs in both.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from .environment import EXTERNAL_SETUP
from .mrml import SegmentMasks, masks_from_arrays, segment_names


@dataclass(frozen=True)
class SegmentRow:
    """One segment as both lists show it."""

    segment_id: str
    name: str
    edit: bool  # checked in "Edit segments"
    keep: bool  # checked in "Keep segments"


def segment_rows(parameters) -> list[SegmentRow]:
    """The segments of the chosen segmentation, in display order, with their check states."""
    segmentation = getattr(parameters, "segmentation", None) if parameters is not None else None
    if segmentation is None:
        return []
    edit, keep = set(parameters.editSegmentIds), set(parameters.keepSegmentIds)
    return [SegmentRow(sid, name, sid in edit, sid in keep) for sid, name in segment_names(segmentation)]


def chosen_after_toggle(rows: Sequence[SegmentRow], which: str, segment_id: str, checked: bool) -> list[str]:
    """The edit (``which="edit"``) or keep segment IDs after the user (un)checked one, in display order."""
    chosen = {r.segment_id for r in rows if getattr(r, which)}
    chosen = chosen | {segment_id} if checked else chosen - {segment_id}
    return [r.segment_id for r in rows if r.segment_id in chosen]


def missing_inputs(parameters) -> list[str]:
    """What the user still has to choose before an edit can start (empty: nothing)."""
    if parameters is None:
        return ["a parameter node"]
    missing = []
    if not parameters.inputVolume:
        missing.append("the input volume")
    if not parameters.segmentation:
        missing.append("a segmentation")
    listed = {r.segment_id for r in segment_rows(parameters)}
    if not [s for s in parameters.editSegmentIds if s in listed]:
        missing.append("at least one edit segment")
    if not (parameters.prompt or "").strip():
        missing.append("a prompt")
    return missing


def apply_enabled(parameters, busy: bool) -> tuple[bool, str]:
    """(enabled, tooltip) of the Apply button; ``busy``: an edit, check or export is running."""
    missing = missing_inputs(parameters)
    if missing:
        return False, "Choose " + ", ".join(missing)
    if busy:
        return False, "Wait for the running task (or cancel it)"
    return True, "Edit the input volume in the background"


def _segment_stamp(segmentation_node, segment_id: str) -> tuple:
    """Modification times of a segment and of its source representation (what painting changes)."""
    segmentation = segmentation_node.GetSegmentation()
    segment = segmentation.GetSegment(segment_id)
    if segment is None:
        return (segment_id, None)
    source = segment.GetRepresentation(segmentation.GetSourceRepresentationName())
    return (segment_id, segment.GetMTime(), None if source is None else source.GetMTime())


def mask_key(parameters) -> tuple | None:
    """What the masks depend on: it changes when a chosen segment is painted or removed (or a
    segment sharing its labelmap layer is painted), when the choice changes, or when the image
    or its geometry changes; nothing else (a new prompt, another guidance) changes it.  ``None``: there is nothing to compute."""
    if parameters is None or not parameters.inputVolume or not parameters.segmentation:
        return None
    volume, segmentation = parameters.inputVolume, parameters.segmentation
    image = volume.GetImageData()
    return (
        volume.GetID(),
        volume.GetMTime(),
        None if image is None else image.GetMTime(),
        segmentation.GetID(),
        tuple(parameters.editSegmentIds),
        tuple(parameters.keepSegmentIds),
        tuple(_segment_stamp(segmentation, s) for s in (*parameters.editSegmentIds, *parameters.keepSegmentIds)),
    )


def masks_text(masks: SegmentMasks | None, problem: str | None = None, computing: bool = False) -> str:
    """The masks line of the panel (``computing``: the masks of the current choice are being computed)."""
    if computing:
        return "Computing masks..."
    if problem:
        return problem
    if masks is None:
        return "Choose the input volume, the segmentation and at least one edit segment."
    text = f"Edit: {masks.edit_pixels} px, keep: {masks.keep_pixels} px."
    if masks.overlap_pixels:
        text += f" {masks.overlap_pixels} px are in both an edit and a keep segment: they are kept (keep wins)."
    return text


@dataclass(frozen=True)
class Outcome:
    """What a finished worker run means for the panel."""

    kind: str  # "done" | "error" | "cancelled"
    status: str  # the status line
    error: str | None = None  # shown in an error dialog


def edit_outcome(state: str, result: dict[str, Any] | None, error_message: str | None) -> Outcome:
    if state == "done":
        result = result or {}
        return Outcome(
            "done", f"Done: {result.get('changed_pixels', '?')} pixels changed in {result.get('seconds', '?')} s."
        )
    if state == "cancelled":
        return Outcome("cancelled", "Cancelled; nothing was written.")
    return Outcome("error", "The edit failed.", error_message or "the RadEdit worker stopped without a result")


def environment_text(info: dict[str, Any] | None, problem: str | None = None, mode: str | None = None) -> str:
    """The Settings section's line after a probe: the facts, or why the worker is not configured
    and what sets it up in this ``mode`` ("slicer" or "external")."""
    if problem:
        text = "Not configured: " + problem
        if mode == "external":
            text += "; " + EXTERNAL_SETUP
        elif mode == "slicer":
            text += "; press 'Install dependencies'"
        return text
    if info is None:
        return "Checking the environment..."
    return "radedit_core {version}, torch {torch}, CUDA {cuda} ({python})".format(
        version=info.get("version"),
        torch=info.get("torch") or "missing",
        cuda="available" if info.get("cuda") else "not available",
        python=info.get("executable"),
    )


# -- Qt mirrors (qt passed in) ---------------------------------------------------------


def segment_item(qt, row: SegmentRow, which: str):
    """A checkable list item for one segment.

    Qt draws and toggles a check box only for an item that has check-state
    data, and a new item has none (it only reads back Unchecked): so the
    state is always set after the flags, as Slicer's own code does.
    """
    item = qt.QListWidgetItem(row.name)
    item.setData(qt.Qt.UserRole, row.segment_id)
    item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsEnabled)
    item.setCheckState(qt.Qt.Checked if getattr(row, which) else qt.Qt.Unchecked)
    return item


def mirror_check_state(qt, item, checked: bool) -> None:
    """Set an existing item's check state (no itemChanged signal when it already matches)."""
    state = qt.Qt.Checked if checked else qt.Qt.Unchecked
    if item.data(qt.Qt.CheckStateRole) is None or item.checkState() != state:
        item.setCheckState(state)


class MaskCache:
    """The masks of the current choice, recomputed only when :func:`mask_key` changes.

    Computing them has two halves.  ``take(volume, segmentation, edit_ids,
    keep_ids)`` is the logic's ``takeSegmentArrays``: it reads MRML (not
    thread-safe), so it runs on the caller's thread (the GUI's) and only
    copies the segments' labelmap arrays.  ``finish(arrays)`` makes the
    masks from those copies (:func:`mrml.masks_from_arrays`: pure numpy).
    :meth:`get` runs both at once (scripts, the self-test); the panel calls
    :meth:`request`, which runs ``finish`` in a background thread, and polls
    :meth:`poll` from a QTimer.  A problem either half raises (no edit
    segment painted, ...) is kept as the text to show, like a result.
    """

    def __init__(self, take, finish=masks_from_arrays):
        self.take = take
        self.finish = finish
        self.key = None
        self.masks: SegmentMasks | None = None
        self.problem: str | None = None
        self.computed = 0  # how many times the segments were taken (tests: typing a prompt takes none)
        self._pending: tuple[tuple, Future] | None = None  # (key, the background finish)
        self._executor: ThreadPoolExecutor | None = None

    @property
    def computing(self) -> bool:
        """A background computation is running (maybe for a key that is no longer current)."""
        return self._pending is not None

    def current(self, parameters) -> bool:
        """Whether the cached masks are those of ``parameters`` now."""
        return self.key is not None and mask_key(parameters) == self.key

    def _take(self, parameters):
        """(key, arrays, problem): the MRML half, on this thread."""
        self.computed += 1
        try:
            arrays, problem = (
                self.take(
                    parameters.inputVolume,
                    parameters.segmentation,
                    list(parameters.editSegmentIds),
                    list(parameters.keepSegmentIds),
                ),
                None,
            )
        except ValueError as exc:  # MaskProblem and the one-slice check: words for the user
            arrays, problem = None, str(exc)
        # Taken after the export: converting a representation for it must not look like a paint.
        return mask_key(parameters), arrays, problem

    def _settle(self, key, masks, problem) -> None:
        self.key, self.masks, self.problem = key, masks, problem

    def _clear(self) -> None:
        self._settle(None, None, None)
        self._pending = None  # a running computation finishes unseen

    def get(self, parameters) -> tuple[SegmentMasks | None, str | None]:
        """The masks of ``parameters``, both halves on this thread where the key changed."""
        key = mask_key(parameters)
        if key is None:
            self._clear()
            return None, None
        if key != self.key:
            self._pending = None  # what runs in the background is not needed any more
            key, arrays, problem = self._take(parameters)
            masks = None
            if arrays is not None:
                try:
                    masks = self.finish(arrays)
                except ValueError as exc:
                    problem = str(exc)
            self._settle(key, masks, problem)
        return self.masks, self.problem

    def request(self, parameters) -> bool:
        """Start computing the masks of ``parameters`` unless they are cached or being computed.

        The MRML half runs here, the numeric half in a background thread (one
        worker: requests queue).  Returns whether a result is pending, which
        :meth:`poll` settles; a problem the MRML half finds settles at once.
        """
        key = mask_key(parameters)
        if key is None:
            self._clear()
            return False
        if key == self.key:
            self._pending = None  # cached: what runs in the background is for an older key
            return False
        if self._pending is not None and self._pending[0] == key:
            return True
        key, arrays, problem = self._take(parameters)
        if arrays is None:
            self._settle(key, None, problem)
            self._pending = None
            return False
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="RadEditMasks")
        self._pending = (key, self._executor.submit(self.finish, arrays))
        return True

    def poll(self, parameters) -> bool:
        """Settle a finished background computation; True while the masks of ``parameters`` are being computed.

        Never blocks.  A result for a key that is no longer current (the user
        painted again meanwhile) is dropped, and the masks of the current
        key are requested.
        """
        if self._pending is not None:
            key, future = self._pending
            if not future.done():
                return True
            self._pending = None
            if key == mask_key(parameters):
                try:
                    self._settle(key, future.result(), None)
                except ValueError as exc:
                    self._settle(key, None, str(exc))
        if mask_key(parameters) is None or self.current(parameters):
            return False
        return self.request(parameters)

    def shutdown(self) -> None:
        """Stop the background thread (module cleanup); a running computation finishes unseen."""
        self._pending = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
