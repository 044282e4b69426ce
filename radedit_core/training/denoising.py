"""The UNet stage: the latent diffusion denoising loss with frozen VAE and text encoder.

As in the paper (App. 0.D) and diffusers' text-to-image training: the image
in model space is encoded by the frozen VAE (posterior sample or mode, times
``scaling_factor``), noised to a uniformly drawn timestep with the model's own
noise schedule (:class:`diffusers.DDPMScheduler` built from the model's
scheduler config: the model card's linear betas 1e-4..0.02 over 1000 steps),
and the UNet, conditioned on the frozen text encoder's last hidden state of
the report, predicts the scheduler's target: the noise (``epsilon``, the
model card), the velocity (``v_prediction``, ``DDPMScheduler.get_velocity``)
or the clean latent (``sample``).  The caption is the report, its sentences
optionally shuffled, its final period optionally dropped, or "" with
probability ``caption_dropout``: "" is the unconditional embedding that
classifier-free guidance and the editing path use
(:mod:`radedit_core.training.captions`).  The loss is the mean
squared error per sample, optionally weighted by min-SNR-gamma
(Hang et al. 2023, with diffusers' ``compute_snr``), averaged over the batch.

Every draw is seeded per sample (:mod:`radedit_core.training.noise`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..models.conditioning import encode_prompts
from .captions import sentence_order, training_caption
from .noise import batch_generators, sample_generator, stacked_rand, stacked_randint, stacked_randn


@torch.no_grad()
def encode_latents(vae, images: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Model-space images [B, 1, S, S] in [-1, 1] -> scaled float32 latents [B, C, S/f, S/f].

    ``noise=None``: the posterior mode (as the editing path encodes);
    otherwise ``mean + std * noise``, a posterior sample.  Then
    ``(z - shift_factor) * scaling_factor`` as
    :meth:`radedit_core.pipelines.base.RadEditPipelineBase.encode_image`.
    """
    rgb = images.to(vae.device, vae.dtype).expand(-1, vae.config.in_channels, -1, -1)
    dist = vae.encode(rgb).latent_dist
    z = dist.mode() if noise is None else dist.mean + dist.std * noise.to(dist.mean)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (z.float() - shift) * vae.config.scaling_factor


