"""Many edits (or generated images) in one run, on one process or many.

A batch is a list of items: one image with its masks and prompt, given
directly or as rows of a datalist (JSON or CSV).  The run

1. checks the parameters and every row before any work (a bad row stops the
   whole run with the datalist file, the row and the problem, and nothing is
   written);
2. gives each item a deterministic id and output path (``<output_dir>/<id>.png``
   or, for DICOM, the series folder ``<output_dir>/<id>/``, with the
   provenance sidecar ``<output_dir>/<id>.json``);
3. skips items that are already done: output and sidecar exist and the
   sidecar's ``batch.fingerprint`` (inputs, settings, model, dtype) equals this
   run's; a finished item from *other* settings is an error unless
   ``overwrite`` is set (results are never replaced silently);
4. shares the pending items out over the ``torch.distributed`` ranks when a
   process group is initialised (``pending[rank::world]``), each item on
   exactly one rank;
5. edits each rank's share in batches of ``batch_size`` images, one pipeline
   pass each (:meth:`radedit_core.workflow.RadEditor.edit_batch`): items are
   grouped by the settings a pass shares (:meth:`EditSettings.batch_key`)
   and their number of prompts, in datalist order within a group; with a
   compiled UNet the last, partial batch of a group is padded (its last
   image repeated, the repeats' results dropped), so the compiled shapes
   never change.  Batching changes float rounding only (an output may differ
   from a ``batch_size`` 1 run by one stored unit);
6. writes each output atomically (:func:`radedit_core.workflow.write_edit_result`:
   output first, sidecar last, so a sidecar means a whole output), item by
   item, so a run killed inside a batch resumes with exactly the items
   whose sidecars are missing;
7. gathers every rank's records and has rank 0 alone write the merged
   manifest (``manifest.json`` and ``manifest.csv``).

The item id names *what* is edited (image, masks, prompts and per-row
overrides); the run's settings say *how*.  Changing a prompt gives new items
beside the old ones; changing the steps of a finished run is a conflict.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from .._version import __version__
from ..errors import ConfigError, OutputError, RadEditError
from ..fileio import OutputGroup, check_run_files, check_writable
from ..imaging.mask_ref import parse_mask_ref
from ..provenance import header
from ..runlock import run_lock
from ..settings import BatchOptions, ModelOptions, bundle_name, coerce, is_missing, row_name
from .datalist import Problems, _errors_to_exception
from .distributed import Ranks, _rebuild, rank_device
from .items import Item, _canonical, edit_items, generate_fingerprint_settings, generate_items
from .manifest import (
    MANIFEST_CSV,
    MANIFEST_JSON,
    _conflict_message,
    _remove_leftovers,
    is_own_manifest,
    is_own_manifest_csv,
    item_state,
    write_manifest,
)
from .sizing import auto_batch_size

log = logging.getLogger("radedit.batch")

@dataclass
class BatchSummary:
    done: int
    skipped: int
    failed: int
    manifest: Path
    records: list[dict[str, Any]]

    def __str__(self) -> str:
        return f"{self.done} done, {self.skipped} skipped, {self.failed} failed; manifest {self.manifest}"


class _Batch:
    """What edit and generate runs share: checks, resume, sharding, manifest."""

    kind = "edit"

    def __init__(
        self,
        *,
        model: Any = "tiny",
        device: Any = "auto",
        dtype: Any = "auto",
        vae_dtype: Any = "float32",
        trust_remote_code: Any = False,
        offline: Any = None,
        compile: Any = False,
        output_dir: Any = "radedit-batch",
        overwrite: Any = False,
        progress: Any = False,
        unet_backend: Any = "torch",
        unet_wrapper: Callable[[Any], Any] | None = None,
        editor: Any = None,
    ):
        # Only stored here: run() checks them, so that every problem surfaces
        # the same way (a RadEditError from run), whoever constructs the job.
        self.params = dict(
            model=model, device=device, dtype=dtype, vae_dtype=vae_dtype, trust_remote_code=trust_remote_code,
            offline=offline, compile=compile, output_dir=output_dir, overwrite=overwrite, progress=progress,
            unet_backend=unet_backend,
        )  # fmt: skip
        self.unet_wrapper = unet_wrapper
        self.editor = editor
        self.ranks = Ranks()

    def _check_params(self) -> None:
        p = self.params
        self.model_options = ModelOptions.from_mapping(
            {k: None if is_missing(p[k]) else p[k] for k in ("model", "device", "dtype", "vae_dtype",
                                                             "trust_remote_code", "offline", "compile")},
            bundle_name,
            default_model="tiny",
        )  # fmt: skip
        self.model = self.model_options.model
        self.device = self.model_options.device
        if is_missing(p["output_dir"]):
            raise ConfigError("output_dir: an output folder is needed")
        self.output_dir = Path(str(p["output_dir"])).expanduser()
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise OutputError(f"{self.output_dir}: output_dir exists and is not a folder")
        check_writable(self.output_dir / MANIFEST_JSON, overwrite=True)
        self.overwrite = coerce("overwrite", p["overwrite"], "bool")
        self.progress = coerce("progress", p["progress"], "bool")
        backend = "torch" if is_missing(p["unet_backend"]) else str(p["unet_backend"]).strip().lower()
        if backend not in UNET_BACKENDS:
            raise ConfigError(f"unet_backend: must be one of {', '.join(UNET_BACKENDS)}, got {p['unet_backend']!r}")
        if self.unet_wrapper is not None and not callable(self.unet_wrapper):
            raise ConfigError(
                f"unet_wrapper: expected a function of the UNet module (a config expression), got {self.unet_wrapper!r}"
            )
        if backend == "tensorrt":
            if self.unet_wrapper is None:
                raise ConfigError(
                    "unet_backend tensorrt needs a unet_wrapper (MONAI's trt_compile): add "
                    "configs/inference_trt.json after configs/inference.json in --config_file"
                )
            from ..pipelines.tensorrt import require_tensorrt  # noqa: PLC0415

            require_tensorrt()
        self.unet_backend = backend

    # subclasses: build items, check one item deeply, process one item
    def build_items(self) -> list[Item]:
        raise NotImplementedError

    def check_item(self, item: Item) -> None:
        pass

    def process(self, editor: Any, item: Item, overwrite: bool) -> None:
        raise NotImplementedError

    def work(self, editor: Any, mine: list[tuple[Item, str]]) -> Iterator[list[tuple[Item, str]]]:
        """The units of work, in order: one item each (batch runs group several)."""
        for pair in mine:
            yield [pair]

    def process_group(self, editor: Any, group: list[tuple[Item, str]]) -> list[tuple[Item, float, BaseException | None]]:
        """Process a unit of work; per item: (item, seconds, error or None).  One item's
        failure never loses the others."""
        out = []
        for item, state in group:
            _remove_leftovers(item)
            t0 = time.perf_counter()
            try:
                self.process(editor, item, overwrite=state == "redo")
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                out.append((item, time.perf_counter() - t0, exc))
                continue
            out.append((item, time.perf_counter() - t0, None))
        return out

    def source(self) -> str | None:
        return None

    def run_files(self) -> dict[str, Callable[[Path], bool]]:
        """The files the run writes at fixed names in ``output_dir``, each with how to tell the
        toolkit's own copy (:func:`radedit_core.fileio.check_run_files`)."""
        return {MANIFEST_JSON: is_own_manifest, MANIFEST_CSV: is_own_manifest_csv}

    def read_inputs(self, items: list[Item]) -> dict[str, Any]:
        """What the run reads: the datalist and every item's image and mask files."""
        inputs: dict[str, Any] = {"datalist": self.source()}
        for item in items:
            for key in ("image", "edit_mask", "keep_mask"):
                value = getattr(item, key)
                if key != "image" and value:
                    value = getattr(parse_mask_ref(value), "path", None)  # PATH#LABELS: its file
                if value:
                    inputs[f"{item.where}: {key}" if item.where else key] = value
        return inputs

    # -- model --------------------------------------------------------------
    def _model_fingerprint(self) -> dict[str, Any]:
        """What of the model decides the pixels: its sources and revisions, the dtypes."""
        if self.editor is not None:
            prov = self.editor.components.provenance()
            spec = self.editor.components.spec.to_dict()
            return {"spec": spec, "dtype": prov["dtype"], "vae_dtype": prov["vae_dtype"]}
        from ..models.loading import dtype_name, resolve_device, resolve_dtype  # noqa: PLC0415
        from ..models.spec import ModelSpec  # noqa: PLC0415

        spec = ModelSpec.resolve(self.model)
        device = resolve_device(rank_device(self.device))
        return {
            "spec": spec.to_dict(),
            "dtype": dtype_name(resolve_dtype(self.model_options.dtype, device)),
            "vae_dtype": dtype_name(resolve_dtype(self.model_options.vae_dtype, device)),
        }

    def _load_editor(self):
        if self.editor is not None:
            return self.editor
        from ..models.loading import quiet_model_libraries  # noqa: PLC0415
        from ..workflow import RadEditor  # noqa: PLC0415

        quiet_model_libraries()
        editor = RadEditor.from_options(replace(self.model_options, device=rank_device(self.device)))
        editor.set_progress(self.progress)
        if self.unet_wrapper is not None:
            from ..pipelines.tensorrt import wrap_unet  # noqa: PLC0415

            wrap_unet(editor.pipe, self.unet_wrapper)
            editor.generator_pipe._unet_forward = editor.pipe._unet_forward
        return editor

    # -- the run ------------------------------------------------------------
    def lock_folder(self) -> Path | None:
        """The output folder this run locks (None when the option is missing: checking reports that)."""
        value = self.params.get("output_dir")
        return None if is_missing(value) else Path(str(value)).expanduser()

    def run(self) -> BatchSummary:
        """Run the batch holding the output folder's lock (:func:`radedit_core.runlock.run_lock`).

        Raises:
            OutputError: another run writes the same output folder (exit code 4); see :meth:`_run`.
        """
        with run_lock(self.lock_folder(), f"radedit {self.kind}"):
            return self._run()

    def _run(self) -> BatchSummary:
        self.ranks = ranks = Ranks.current()
        prefix = f"[rank {ranks.rank}/{ranks.world}] " if ranks.distributed else ""

        # 1. parameters and rows, identical on every rank, before anything is written
        error: BaseException | None = None
        items: list[Item] = []
        try:
            self._check_params()
            model_fp = self._model_fingerprint()
            items = self.build_items()
            for item in items:
                item.fingerprint = self.fingerprint(item, model_fp)
            check_run_files(self.output_dir, self.run_files(), self.read_inputs(items), f"a {self.kind} run")
        except RadEditError as exc:
            error = exc
        ranks.agree(error)

        # 2. which items are done: rank 0 looks, every rank gets the same answer
        states = None
        if ranks.rank == 0:
            try:
                states = [item_state(item, self.overwrite) for item in items]
                conflicts = [_conflict_message(it) for it, s in zip(items, states) if s == "conflict"]
                if conflicts:
                    raise _errors_to_exception(self.source(), conflicts, OutputError)
                states = ("ok", states)
            except RadEditError as exc:
                states = ("error", (type(exc).__name__, str(exc)))
        states = ranks.broadcast(states)
        if states[0] == "error":
            raise _rebuild(states[1])
        states = states[1]
        pending = [(item, state) for item, state in zip(items, states) if state in ("pending", "redo")]
        mine = ranks.shard(pending)

        # 3. read every pending input of this rank's share; no rank starts before all are good
        problems = Problems()
        for item, _ in mine:
            try:
                self.check_item(item)
            except RadEditError as exc:
                problems.add(item.where, exc)
        ranks.agree(problems.exception(self.source()) if problems else None)

        # 4. the work
        records: list[dict[str, Any]] = []
        if mine:
            log.info("%s%d of %d items to do here (%d already done)", prefix, len(mine), len(items),
                     states.count("done"))  # fmt: skip
            editor = self._load_editor()
            k = 0
            for group in self.work(editor, mine):
                for item, seconds, exc in self.process_group(editor, group):
                    k += 1
                    if exc is None:
                        records.append(item.record("done", seconds, ranks.rank))
                        log.info("%s[%d/%d] %s -> %s (%.1f s)", prefix, k, len(mine), item.id, item.output, seconds)
                    elif isinstance(exc, RadEditError):
                        records.append(item.record("failed", seconds, ranks.rank, str(exc)))
                        log.error("%s%s failed: %s", prefix, item.id, exc)
                    else:
                        records.append(item.record("failed", seconds, ranks.rank, repr(exc)))
                        log.error("%s%s failed", prefix, item.id, exc_info=exc)

        # 5. merged manifest, once, by rank 0 after every rank is finished
        gathered = ranks.all_gather(records)
        by_id = {r["id"]: r for part in gathered for r in part}
        if len(by_id) != sum(len(part) for part in gathered):  # pragma: no cover - a sharding bug
            log.error("some items were processed on more than one rank: %s", [len(p) for p in gathered])
        merged = [by_id.get(item.id) or item.record("skipped") for item in items]
        manifest = self.output_dir / MANIFEST_JSON
        if ranks.rank == 0:
            header = {
                "tool": "radedit_core",
                "version": __version__,
                "kind": self.kind,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "source": self.source(),
                "output_dir": str(self.output_dir),
                "world_size": ranks.world,
                # items each rank processed in this run: their sum is the "done" + "failed" count
                "processed_per_rank": [len(part) for part in gathered],
            }
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_manifest(self.output_dir, merged, header)
        ranks.barrier()
        summary = BatchSummary(
            done=sum(r["status"] == "done" for r in merged),
            skipped=sum(r["status"] == "skipped" for r in merged),
            failed=sum(r["status"] == "failed" for r in merged),
            manifest=manifest,
            records=merged,
        )
        if ranks.rank == 0:
            log.info("%s", summary)
        if summary.failed:
            first = next(r for r in merged if r["status"] == "failed")
            raise RadEditError(
                f"{summary.failed} of {len(merged)} items failed (first: {first['id']}: {first['error']}); "
                f"see {manifest}; run again to retry them, finished items are skipped"
            )
        return summary

    def fingerprint(self, item: Item, model_fp: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _batch_block(self, item: Item) -> dict[str, Any]:
        return {
            "id": item.id,
            "row": item.row,
            "source": self.source(),
            "rank": self.ranks.rank,
            "world_size": self.ranks.world,
            "fingerprint": _canonical(item.fingerprint),
        }


class EditBatch(_Batch):
    """Edit one image or every row of a datalist; see the module docstring.

    ``settings``: the run's :class:`~radedit_core.workflow.EditSettings` values
    (``prompts``/``prompt``, ``weights``/``guidance``, ``steps``, ...; ``None``
    means the default). ``input``/``edit_mask``/``keep_mask`` describe one
    image and are ignored when ``datalist`` is given.
    """

    kind = "edit"

    def __init__(
        self,
        *,
        input: Any = None,
        edit_mask: Any = None,
        keep_mask: Any = None,
        datalist: Any = None,
        split: Any = None,
        settings: dict[str, Any] | None = None,
        global_edit: Any = False,
        output_format: str = "auto",
        batch_size: Any = "auto",
        **common: Any,
    ):
        super().__init__(**common)
        self.params["batch_size"] = batch_size
        self.input = None if is_missing(input) else str(input)
        self.edit_mask = None if is_missing(edit_mask) else str(edit_mask)
        self.keep_mask = None if is_missing(keep_mask) else str(keep_mask)
        self.datalist = None if is_missing(datalist) else str(datalist)
        self.split = split
        self.settings = dict(settings or {})
        self.global_edit = global_edit
        self.output_format = output_format or "auto"

    def source(self) -> str | None:
        return self.datalist

    def _check_params(self) -> None:
        super()._check_params()
        self.batch_options = BatchOptions.from_mapping({"batch_size": self.params["batch_size"]}, bundle_name)

    def build_items(self) -> list[Item]:
        return edit_items(
            input=self.input,
            edit_mask=self.edit_mask,
            keep_mask=self.keep_mask,
            datalist=self.datalist,
            split=self.split,
            settings=self.settings,
            global_edit=self.global_edit,
            output_dir=self.output_dir,
            output_format=self.output_format,
        )

    def fingerprint(self, item: Item, model_fp: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "edit",
            "input": item.written["image"],
            "edit_mask": item.written["edit_mask"],
            "keep_mask": item.written["keep_mask"],
            "settings": item.settings.to_dict(),
            "output_format": item.output_format,
            "model": model_fp,
        }

    def _request(self, item: Item, overwrite: bool):
        from ..edit_request import prepare_edit  # noqa: PLC0415

        return prepare_edit(
            item.image,
            item.edit_mask,
            item.keep_mask,
            item.settings,
            item.output,
            output_format=item.output_format,
            overwrite=overwrite,
            global_edit=item.edit_mask is None,
            name=row_name(item.where),
            model=self.model,
        )

    def check_item(self, item: Item) -> None:
        # Every input is read and every mask checked on its image (not the output: resume decides that).
        self._request(item, overwrite=True)

    def process(self, editor: Any, item: Item, overwrite: bool) -> None:
        from ..workflow import run_edit  # noqa: PLC0415

        run_edit(editor, self._request(item, overwrite), extra={"batch": self._batch_block(item)})

    def work(self, editor: Any, mine: list[tuple[Item, str]]) -> Iterator[list[tuple[Item, str]]]:
        """Batches of items that can share a pipeline pass, in datalist order within each group."""
        size = self.batch_options.batch_size
        if size == "auto":
            prompts = max((len(item.settings.prompts) for item, _ in mine), default=1)
            size = auto_batch_size(editor.pipe, prompts)
        self.resolved_batch_size = size
        if size > 1:
            log.info("batches of up to %d images per pipeline pass", size)
        groups: dict[tuple, list[tuple[Item, str]]] = {}
        for item, state in mine:
            key = (item.settings.batch_key(), len(item.settings.prompts))
            groups.setdefault(key, []).append((item, state))
        for members in groups.values():
            for k in range(0, len(members), size):
                yield members[k : k + size]

    def process_group(self, editor: Any, group: list[tuple[Item, str]]) -> list[tuple[Item, float, BaseException | None]]:
        if len(group) == 1 and not editor.pipe.is_compiled:
            return super().process_group(editor, group)
        from ..workflow import write_edit_result  # noqa: PLC0415

        # 1. every item's request (a problem with one is that item's failure)
        t0 = time.perf_counter()
        failed: dict[str, BaseException] = {}
        requests = []
        for item, state in group:
            _remove_leftovers(item)
            try:
                requests.append((item, self._request(item, overwrite=state == "redo")))
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                failed[item.id] = exc
        # 2. one pipeline pass for the rest (padded to the batch size under a compiled UNet)
        results: list[Any] = []
        if requests:
            pad_to = self.resolved_batch_size if editor.pipe.is_compiled else None
            try:
                results = editor.edit_batch([r for _, r in requests], pad_to=pad_to)
            except Exception as exc:  # noqa: BLE001 - the batch's items fail together; a rerun retries them
                failed.update({item.id: exc for item, _ in requests})
        share = (time.perf_counter() - t0) / max(1, len(group))
        # 3. each output and its sidecar on its own, in order
        written: dict[str, float] = {}
        for (item, request), result in zip(requests, results):
            t1 = time.perf_counter()
            try:
                write_edit_result(result, request, extra={"batch": self._batch_block(item)})
            except Exception as exc:  # noqa: BLE001
                failed[item.id] = exc
            written[item.id] = time.perf_counter() - t1
        return [(item, share + written.get(item.id, 0.0), failed.get(item.id)) for item, _ in group]


class GenerateBatch(_Batch):
    """Text-to-image samples, one PNG + sidecar per (prompt, seed), with the same resume and sharding."""

    kind = "generate"

    def __init__(
        self,
        *,
        prompt: Any = None,
        datalist: Any = None,
        split: Any = None,
        settings: dict[str, Any] | None = None,
        num_images: Any = 1,
        bits: Any = 8,
        **common: Any,
    ):
        super().__init__(**common)
        self.prompt = prompt
        self.datalist = None if is_missing(datalist) else str(datalist)
        self.split = split
        self.settings = dict(settings or {})
        self.num_images = num_images
        self.bits = bits

    def source(self) -> str | None:
        return self.datalist

    def build_items(self) -> list[Item]:
        return generate_items(
            prompt=self.prompt,
            datalist=self.datalist,
            split=self.split,
            settings=self.settings,
            num_images=self.num_images,
            bits=self.bits,
            output_dir=self.output_dir,
        )

    def fingerprint(self, item: Item, model_fp: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "generate",
            "prompt": item.prompt[0],
            "settings": generate_fingerprint_settings(item.settings),
            "bits": item.settings.bits,
            "model": model_fp,
        }

    def process(self, editor: Any, item: Item, overwrite: bool) -> None:
        from ..imaging.image import Geometry  # noqa: PLC0415
        from ..imaging.io import write_image_file  # noqa: PLC0415
        from ..workflow import model_image_to_array  # noqa: PLC0415

        s = item.settings
        out = editor.generate(
            item.prompt, steps=s.steps, guidance=s.guidance, seed=s.seed, negative_prompt=s.negative_prompt
        )
        with OutputGroup() as group:
            with group.file(item.output, overwrite) as tmp:
                write_image_file(tmp, model_image_to_array(out.images[0], s.bits), Geometry())
            sidecar = {
                **header(),
                "prompt": item.prompt[0],
                "model": editor.components.provenance(),
                "settings": {**generate_fingerprint_settings(s), "scheduler": "DDIM, eta 0", "bits": s.bits},
                "timings_s": getattr(out, "timings", {}),
                "output": {"path": str(item.output), "format": "png"},
                "batch": self._batch_block(item),
            }
            group.json(item.sidecar, sidecar, overwrite)




# -- from a flat mapping of options (the bundle's config ids) ---------------------------------

_EDIT_SETTING_IDS = (
    "prompt", "guidance", "steps", "skip_ratio", "eta", "seed", "keep_mode", "dilate", "invert_prompt",
    "invert_guidance", "inversion", "detail", "keep_scope", "soft_masks", "inversion_batch_size", "jpeg_quality",
)  # fmt: skip
_GENERATE_SETTING_IDS = ("steps", "guidance", "seed", "negative_prompt")
_COMMON_IDS = (
    "model", "device", "dtype", "vae_dtype", "trust_remote_code", "offline", "compile", "output_dir", "overwrite",
    "progress", "unet_backend", "unet_wrapper",
)  # fmt: skip
#: How the UNet runs: PyTorch (eager or ``compile``), or TensorRT through ``unet_wrapper``.
UNET_BACKENDS = ("torch", "tensorrt")
EDIT_OPTION_IDS = ("input", "edit_mask", "keep_mask", "datalist", "split", "global_edit", "output_format", "batch_size",
                   *_EDIT_SETTING_IDS, *_COMMON_IDS)  # fmt: skip
GENERATE_OPTION_IDS = ("prompt", "datalist", "split", "num_images", "bits", *_GENERATE_SETTING_IDS, *_COMMON_IDS)


def batch_from_options(kind: str, options: dict[str, Any]) -> "_Batch":
    """An :class:`EditBatch` or :class:`GenerateBatch` from one flat mapping of option ids.

    ``None`` means the default.  Unknown ids are an error that lists the known
    ones.  Values are checked when the run starts, before any model loads.
    """
    known = EDIT_OPTION_IDS if kind == "edit" else GENERATE_OPTION_IDS
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"unknown {kind} options {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    common = {k: options[k] for k in _COMMON_IDS if k in options}
    if kind == "edit":
        return EditBatch(
            input=options.get("input"),
            edit_mask=options.get("edit_mask"),
            keep_mask=options.get("keep_mask"),
            datalist=options.get("datalist"),
            split=options.get("split"),
            global_edit=options.get("global_edit") or False,
            output_format=options.get("output_format") or "auto",
            batch_size=options.get("batch_size"),
            settings={k: options.get(k) for k in _EDIT_SETTING_IDS},
            **common,
        )
    return GenerateBatch(
        prompt=options.get("prompt"),
        datalist=options.get("datalist"),
        split=options.get("split"),
        num_images=1 if options.get("num_images") is None else options["num_images"],
        bits=8 if options.get("bits") is None else options["bits"],
        settings={k: options.get(k) for k in _GENERATE_SETTING_IDS},
        **common,
    )


__all__ = ["BatchSummary", "EditBatch", "GenerateBatch", "batch_from_options"]
