"""Resumable checkpoints: everything a run needs to continue as if never stopped.

A checkpoint is a folder ``checkpoints/checkpoint-<step>/`` written atomically
(:func:`radedit_core.fileio.atomic_directory`: it appears whole or not at
all) holding

- ``<module>/``: the trained module's weights as ``save_pretrained`` writes
  them (loadable on their own with ``from_pretrained``);
- ``ema.pt``: :meth:`diffusers.training_utils.EMAModel.state_dict`;
- ``optimizer.pt``, ``lr_scheduler.pt``: their ``state_dict()``;
- ``rng.pt``: every rank's torch CPU (and CUDA) generator state;
- ``state.json``: the step, the data position (epoch and step within it),
  the recipe (:meth:`TrainSettings.recipe`) and the metrics so far.

The per-sample draws are seeded from (seed, epoch, row), so the data position
and the weights are all the randomness a resume needs; the generator states
are restored as well so that nothing else drifts.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, InputError
from ..fileio import atomic_directory

CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class TrainState:
    """Where a run stands after ``global_step`` optimizer steps.

    ``epoch`` and ``step_in_epoch``: the next batch to train is step
    ``step_in_epoch`` of epoch ``epoch`` (a finished epoch rolls over to
    ``(epoch + 1, 0)`` once its end-of-epoch work is done).
    """

    global_step: int
    epoch: int
    step_in_epoch: int
    global_batch: int
    recipe: dict[str, Any]
    metrics: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "global_step": self.global_step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_batch": self.global_batch,
            "recipe": self.recipe,
            "metrics": self.metrics,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> "TrainState":
        if data.get("format") != CHECKPOINT_FORMAT:
            raise InputError(where, f"unknown checkpoint format {data.get('format')!r} (expected {CHECKPOINT_FORMAT})")
        try:
            return cls(
                global_step=int(data["global_step"]),
                epoch=int(data["epoch"]),
                step_in_epoch=int(data["step_in_epoch"]),
                global_batch=int(data["global_batch"]),
                recipe=dict(data["recipe"]),
                metrics=dict(data.get("metrics", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(where, f"incomplete checkpoint state ({exc})") from exc


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"checkpoint-{step:07d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run folder, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)) and (p / "state.json").is_file()]
    return [p for _, p in sorted(found)]


def read_state(folder: Path) -> TrainState:
    path = Path(folder) / "state.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(folder, f"not a training checkpoint: cannot read state.json ({exc})") from exc
    return TrainState.from_json(data, folder)


def recipe_differences(
    saved: dict[str, Any], current: dict[str, Any], defaults: dict[str, Any] | None = None
) -> list[str]:
    """``option: saved -> current`` for every option of the ``current`` recipe that differs.

    An option missing from ``saved`` (a checkpoint written before the option
    existed) counts as its value in ``defaults``: an option added later whose
    default changes nothing lets such a checkpoint resume.  An option only
    ``saved`` has is not compared: the current recipe leaves it out because it
    decides nothing in this run (e.g. the UNet's caption options, which
    checkpoints of a VAE stage recorded before each stage kept its own).
    """
    defaults = defaults or {}
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
    keys = sorted(current)
    return [f"{k}: {_short(saved.get(k))} -> {_short(current.get(k))}" for k in keys if saved.get(k) != current.get(k)]


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_resumable(
    folder: Path, recipe: dict[str, Any], global_batch: int, defaults: dict[str, Any] | None = None
) -> TrainState:
    """The checkpoint's state if it was written with this recipe and global batch.

    ``defaults``: the recipe options' defaults (:meth:`TrainSettings.recipe_defaults`), for
    options a checkpoint written before them lacks.

    Raises:
        ConfigError: naming the options that differ.
    """
    state = read_state(folder)
    diffs = recipe_differences(state.recipe, recipe, defaults)
    if state.global_batch != global_batch:
        diffs.append(f"global batch (ranks x batch_size x accumulation): {state.global_batch} -> {global_batch}")
    if diffs:
        shown = "; ".join(diffs[:4]) + (f" (and {len(diffs) - 4} more)" if len(diffs) > 4 else "")
        raise ConfigError(
            f"resume: {folder} was written with other training settings ({shown}); use the same settings, "
            "another output_dir, or overwrite"
        )
    return state


def save_checkpoint(
    run_dir: Path,
    state: TrainState,
    module: torch.nn.Module,
    module_name: str,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    ema: Any | None,
    rng_states: list[dict[str, Any]],
    keep: int | None,
) -> Path:
    """Write ``checkpoint-<step>`` atomically, then drop all but the newest ``keep``."""
    target = checkpoint_dir(run_dir, state.global_step)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(target, overwrite=True) as tmp:
        module.save_pretrained(tmp / module_name, safe_serialization=True)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(lr_scheduler.state_dict(), tmp / "lr_scheduler.pt")
        if ema is not None:
            torch.save(ema.state_dict(), tmp / "ema.pt")
        torch.save(rng_states, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(state.to_json(), indent=2) + "\n")
    if keep is not None:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(
    folder: Path,
    module: torch.nn.Module,
    module_name: str,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    ema: Any | None,
    device: torch.device,
) -> list[dict[str, Any]]:
    """Restore weights, optimizer, LR schedule and EMA in place; return the saved RNG states."""
    from safetensors import SafetensorError  # noqa: PLC0415
    from safetensors.torch import load_file  # noqa: PLC0415

    folder = Path(folder)
    weights = folder / module_name / "diffusion_pytorch_model.safetensors"
    try:
        module.load_state_dict(load_file(weights, device=str(device)))
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location=device, weights_only=True))
        lr_scheduler.load_state_dict(torch.load(folder / "lr_scheduler.pt", weights_only=True))
        if ema is not None:
            ema.load_state_dict(torch.load(folder / "ema.pt", map_location=device, weights_only=True))
            ema.to(device=device)
        return torch.load(folder / "rng.pt", weights_only=True)
    except (OSError, RuntimeError, ValueError, KeyError, EOFError, SafetensorError, pickle.UnpicklingError) as exc:
        # a truncated or corrupt file (a full disk, a copy cut short): name the checkpoint, not a traceback
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(folder, f"cannot restore the checkpoint ({detail}); delete it to resume from the one "
                                 "before, or pass overwrite") from exc


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.random.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.random.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
