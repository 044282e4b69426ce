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
5. writes each output atomically through :func:`radedit_core.workflow.edit_file`
   (output first, sidecar last, so a sidecar means a whole output);
6. gathers every rank's records and has rank 0 alone write the merged
   manifest (``manifest.json`` and ``manifest.csv``).

The item id names *what* is edited (image, masks, prompts and per-row
overrides); the run's settings say *how*.  Changing a prompt gives new items
beside the old ones; changing the steps of a finished run is a conflict.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .._version import __version__
from ..errors import ConfigError, OutputError, RadEditError
from ..fileio import write_json
from ..settings import coerce, is_missing
from .datalist import Problems, _errors_to_exception, mask_ref
from .distributed import Ranks, _rebuild, rank_device
from .items import Item, _canonical, edit_items, generate_items
from .manifest import MANIFEST_JSON, _conflict_message, _remove, _remove_leftovers, item_state, write_manifest

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
        editor: Any = None,
    ):
        # Only stored here: run() checks them, so that every problem surfaces
        # the same way (a RadEditError from run), whoever constructs the job.
        self.params = dict(
            model=model, device=device, dtype=dtype, vae_dtype=vae_dtype, trust_remote_code=trust_remote_code,
            offline=offline, compile=compile, output_dir=output_dir, overwrite=overwrite, progress=progress,
        )  # fmt: skip
        self.editor = editor
        self.ranks = Ranks()

    def _check_params(self) -> None:
        p = self.params
        self.model = None if is_missing(p["model"]) else str(p["model"])
        self.device = "auto" if is_missing(p["device"]) else str(p["device"])
        self.dtype = "auto" if is_missing(p["dtype"]) else str(p["dtype"])
        self.vae_dtype = "float32" if is_missing(p["vae_dtype"]) else str(p["vae_dtype"])
        self.trust_remote_code = coerce("trust_remote_code", p["trust_remote_code"], "bool")
        self.offline = None if p["offline"] is None else coerce("offline", p["offline"], "bool")
        self.compile = coerce("compile", p["compile"], "bool")
        if is_missing(p["output_dir"]):
            raise ConfigError("output_dir: an output folder is needed")
        self.output_dir = Path(str(p["output_dir"])).expanduser()
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise OutputError(f"{self.output_dir}: output_dir exists and is not a folder")
        self.overwrite = coerce("overwrite", p["overwrite"], "bool")
        self.progress = coerce("progress", p["progress"], "bool")
        if self.model is None and self.editor is None:
            raise ConfigError("model: give 'radedit', 'tiny', a model folder or a spec file")

    # subclasses: build items, check one item deeply, process one item
    def build_items(self) -> list[Item]:
        raise NotImplementedError

    def check_item(self, item: Item) -> None:
        pass

    def process(self, editor: Any, item: Item, overwrite: bool) -> None:
        raise NotImplementedError

    def source(self) -> str | None:
        return None

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
            "dtype": dtype_name(resolve_dtype(self.dtype, device)),
            "vae_dtype": dtype_name(resolve_dtype(self.vae_dtype, device)),
        }

    def _load_editor(self):
        if self.editor is not None:
            return self.editor
        from ..models.loading import quiet_model_libraries  # noqa: PLC0415
        from ..workflow import RadEditor  # noqa: PLC0415

        quiet_model_libraries()
        editor = RadEditor.load(
            str(self.model),
            device=rank_device(self.device),
            dtype=self.dtype,
            vae_dtype=self.vae_dtype,
            trust_remote_code=self.trust_remote_code,
            local_files_only=True if self.offline else None,
            compile_unet=self.compile,
        )
        editor.set_progress(self.progress)
        return editor

    # -- the run ------------------------------------------------------------
    def run(self) -> BatchSummary:
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
            for k, (item, state) in enumerate(mine, start=1):
                _remove_leftovers(item)
                t0 = time.perf_counter()
                try:
                    self.process(editor, item, overwrite=state == "redo")
                except RadEditError as exc:
                    records.append(item.record("failed", time.perf_counter() - t0, ranks.rank, str(exc)))
                    log.error("%s%s failed: %s", prefix, item.id, exc)
                    continue
                except Exception as exc:  # noqa: BLE001 - one bad item must not lose the others
                    records.append(item.record("failed", time.perf_counter() - t0, ranks.rank, repr(exc)))
                    log.exception("%s%s failed", prefix, item.id)
                    continue
                seconds = time.perf_counter() - t0
                records.append(item.record("done", seconds, ranks.rank))
                log.info("%s[%d/%d] %s -> %s (%.1f s)", prefix, k, len(mine), item.id, item.output, seconds)

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
        settings: dict[str, Any] | None = None,
        global_edit: Any = False,
        output_format: str = "auto",
        write_output: Callable | None = None,
        **common: Any,
    ):
        super().__init__(**common)
        self.input = None if is_missing(input) else str(input)
        self.edit_mask = None if is_missing(edit_mask) else str(edit_mask)
        self.keep_mask = None if is_missing(keep_mask) else str(keep_mask)
        self.datalist = None if is_missing(datalist) else str(datalist)
        self.settings = dict(settings or {})
        self.global_edit = global_edit
        self.output_format = output_format or "auto"
        self.write_output = write_output

    def source(self) -> str | None:
        return self.datalist

    def build_items(self) -> list[Item]:
        return edit_items(
            input=self.input,
            edit_mask=self.edit_mask,
            keep_mask=self.keep_mask,
            datalist=self.datalist,
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

    def check_item(self, item: Item) -> None:
        from ..imaging.io import read_image, read_mask_array  # noqa: PLC0415
        from ..imaging.masks import make_masks  # noqa: PLC0415

        image = read_image(item.image)
        edit = None if item.edit_mask is None else read_mask_array(mask_ref(item.edit_mask), image)
        keep = None if item.keep_mask is None else read_mask_array(mask_ref(item.keep_mask), image)
        # Dilation never makes an empty or misplaced mask usable: check without it.
        make_masks(image, edit, keep, soft=item.settings.soft_masks, edit_path=item.edit_mask, keep_path=item.keep_mask)

    def process(self, editor: Any, item: Item, overwrite: bool) -> None:
        from ..workflow import edit_file  # noqa: PLC0415

        edit_file(
            editor,
            item.image,
            item.output,
            item.settings,
            edit_mask_path=None if item.edit_mask is None else mask_ref(item.edit_mask),
            keep_mask_path=None if item.keep_mask is None else mask_ref(item.keep_mask),
            overwrite=overwrite,
            write_output=self._writer(item),
        )

    def _writer(self, item: Item) -> Callable:
        custom = self.write_output
        block = self._batch_block(item)

        def write(result, output, overwrite):
            # edit_file writes the sidecar from result.provenance after this returns.
            result.provenance["batch"] = block
            if custom is not None:
                return custom(result, output, overwrite)
            if item.output_format == "dicom":
                return write_dicom_output(result, output, overwrite)
            from ..imaging.io import write_like  # noqa: PLC0415

            return write_like(output, result.image.array, result.image, overwrite=overwrite)

        return write


def write_dicom_output(result: Any, output: Path, overwrite: bool) -> Any:
    """The edit as a derived DICOM series in the folder ``output``."""
    try:
        from ..dicom import write_derived_series  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(f"DICOM output is not available in this installation ({exc})") from exc
    return write_derived_series(result, output, overwrite=overwrite)


class GenerateBatch(_Batch):
    """Text-to-image samples, one PNG + sidecar per (prompt, seed), with the same resume and sharding."""

    kind = "generate"

    def __init__(
        self,
        *,
        prompt: Any = None,
        datalist: Any = None,
        settings: dict[str, Any] | None = None,
        num_images: Any = 1,
        bits: Any = 8,
        **common: Any,
    ):
        super().__init__(**common)
        self.prompt = prompt
        self.datalist = None if is_missing(datalist) else str(datalist)
        self.settings = dict(settings or {})
        self.num_images = num_images
        self.bits = bits

    def _check_params(self) -> None:
        super()._check_params()
        self.bits = coerce("bits", self.bits, "int")
        if self.bits not in (8, 16):
            raise ConfigError(f"bits must be 8 or 16, got {self.bits}")

    def source(self) -> str | None:
        return self.datalist

    def build_items(self) -> list[Item]:
        return generate_items(
            prompt=self.prompt,
            datalist=self.datalist,
            settings=self.settings,
            num_images=self.num_images,
            output_dir=self.output_dir,
        )

    def fingerprint(self, item: Item, model_fp: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "generate",
            "prompt": item.prompt[0],
            "settings": item.settings,
            "bits": self.bits,
            "model": model_fp,
        }

    def process(self, editor: Any, item: Item, overwrite: bool) -> None:
        from ..fileio import check_writable  # noqa: PLC0415
        from ..imaging.image import Geometry  # noqa: PLC0415
        from ..imaging.io import write_image  # noqa: PLC0415
        from ..workflow import model_image_to_array  # noqa: PLC0415

        check_writable(item.output, overwrite)
        check_writable(item.sidecar, overwrite)
        s = item.settings
        out = editor.generate(
            item.prompt, steps=s["steps"], guidance=s["guidance"], seed=s["seed"], negative_prompt=s["negative_prompt"]
        )
        write_image(item.output, model_image_to_array(out.images[0], self.bits), Geometry(), overwrite=overwrite)
        sidecar = {
            "tool": "radedit_core",
            "version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "prompt": item.prompt[0],
            "model": editor.components.provenance(),
            "settings": {**s, "scheduler": "DDIM, eta 0", "bits": self.bits},
            "timings_s": getattr(out, "timings", {}),
            "output": {"path": str(item.output)},
            "batch": self._batch_block(item),
        }
        try:
            write_json(item.sidecar, sidecar, overwrite=overwrite)
        except Exception:
            _remove(item.output)
            raise


__all__ = ["BatchSummary", "EditBatch", "GenerateBatch", "write_dicom_output"]
