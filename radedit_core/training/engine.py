"""The training loop: a plain PyTorch loop with diffusers' training utilities.

Why not MONAI's ``SupervisedTrainer`` (ignite): its iteration is a supervised
``network(image) -> loss(pred, label)`` step.  A latent diffusion step (frozen
VAE and text encoder, per-sample seeded noise and timesteps, caption
dropout, targets from the noise scheduler) would replace that iteration
entirely, and the parts that remain (ignite's checkpoint handler and event
system) restore an epoch/iteration counter but not a data position that
survives a change of rank count.  diffusers' own training examples use this
plain loop with :class:`diffusers.DDPMScheduler`,
:class:`diffusers.training_utils.EMAModel`, ``compute_snr`` and
``diffusers.optimization.get_scheduler``; so does this one, with MONAI for
what it is good at here (``CacheDataset``, transforms, ``FIDMetric``), and
the weights stay plain diffusers modules.

One optimizer step (numbered steps of :meth:`Trainer.run`):
``gradient_accumulation_steps`` micro-batches of ``batch_size`` images per
rank (DDP averages gradients over ranks; ``no_sync`` skips the all-reduce
of the first micro-batches), loss divided by the accumulation count,
gradient clipping by global norm, AdamW, LR schedule, EMA update.  bf16
autocast on GPUs (parameters, optimizer state and EMA stay float32).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from .._version import __version__
from ..errors import ConfigError
from ..fileio import write_json
from ..models.loading import quieted_model_libraries
from ..runlock import run_lock
from .autoencoder import AutoencoderObjective
from .checkpoint import TrainState, list_checkpoints, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .components import load_start_components, model_resolution, noise_scheduler_from, scheduler_settings
from .data import GlobalBatchSampler, collate, make_loader, model_space_dataset, read_training_datalist
from .denoising import DenoisingObjective
from .distributed import DistributedContext, init_distributed, wrap_ddp
from .fid import features, frechet_distance, load_feature_extractor
from .output import write_model_folder
from .run_folder import SETTINGS_FILE, MetricsLog, RunPlan, plan_run, prepare_run_dir
from .samples import write_grid
from .settings import TrainSettings

log = logging.getLogger(__name__)
#: The checkpoint's record of the loss steps not logged yet (``{"sum", "count"}``), so that a resumed run
#: logs the same mean as an uninterrupted one.
LOSS_WINDOW = "loss_window"


@dataclass(frozen=True)
class StepInfo:
    """What a callback sees after each optimizer step (on every rank)."""

    global_step: int
    max_steps: int
    epoch: int
    loss: float  # this rank's mean loss of the step


@dataclass
class TrainResult:
    """The outcome of :meth:`Trainer.run`.

    ``model_dir``: the trained model (diffusers layout, ``--model DIR``);
    ``metrics``: the last training-loss record and the last evaluation
    (``val_loss``, ``fid`` or its ``fid_status``, ...).
    """

    output_dir: Path
    model_dir: Path
    global_step: int
    epochs: int
    metrics: dict[str, Any]
    samples: list[Path] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    resumed_from: Path | None = None
    seconds: float = 0.0

    def __str__(self) -> str:
        val = self.metrics.get("evaluation", {}).get("val_loss")
        val_text = f", validation loss {val:.5f}" if isinstance(val, float) else ""
        return f"trained {self.global_step} steps{val_text}; model written to {self.model_dir}"


class Trainer:
    """Train the UNet (or the VAE) of a RadEdit model as :class:`TrainSettings` say.

    ``callbacks`` are called with a :class:`StepInfo` after every optimizer
    step, on every rank (logging to other tools, stopping a run by raising).
    """

    def __init__(
        self,
        settings: TrainSettings | Mapping[str, Any],
        callbacks: Iterable[Callable[[StepInfo], None]] = (),
    ):
        # A mapping is validated when the run starts, so that a bundle config
        # that instantiates the trainer reports bad options as one line.
        self._options = settings
        self.callbacks = list(callbacks)

    @property
    def settings(self) -> TrainSettings:
        """The validated settings (raises ConfigError for bad options)."""
        if not isinstance(self._options, TrainSettings):
            self._options = TrainSettings.from_mapping(self._options)
        return self._options

    # -- the run ---------------------------------------------------------------
    def run(self) -> TrainResult:
        """Train (or resume) as the settings say and write the model; every rank returns the result.

        One run at a time writes ``output_dir`` (:func:`radedit_core.runlock.run_lock`, held by rank 0).

        Raises:
            ConfigError: bad options, a batch larger than the data, a checkpoint
                of other settings (before any model is loaded or output created).
            InputError: a datalist, image or checkpoint that cannot be used.
            ModelNotFoundError: the start model's weights are missing.
            OutputError: the run folder holds a finished model, is being written by
                another run, or cannot be written.
        """
        s = self.settings
        # as the editing front ends do: the libraries' load and save bars and reports say nothing
        # the run's own progress and metrics do not
        with quieted_model_libraries(), run_lock(s.output_dir, "radedit train"):
            return self._run(s)

    def _run(self, s: TrainSettings) -> TrainResult:
        started = time.perf_counter()
        ctx = init_distributed(s.device)
        main = ctx.is_main
        global_batch = ctx.world * s.batch_size * s.gradient_accumulation_steps

        # 1. Data rows: every row checked (files exist, texts present)
        rows = read_training_datalist(
            s.datalist, s.image_key, s.text_key if s.stage == "unet" else None, s.train_split, s.validation_split
        )
        steps_per_epoch = len(rows.training) // global_batch
        if steps_per_epoch == 0:
            raise ConfigError(
                f"batch_size: the global batch ({ctx.world} rank(s) x batch_size {s.batch_size} x "
                f"gradient_accumulation_steps {s.gradient_accumulation_steps} = {global_batch}) is larger than the "
                f"{len(rows.training)} training rows"
            )
        max_steps = s.max_train_steps or s.num_epochs * steps_per_epoch

        # 2. Output folder: a fresh run, a resume or an error (nothing created yet)
        plan = plan_run(s, global_batch)

        # 3. Models: the frozen components and the module to train
        components = load_start_components(s, ctx.device)
        scheduler = scheduler_settings(components.spec.scheduler, s.prediction_type)
        noise_scheduler = noise_scheduler_from(scheduler)
        if s.validation_timesteps > noise_scheduler.config.num_train_timesteps:
            raise ConfigError(
                f"validation_timesteps: {s.validation_timesteps} exceeds the model's "
                f"{noise_scheduler.config.num_train_timesteps} training timesteps"
            )
        objective = self._objective(components, noise_scheduler)
        resolution = model_resolution(components)
        extractor = load_feature_extractor(s.fid_feature_extractor, ctx.device)

        # 4. Datasets: every image read into model space (CacheDataset)
        train_ds = model_space_dataset(rows.training, resolution, s.cache_rate, progress=s.progress and main)
        val_ds = model_space_dataset(rows.validation, resolution, s.cache_rate) if rows.validation else None

        # 5. Output folder created (rank 0); every rank learns whether that worked
        error = None
        if main:
            try:
                prepare_run_dir(plan)
                settings_record = {"tool": "radedit_core", "settings": s.to_dict(), "world_size": ctx.world,
                                   "radedit_core": __version__}  # fmt: skip
                write_json(plan.run_dir / SETTINGS_FILE, settings_record)
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank
                error = exc
        ctx.agree(error)
        metrics_log = MetricsLog(plan.run_dir, enabled=main)

        # 6. Optimiser, LR schedule, EMA, gradient checkpointing
        trainable = objective.trainable
        trainable.train().requires_grad_(True)
        if s.gradient_checkpointing:
            trainable.enable_gradient_checkpointing()
        optimizer = torch.optim.AdamW(
            trainable.parameters(),
            lr=s.learning_rate,
            betas=(s.adam_beta1, s.adam_beta2),
            weight_decay=s.adam_weight_decay,
            eps=s.adam_epsilon,
        )
        from diffusers.optimization import get_scheduler  # noqa: PLC0415

        lr_scheduler = get_scheduler(
            s.lr_scheduler, optimizer, num_warmup_steps=s.lr_warmup_steps, num_training_steps=max_steps
        )
        ema = None
        if s.use_ema:
            from diffusers.training_utils import EMAModel  # noqa: PLC0415

            ema = EMAModel(
                trainable.parameters(),
                decay=s.ema_decay,
                use_ema_warmup=s.ema_warmup,
                model_cls=type(trainable),
                model_config=trainable.config,
            )
            ema.to(device=ctx.device)

        # 7. Resume: weights, optimizer, schedule, EMA, generators, data position
        global_step, epoch, step_in_epoch = 0, 0, 0
        history: dict[str, Any] = {}
        if plan.state is not None:
            states = load_checkpoint(plan.resume_from, trainable, objective.name, optimizer, lr_scheduler, ema, ctx.device)
            set_rng_state(states[min(ctx.rank, len(states) - 1)], ctx.device)
            global_step, epoch, step_in_epoch = plan.state.global_step, plan.state.epoch, plan.state.step_in_epoch
            history = dict(plan.state.metrics)
            metrics_log.truncate_after(global_step)
            if main:
                log.info("resuming from %s at step %d", plan.resume_from, global_step)
        # The logged loss is the mean over the steps since the last record: a checkpoint keeps the steps
        # of the open window (summed over the ranks), so a resumed run logs what an uninterrupted one does.
        window = history.pop(LOSS_WINDOW, None) or {"sum": 0.0, "count": 0}

        # 8. Loop
        model = wrap_ddp(objective.forward_module, ctx)
        sampler = GlobalBatchSampler(len(train_ds), global_batch, s.seed, ctx.rank, ctx.world)
        loader = make_loader(train_ds, sampler, s.batch_size, s.num_workers)
        use_bf16 = self._mixed_precision(ctx) == "bf16"
        evaluator = _Evaluator(s, ctx, objective, trainable, ema, rows, train_ds, val_ds, extractor, plan.run_dir, use_bf16)

        from tqdm.auto import tqdm  # noqa: PLC0415

        bar = tqdm(total=max_steps, initial=global_step, desc=f"train {objective.name}", disable=not (s.progress and main))
        log_sum, log_count = (float(window["sum"]), int(window["count"])) if main else (0.0, 0)
        batches = None
        grad_norm = None
        try:
            while global_step < max_steps:
                if batches is None:
                    sampler.set_epoch(epoch, step_in_epoch)
                    batches = iter(loader)
                step_loss = 0.0
                for micro in range(s.gradient_accumulation_steps):
                    batch = next(batches)
                    last = micro == s.gradient_accumulation_steps - 1
                    no_sync = model.no_sync() if ctx.distributed and not last else contextlib.nullcontext()
                    with no_sync:
                        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                            loss = objective.loss(model, batch, epoch)
                        (loss / s.gradient_accumulation_steps).backward()
                    step_loss += float(loss.detach()) / s.gradient_accumulation_steps
                if s.max_grad_norm > 0:
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable.parameters(), s.max_grad_norm))
                lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.step(trainable.parameters())
                global_step += 1
                step_in_epoch += 1
                log_sum, log_count = log_sum + step_loss, log_count + 1
                bar.update(1)
                if global_step % s.log_every == 0 or global_step == max_steps:
                    total, count = ctx.all_reduce_sum([log_sum, log_count])
                    record = {"event": "train", "step": global_step, "epoch": epoch + step_in_epoch / steps_per_epoch,
                              "loss": total / count,
                              "lr": lr, "grad_norm": grad_norm}  # fmt: skip
                    history["train"] = record
                    metrics_log.append(record)
                    bar.set_postfix(loss=f"{record['loss']:.4f}")
                    log_sum, log_count = 0.0, 0
                for callback in self.callbacks:
                    callback(StepInfo(global_step, max_steps, epoch, step_loss))
                if step_in_epoch == steps_per_epoch:
                    # End of epoch: evaluate, then roll the data position over.
                    if evaluator.due(epoch + 1, global_step, max_steps):
                        final = global_step == max_steps
                        history.update(evaluator.evaluate(global_step, epoch + 1, epoch + 1, final, metrics_log))
                    epoch, step_in_epoch, batches = epoch + 1, 0, None
                if s.checkpointing_steps and global_step % s.checkpointing_steps == 0 and global_step < max_steps:
                    total, count = ctx.all_reduce_sum([log_sum, log_count])
                    self._checkpoint(plan, ctx, objective, optimizer, lr_scheduler, ema, global_step, epoch,
                                     step_in_epoch, global_batch, {**history, LOSS_WINDOW: {"sum": total, "count": count}})  # fmt: skip
        finally:
            bar.close()

        # 9. Final evaluation, checkpoint and model
        if history.get("last_evaluation_step") != global_step:
            epochs = epoch + step_in_epoch / steps_per_epoch
            history.update(evaluator.evaluate(global_step, epoch + (step_in_epoch > 0), epochs, True, metrics_log))
        self._checkpoint(plan, ctx, objective, optimizer, lr_scheduler, ema, global_step, epoch, step_in_epoch,
                         global_batch, history)  # fmt: skip
        error = None
        if main:
            try:
                self._write_model(plan, ctx, components, objective, trainable, ema, train_ds, scheduler,
                                  noise_scheduler, rows, global_step, global_batch, history, use_bf16)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank
                error = exc
        ctx.agree(error)
        return TrainResult(
            output_dir=plan.run_dir,
            model_dir=plan.model_dir,
            global_step=global_step,
            epochs=epoch,
            metrics=history,
            samples=sorted((plan.run_dir / "samples").glob("*.png")),
            checkpoints=list_checkpoints(plan.run_dir),
            resumed_from=plan.resume_from,
            seconds=time.perf_counter() - started,
        )

    # -- pieces ------------------------------------------------------------------
    def _objective(self, components, noise_scheduler):
        if self.settings.stage == "vae":
            return AutoencoderObjective(components, self.settings)
        return DenoisingObjective(components, self.settings, noise_scheduler)

    def _mixed_precision(self, ctx: DistributedContext) -> str:
        mode = self.settings.mixed_precision
        if mode == "auto":
            return "bf16" if ctx.device.type == "cuda" and torch.cuda.is_bf16_supported() else "no"
        return mode

    def _checkpoint(self, plan: RunPlan, ctx, objective, optimizer, lr_scheduler, ema, global_step, epoch,
                    step_in_epoch, global_batch, history) -> None:  # fmt: skip
        states = ctx.gather_object(rng_state(ctx.device))
        error = None
        if ctx.is_main:
            state = TrainState(global_step, epoch, step_in_epoch, global_batch, self.settings.recipe(), history)
            try:
                save_checkpoint(plan.run_dir, state, objective.trainable, objective.name, optimizer, lr_scheduler,
                                ema, states, self.settings.checkpoints_total_limit)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank
                error = exc
        ctx.agree(error)

    def _write_model(self, plan, ctx, components, objective, trainable, ema, train_ds, scheduler, noise_scheduler,
                     rows, global_step, global_batch, history, use_bf16) -> None:  # fmt: skip
        s = self.settings
        if ema is not None:
            ema.copy_to(trainable.parameters())  # the run is over: the EMA weights are what is saved
        trainable.eval()
        count = min(s.latent_stats_images, len(train_ds))
        stats_images = torch.stack([train_ds[i]["image"] for i in range(count)]) if s.stage == "vae" else None
        history.update(objective.finalize(trainable, stats_images))
        name = s.model_name or f"{components.spec.name}-{s.stage}"
        training = {
            "settings": s.to_dict(),
            "started_from": components.provenance()["components"],
            "data": {"datalist": str(rows.path), "training_rows": len(rows.training),
                     "validation_rows": len(rows.validation)},  # fmt: skip
            "global_step": global_step,
            "global_batch": global_batch,
            "world_size": ctx.world,
            "mixed_precision": "bf16" if use_bf16 else "no",
            "prediction_type": noise_scheduler.config.prediction_type,
            "metrics": history,
            "radedit_core": __version__,
        }
        write_model_folder(plan.model_dir, components, {objective.name: trainable}, name, scheduler, training)


class _Evaluator:
    """Validation loss (all ranks, sharded), sample grid and FID (rank 0) with the EMA weights."""

    def __init__(self, settings, ctx, objective, trainable, ema, rows, train_ds, val_ds, extractor, run_dir: Path,
                 use_bf16: bool):  # fmt: skip
        self.s = settings
        self.ctx = ctx
        self.objective = objective
        self.trainable = trainable
        self.ema = ema
        self.rows = rows
        self.train_ds = train_ds
        self.val_ds = val_ds
        self.extractor = extractor
        self.run_dir = run_dir
        self.use_bf16 = use_bf16

    def due(self, epochs_done: int, global_step: int, max_steps: int) -> bool:
        s = self.s
        final = global_step == max_steps
        return final or any(n and epochs_done % n == 0 for n in (s.validation_epochs, s.sample_epochs))

    @contextlib.contextmanager
    def _ema_weights(self):
        params = list(self.trainable.parameters())
        if self.ema is not None:
            self.ema.store(params)
            self.ema.copy_to(params)
        self.trainable.eval()
        try:
            yield
        finally:
            if self.ema is not None:
                self.ema.restore(params)
            self.trainable.train()

    def evaluate(
        self, global_step: int, epochs_done: int, epochs: float, final: bool, metrics_log: MetricsLog
    ) -> dict[str, Any]:
        """Validation loss and/or samples and FID as due after ``epochs_done`` epochs (both at the final step).

        ``epochs``: the training progress in epochs (fractional), for the record.
        """
        s, ctx = self.s, self.ctx
        record: dict[str, Any] = {"event": "evaluation", "step": global_step, "epoch": epochs,
                                  "weights": "ema" if self.ema is not None else "raw"}  # fmt: skip
        validate = final or (s.validation_epochs and epochs_done % s.validation_epochs == 0)
        sample = final or (s.sample_epochs and epochs_done % s.sample_epochs == 0)
        with self._ema_weights(), torch.no_grad():
            if validate and self.val_ds is not None:
                record.update(self._validation())
            elif validate:
                record["validation"] = "unavailable: the datalist has no validation list"
            if sample and ctx.is_main:
                record.update(self._samples_and_fid(global_step))
        metrics_log.append(record)
        return {"evaluation": record, "last_evaluation_step": global_step}

    def _validation(self) -> dict[str, Any]:
        s, ctx = self.s, self.ctx
        count = len(self.val_ds) if s.max_validation_images is None else min(s.max_validation_images, len(self.val_ds))
        mine = list(range(ctx.rank, count, ctx.world))
        batches = (collate([self.val_ds[i] for i in mine[k : k + s.batch_size]]) for k in range(0, len(mine), s.batch_size))
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            sums = self.objective.validation_sums(self.trainable, batches)
        keys = sorted(sums)
        reduced = dict(zip(keys, ctx.all_reduce_sum([sums[k] for k in keys])))
        return self.objective.validation_metrics(reduced)

    def _reference(self, count: int) -> tuple[torch.Tensor, list[str]]:
        """The first ``count`` validation images and reports (training ones without a validation list)."""
        ds = self.val_ds if self.val_ds is not None else self.train_ds
        items = [ds[i] for i in range(min(count, len(ds)))]
        return torch.stack([it["image"] for it in items]), [it["text"] for it in items]

    def _samples_and_fid(self, global_step: int) -> dict[str, Any]:
        s = self.s
        out: dict[str, Any] = {}
        problem = self.objective.sampling_problem()
        if problem is not None:
            return {"samples": f"skipped: {problem}", "fid": None, "fid_status": f"unavailable: {problem}"}
        real, texts = self._reference(s.num_sample_images)
        prompts = s.sample_prompts or texts
        grid = self.objective.grid_images(prompts, real.to(self.ctx.device))
        columns = 2 * math.ceil(math.sqrt(len(real) / 2)) if self.objective.name == "vae" else None
        path = write_grid(grid, self.run_dir / "samples" / f"step-{global_step:07d}.png", columns)
        out["samples"] = str(path.relative_to(self.run_dir))
        if self.extractor is None:
            out.update(fid=None, fid_status="unavailable: no fid_feature_extractor given")
            return out
        real, texts = self._reference(s.fid_num_images)
        if len(real) < 2:
            out.update(fid=None, fid_status="unavailable: FID needs at least 2 reference images")
            return out
        real = real.to(self.ctx.device)
        generated = self.objective.fid_images(real, texts)
        out["fid"] = frechet_distance(features(self.extractor, generated), features(self.extractor, real))
        out["fid_images"] = len(real)
        return out


def train_from_mapping(options: Mapping[str, Any], callbacks: Iterable[Callable[[StepInfo], None]] = ()) -> TrainResult:
    """Validate ``options`` into :class:`TrainSettings` and train; what ``radedit train`` calls.

    Raises:
        ConfigError: bad options (before anything is loaded or written).
        InputError: a datalist or image that cannot be used.
        ModelNotFoundError: the start model's weights are missing.
        OutputError: the run folder cannot be used.
    """
    return Trainer(TrainSettings.from_mapping(options), callbacks).run()