def latent_shape(vae, image_size: int) -> tuple[int, int, int]:
    """(C, h, w) of the latents of a square image of ``image_size`` pixels."""
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    return (int(vae.config.latent_channels), image_size // factor, image_size // factor)


def validation_timesteps(num_train_timesteps: int, count: int) -> list[int]:
    """``count`` timesteps at the centres of equal bins of [0, T)."""
    return [int((k + 0.5) * num_train_timesteps / count) for k in range(count)]


#: Prompts per call of the generation pipeline when drawing samples.
SAMPLE_CHUNK = 8


class DenoisingObjective:
    """Loss, validation and samples of the UNet stage.

    ``components``: :class:`radedit_core.models.loading.RadEditComponents`
    (UNet trainable; VAE and text encoder frozen, in eval mode).
    ``noise_scheduler``: a ``DDPMScheduler`` with the model's schedule.
    """

    name = "unet"

    def __init__(self, components, settings, noise_scheduler):
        self.components = components
        self.settings = settings
        self.unet = components.unet
        self.vae = components.vae
        self.noise_scheduler = noise_scheduler
        self.num_train_timesteps = int(noise_scheduler.config.num_train_timesteps)
        self.prediction_type = noise_scheduler.config.prediction_type
        self._latent_cache: dict[int, torch.Tensor] = {}
        if settings.snr_gamma is not None:
            from diffusers.training_utils import compute_snr  # noqa: PLC0415

            # SNR(t) of every training timestep, looked up per sample.
            self._snr = compute_snr(noise_scheduler, torch.arange(self.num_train_timesteps)).double()

    @property
    def trainable(self) -> torch.nn.Module:
        return self.unet

    @property
    def forward_module(self) -> torch.nn.Module:
        """What DistributedDataParallel wraps."""
        return self.unet

    # -- pieces ----------------------------------------------------------------
    def embed(self, texts: list[str]) -> torch.Tensor:
        """[B, L, H] text-encoder conditioning; each distinct text is encoded once."""
        unique = list(dict.fromkeys(texts))
        c = self.components
        table = encode_prompts(unique, c.tokenizer, c.text_encoder, c.spec.text, self.unet.device, torch.float32)
        rows = torch.tensor([unique.index(t) for t in texts], device=table.device)
        return table[rows]

    def latents(self, batch: dict[str, Any], generators: list[torch.Generator] | None) -> torch.Tensor:
        """Scaled latents of the batch (posterior samples from ``generators``, or the mode)."""
        images = batch["image"]
        if self.settings.latent_sampling == "sample" and generators is not None:
            noise = stacked_randn(generators, latent_shape(self.vae, images.shape[-1]))
            return encode_latents(self.vae, images, noise).to(self.unet.device)
        if not self.settings.cache_latents:
            return encode_latents(self.vae, images).to(self.unet.device)
        indices = batch["index"].tolist()
        for k, i in enumerate(indices):
            if i not in self._latent_cache:
                # One image per call: a cached latent must not depend on which
                # batch first met it (a resumed run meets it in another one).
                self._latent_cache[i] = encode_latents(self.vae, images[k : k + 1])[0].to(self.unet.device)
        return torch.stack([self._latent_cache[i] for i in indices])

    def target(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "v_prediction":
            return self.noise_scheduler.get_velocity(latents, noise, timesteps)
        return latents

    def snr_weights(self, timesteps: torch.Tensor) -> torch.Tensor:
        """min(SNR, gamma) / SNR for epsilon, / (SNR + 1) for v, min(SNR, gamma) for x0 targets."""
        snr = self._snr[timesteps.cpu()]
        clipped = torch.clamp(snr, max=self.settings.snr_gamma)
        if self.prediction_type == "epsilon":
            w = clipped / snr
        elif self.prediction_type == "v_prediction":
            w = clipped / (snr + 1.0)
        else:
            w = clipped
        return w.float().to(self.unet.device)

    def per_sample_mse(
        self, model: torch.nn.Module, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """[B] mean squared error of the UNet's prediction against the scheduler's target."""
        t = timesteps.to(self.unet.device)
        noise = noise.to(self.unet.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, t)
        pred = model(noisy, t, encoder_hidden_states=cond, return_dict=False)[0]
        target = self.target(latents, noise, t)
        return F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))

    # -- training ----------------------------------------------------------------
    def loss(self, model: torch.nn.Module, batch: dict[str, Any], epoch: int) -> torch.Tensor:
        """Mean loss of the batch; every draw comes from the sample's own generator."""
        s = self.settings
        gens = batch_generators(s.seed, "train", epoch, batch["index"])
        # Fixed order of draws per sample: timestep, caption dropout, period dropout, posterior, noise,
        # then (only when enabled, so that runs without it draw as before) the sentence order.
        timesteps = stacked_randint(gens, self.num_train_timesteps)
        dropped = stacked_rand(gens) < s.caption_dropout
        no_period = stacked_rand(gens) < s.caption_period_dropout
        latents = self.latents(batch, gens)
        noise = stacked_randn(gens, tuple(latents.shape[1:]))
        if s.caption_sentence_shuffle:
            orders = [sentence_order(text, g) for text, g in zip(batch["text"], gens, strict=True)]
        else:
            orders = [None] * len(gens)
        texts = [
            training_caption(text, d, p, order)
            for text, d, p, order in zip(batch["text"], dropped.tolist(), no_period.tolist(), orders, strict=True)
        ]
        per_sample = self.per_sample_mse(model, latents, noise, timesteps, self.embed(texts))
        if s.snr_gamma is not None:
            per_sample = per_sample * self.snr_weights(timesteps)
        return per_sample.mean()

    # -- validation ----------------------------------------------------------------
    @torch.no_grad()
    def validation_sums(self, model: torch.nn.Module, batches) -> dict[str, float]:
        """Sum and count of the per-sample MSE at fixed timesteps and fixed noise.

        Each image is scored at ``validation_timesteps`` evenly spread
        timesteps, conditioned on its report, with posterior-mode latents
        and noise seeded by (seed, timestep number, row): the same numbers
        in every epoch and on any number of ranks.
        """
        s = self.settings
        steps = validation_timesteps(self.num_train_timesteps, s.validation_timesteps)
        total, count = 0.0, 0
        for batch in batches:
            latents = encode_latents(self.vae, batch["image"]).to(self.unet.device)
            cond = self.embed(batch["text"])
            shape = tuple(latents.shape[1:])
            for k, t in enumerate(steps):
                gens = [sample_generator(s.seed, "validation", k, int(i)) for i in batch["index"].tolist()]
                noise = stacked_randn(gens, shape)
                timesteps = torch.full((latents.shape[0],), t, dtype=torch.long)
                total += float(self.per_sample_mse(model, latents, noise, timesteps, cond).double().sum())
                count += latents.shape[0]
        return {"val_loss_sum": total, "val_count": float(count)}

    @staticmethod
    def validation_metrics(sums: dict[str, float]) -> dict[str, float]:
        return {"val_loss": sums["val_loss_sum"] / sums["val_count"]}

    # -- samples -------------------------------------------------------------------
    def sampling_problem(self) -> str | None:
        """Why samples cannot be drawn with the editing path's sampler, or None."""
        if self.prediction_type != "epsilon":
            return (
                f"the generation pipeline samples epsilon-prediction models only "
                f"(this model predicts {self.prediction_type})"
            )
        return None

    @torch.no_grad()
    def generate(self, prompts: list[str], seed: int) -> torch.Tensor:
        """[N, 1, S, S] images in [-1, 1] from :class:`RadEditGenerationPipeline` (DDIM, guided).

        Prompts go in chunks of :data:`SAMPLE_CHUNK`; chunk ``c`` draws its
        initial noise from a generator seeded by (seed, c), so the images do
        not depend on the training batch size or the number of ranks.
        """
        from ..pipelines.pipeline_radedit_generation import RadEditGenerationPipeline  # noqa: PLC0415

        s = self.settings
        pipe = RadEditGenerationPipeline.from_components(self.components)
        pipe.set_progress_bar_config(disable=True)
        out = []
        for c, start in enumerate(range(0, len(prompts), SAMPLE_CHUNK)):
            chunk = prompts[start : start + SAMPLE_CHUNK]
            gen = sample_generator(seed, "samples", c)
            result = pipe(chunk, num_inference_steps=s.sample_steps, guidance_scale=s.sample_guidance, generator=gen)
            out.append(result.images)
        return torch.cat(out)

    def grid_images(self, prompts: list[str], real: torch.Tensor) -> torch.Tensor:
        """The sample grid: one generated image per prompt."""
        return self.generate(prompts, self.settings.seed)

    def fid_images(self, real: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Generated counterparts of the real validation images (their reports as prompts)."""
        return self.generate(texts, self.settings.seed + 1)

    def finalize(self, module: torch.nn.Module, train_images) -> dict[str, Any]:
        """Nothing to fold into the UNet."""
        return {}
