"""Plumbing shared by the RadEdit pipelines: prompts, UNet calls, VAE."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, UNet2DConditionModel

from ..diffusion.inversion import Generators, per_image_randn
from ..diffusion.schedule import to_epsilon
from ..errors import ConfigError, NumericalError
from ..models.conditioning import count_tokens, encode_prompts
from ..models.spec import TextSettings

#: callback(stage, done, total); stages: "invert", "edit", "generate".
ProgressCallback = Callable[[str, int, int], None]


class RadEditPipelineBase(DiffusionPipeline):
    """UNet/VAE/text plumbing; the pipelines add the sampling maths."""

    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder,
        tokenizer,
        unet: UNet2DConditionModel,
        scheduler: DDIMScheduler,
        text_max_length: int = 128,
        pass_attention_mask: bool = False,
    ):
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.register_to_config(text_max_length=text_max_length, pass_attention_mask=pass_attention_mask)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        # What runs the UNet: in the step loop, and for the inversion's few large calls.
        self._unet_forward = self.unet
        self._inversion_forward = self.unet
        self._alphas_cumprod: torch.Tensor | None = None
        self.unet_calls = 0

    @classmethod
    def from_components(cls, components) -> "RadEditPipelineBase":
        """Build from :class:`radedit_core.models.RadEditComponents`."""
        return cls(
            vae=components.vae,
            text_encoder=components.text_encoder,
            tokenizer=components.tokenizer,
            unet=components.unet,
            scheduler=components.scheduler,
            text_max_length=components.spec.text.max_length,
            pass_attention_mask=components.spec.text.pass_attention_mask,
        )

    # -- properties --------------------------------------------------------
    @property
    def model_resolution(self) -> int:
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    @property
    def text_settings(self) -> TextSettings:
        return TextSettings(self.config.text_max_length, self.config.pass_attention_mask)

    # -- speed -------------------------------------------------------------
    def compile_unet(self, mode: str | None = "auto", inversion: bool = False, **kwargs) -> None:
        """Run the UNet of the step loop through ``torch.compile`` (the module itself is kept for saving).

        ``mode="auto"``: CUDA graphs (``reduce-overhead``) on GPU, where a
        sampling step of a 64x64 UNet is launch-bound, the default elsewhere.
        ``dynamic=False`` unless given: each input shape gets a static graph
        of its own and nothing is re-traced with symbolic sizes, so a run
        compiles once per shape: the step loop's (1 + P) * B samples for a
        batch of B images with P prompts.  ``inversion=True`` also compiles
        the inversion's calls (their chunks are then padded to one shape); by
        default they run eagerly: a few large, compute-bound calls, which CUDA
        graphs do not speed up, and a second shape would only add compile time.
        """
        if mode == "auto":
            mode = "reduce-overhead" if self.unet.device.type == "cuda" else None
        kwargs.setdefault("dynamic", False)
        self._unet_forward = torch.compile(self.unet, mode=mode, **kwargs)
        self._inversion_forward = self._unet_forward if inversion else self.unet

    def prepare_unet(self, channels_last: bool | None = None, fuse_qkv: bool = False) -> None:
        """GPU kernels' preferences, applied to the UNet module in place (shared with other pipelines).

        ``channels_last`` (None: on CUDA only): NHWC weights, the layout the
        tensor-core convolutions use, so no transposes around each conv.
        ``fuse_qkv``: one projection matrix for query, key and value
        (diffusers' ``fuse_qkv_projections``): fewer, larger matrix products.
        Both change float rounding only.
        """
        if channels_last is None:
            channels_last = self.unet.device.type == "cuda"
        if channels_last:
            self.unet.to(memory_format=torch.channels_last)
        if fuse_qkv:
            self.unet.fuse_qkv_projections()

    def use_unet_module(self, module: torch.nn.Module) -> None:
        """Run the UNet through ``module(sample, timestep, encoder_hidden_states) -> prediction`` instead:
        a wrapped :class:`~radedit_core.pipelines.tensorrt.UNetNoisePrediction` (TensorRT, MONAI's
        ``trt_compile``), for the step loop and the inversion alike."""

        def forward(sample, timestep, encoder_hidden_states, return_dict=False):
            return (module(sample, timestep, encoder_hidden_states),)

        self._unet_forward = self._inversion_forward = forward

    @property
    def is_compiled(self) -> bool:
        """The step loop's UNet runs through ``torch.compile``."""
        return hasattr(self._unet_forward, "_orig_mod")

    @property
    def inversion_is_compiled(self) -> bool:
        return hasattr(self._inversion_forward, "_orig_mod")

    # -- building blocks ---------------------------------------------------
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        return encode_prompts(
            prompts,
            self.tokenizer,
            self.text_encoder,
            self.text_settings,
            self.unet.device,
            self.unet.dtype,
        )

    def prompt_report(self, prompts: list[str]) -> list[dict]:
        """Per prompt: its token count (with [CLS]/[SEP]) and whether ``text_max_length`` truncates it."""
        limit = self.text_settings.max_length
        report = []
        for prompt in prompts:
            n = count_tokens(prompt, self.tokenizer)
            report.append({"prompt": prompt, "tokens": n, "max_length": limit, "truncated": n > limit})
        return report

    def unet_eps(
        self, latents: torch.Tensor, timesteps: torch.Tensor, embeddings: torch.Tensor, inversion: bool = False
    ) -> torch.Tensor:
        """One UNet call on float32 latents; the noise prediction comes back as float32.

        ``timesteps`` [N] long, best already on the UNet's device: a copy from
        the CPU would wait for the GPU (PyTorch synchronises blocking
        host-to-device copies), and the step loop must never wait.
        ``inversion``: a call of the inversion (run eagerly unless
        :meth:`compile_unet` was told otherwise).

        A UNet trained for ``v_prediction`` or ``sample`` (the scheduler's
        ``prediction_type``) has its output turned into epsilon here
        (:func:`~radedit_core.diffusion.schedule.to_epsilon`), so every step
        below works with noise predictions.
        """
        self.unet_calls += 1
        forward = self._inversion_forward if inversion else self._unet_forward
        if hasattr(forward, "_orig_mod"):
            # CUDA-graph outputs live in memory the next replay overwrites.
            torch.compiler.cudagraph_mark_step_begin()
        timesteps = timesteps.to(self.unet.device)
        out = forward(
            latents.to(self.unet.dtype),
            timesteps,
            encoder_hidden_states=embeddings,
            return_dict=False,
        )[0]
        out = out.float() if out.dtype != torch.float32 else out.clone()
        prediction = self.scheduler.config.prediction_type
        if prediction != "epsilon":
            if self._alphas_cumprod is None or self._alphas_cumprod.device != out.device:
                self._alphas_cumprod = self.scheduler.alphas_cumprod.to(out.device, torch.float64)
            abar = self._alphas_cumprod[timesteps]
            out = to_epsilon(out.double(), latents.double(), abar.view(-1, 1, 1, 1), prediction).float()
        return out

    def timestep_tensor(self, timesteps: list[int] | int, n: int | None = None) -> torch.Tensor:
        """Timesteps as a long tensor made on the UNet's device (a fill, not a blocking copy);
        an int with ``n`` gives ``n`` copies of it."""
        device = self.unet.device
        if isinstance(timesteps, int):
            return torch.full((n or 1,), timesteps, dtype=torch.long, device=device)
        if len(set(timesteps)) == 1:
            return torch.full((len(timesteps),), timesteps[0], dtype=torch.long, device=device)
        return torch.tensor(timesteps, dtype=torch.long).to(device, non_blocking=True)

    def conditional_predictor(
        self,
        timesteps: tuple[int, ...],
        uncond: torch.Tensor,
        cond: torch.Tensor,
        batch_conditions: bool,
    ) -> Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]:
        """(x [B, ...], step) -> (eps_uncond [B, ...], eps_cond [P, B, ...]).

        ``uncond`` [1, L, D]; ``cond`` [P, B, L, D]: prompt k of image b (a
        batch of edits has its own prompts per image; a shared prompt is an
        expanded view).  Every one of the P prompt slots is evaluated on its
        image, in one batched call of (1 + P) * B samples (whose conditioning
        is built once, not per step) or in 1 + P calls of B.
        """
        n, b = cond.shape[:2]
        groups = [uncond.expand(b, -1, -1)] + [cond[k] for k in range(n)]
        embeds = torch.cat(groups) if batch_conditions else None

        def predict(x: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            if embeds is not None:
                t = self.timestep_tensor(timesteps[i], (n + 1) * b)
                eps = self.unet_eps(x.repeat(n + 1, 1, 1, 1), t, embeds).view(n + 1, *x.shape)
            else:
                t = self.timestep_tensor(timesteps[i], b)
                eps = torch.stack([self.unet_eps(x, t, g) for g in groups])
            return eps[0], eps[1:]

        return predict

    @torch.no_grad()
    def encode_image(
        self,
        image: torch.Tensor,
        sampling: str = "mode",
        generator: Generators = None,
    ) -> torch.Tensor:
        """[B, 1, S, S] in [-1, 1] -> scaled float32 latents [B, C, S/8, S/8].

        One image per VAE call (what diffusers' slicing does, without setting it
        on the shared VAE module): a batch's images are encoded, and decoded by
        :meth:`decode_latents`, exactly as they would be alone (the decoder's
        rounding depends on the batch size, and the demo VAE magnifies it to
        1e-3), and the decoder's activations, gigabytes for one 512 x 512
        image, do not grow with the batch.  The VAE is a small part of an
        edit's work.

        ``sampling="sample"`` draws from the posterior with ``generator`` (one
        for the batch or one per image).
        """
        if sampling not in ("mode", "sample"):
            raise ConfigError(f"latent sampling must be 'mode' or 'sample', got {sampling!r}")
        rgb = image.to(self.vae.device, self.vae.dtype).expand(-1, self.vae.config.in_channels, -1, -1)
        posteriors = [self.vae.encode(rgb[b : b + 1]).latent_dist for b in range(rgb.shape[0])]
        mean = torch.cat([p.mean for p in posteriors])
        if sampling == "mode":
            latents = torch.cat([p.mode() for p in posteriors])
        else:
            noise = per_image_randn(tuple(mean.shape), generator)
            latents = mean + torch.cat([p.std for p in posteriors]) * noise.to(mean)
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return ((latents.float() - shift) * self.vae.config.scaling_factor).to(self.unet.device)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> grayscale images [B, 1, S, S] in [-1, 1], float32."""
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        z = (latents / self.vae.config.scaling_factor + shift).to(self.vae.device, self.vae.dtype)
        rgb = torch.cat([self.vae.decode(z[b : b + 1], return_dict=False)[0] for b in range(z.shape[0])])
        # Checked before the clamp, which would turn an overflow to inf into a plausible +-1.
        check_finite(rgb, "VAE decode")
        return rgb.float().mean(dim=1, keepdim=True).clamp(-1.0, 1.0)

    # -- bookkeeping -------------------------------------------------------
    def stage_bar(self, total: int, desc: str) -> tqdm:
        """A tqdm bar honouring ``set_progress_bar_config`` (disable=True etc.)."""
        config = {"desc": desc, "leave": False} | dict(getattr(self, "_progress_bar_config", {}))
        return tqdm(total=total, **config)

    @contextmanager
    def timed(self, timings: dict[str, float], key: str) -> Iterator[None]:
        sync = self.unet.device.type == "cuda"
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        yield
        if sync:
            torch.cuda.synchronize()
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0


def check_finite(values: torch.Tensor, stage: str) -> None:
    """Refuse NaN/inf at the end of a stage (one check per stage: no host sync inside the step loop).

    Raises:
        NumericalError: naming the stage and what usually fixes it.
    """
    if bool(torch.isfinite(values).all()):
        return
    hints = {
        "VAE decode": "the VAE overflowed: run it in float32 or bfloat16 (--vae-dtype float32), not float16",
        "VAE encode": "the VAE overflowed: run it in float32 or bfloat16 (--vae-dtype float32), not float16",
        "UNet": "the UNet produced non-finite noise predictions: run it in float32 or bfloat16 (--dtype), "
        "and check the model's weights",
    }
    raise NumericalError(f"{stage} produced NaN or infinite values; {hints.get(stage, 'nothing was written')}")


def make_generator(seed: int | torch.Generator | list | None) -> Generators:
    """Seeds become CPU generators, so noise is identical on every device; a list (one per image,
    diffusers' convention) becomes a list of generators."""
    if isinstance(seed, (list, tuple)):
        return [make_generator(s) for s in seed]
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    return torch.Generator(device="cpu").manual_seed(int(seed))


def normalise_prompts(prompt: str | list[str], weights: float | list[float] | None, default: float) -> tuple[list[str], list[float]]:
    prompts = [prompt] if isinstance(prompt, str) else list(prompt or [])
    if not prompts:
        raise ConfigError("at least one prompt is needed (an empty list was given)")
    if not all(isinstance(p, str) for p in prompts):
        raise ConfigError("prompts must be strings")
    if weights is None:
        weight_list = [default] * len(prompts)
    elif isinstance(weights, (int, float)):
        weight_list = [float(weights)] * len(prompts)
    else:
        weight_list = [float(w) for w in weights]
    if len(weight_list) != len(prompts):
        raise ConfigError(f"{len(prompts)} prompts but {len(weight_list)} weights; give one weight per prompt")
    return prompts, weight_list
