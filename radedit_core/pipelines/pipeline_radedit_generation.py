"""Text-to-image sampling of chest X-rays (model card: 100 DDIM steps, guidance 7.5)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers.utils import BaseOutput

from ..diffusion.editing import ddim_sample
from ..diffusion.schedule import make_schedule
from ..errors import ConfigError
from .base import ProgressCallback, RadEditPipelineBase, check_finite, make_generator, normalise_prompts


@dataclass
class RadEditGenerationOutput(BaseOutput):
    """``images``: [N, 1, S, S] float32 in [-1, 1], one per prompt (x num_images_per_prompt)."""

    images: torch.Tensor
    latents: torch.Tensor
    prompts: list[str]
    unet_calls: int
    timings: dict[str, float] = field(default_factory=dict)


class RadEditGenerationPipeline(RadEditPipelineBase):
    """Classifier-free guided DDIM (eta = 0) sampling from pure noise."""

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        num_inference_steps: int = 100,
        guidance_scale: float = 7.5,
        negative_prompt: str = "",
        num_images_per_prompt: int = 1,
        generator: torch.Generator | int | None = None,
        batch_conditions: bool = True,
        callback: ProgressCallback | None = None,
    ) -> RadEditGenerationOutput:
        """Sample one image per prompt (times ``num_images_per_prompt``).

        The unconditional branch of the guidance uses ``negative_prompt``
        ("" = the unconditional embedding, as in training with caption dropout).
        """
        timings: dict[str, float] = {}
        calls_before = self.unet_calls
        # 1. Check inputs
        prompts, _ = normalise_prompts(prompt, None, guidance_scale)
        if num_images_per_prompt < 1:
            raise ConfigError("num_images_per_prompt must be >= 1")
        prompts = [p for p in prompts for _ in range(num_images_per_prompt)]
        device = self.unet.device
        generator = make_generator(generator)

        # 2. Encode prompts
        with self.timed(timings, "text"):
            embeds = self.encode_text([negative_prompt] + prompts)
        uncond, cond = embeds[:1], embeds[1:]

        # 3. Initial noise: drawn on the CPU so a seed means the same image everywhere
        size = self.unet.config.sample_size
        latents = torch.randn(
            (len(prompts), self.unet.config.in_channels, size, size), generator=generator, dtype=torch.float32
        ).to(device) * float(self.scheduler.init_noise_sigma)

        # 4. Timesteps
        schedule = make_schedule(self.scheduler, num_inference_steps)

        # 5. Denoise: each image is guided by its own prompt
        predict = self.conditional_predictor(schedule.timesteps, uncond, cond[None], batch_conditions)

        weight = torch.tensor([guidance_scale], dtype=torch.float32, device=device)
        with self.timed(timings, "generate"), self.stage_bar(schedule.num_steps, "generate") as bar:

            def on_step(done: int, total: int) -> None:
                bar.update(1)
                if callback is not None:
                    callback("generate", done, total)

            latents = ddim_sample(latents, schedule, predict, weight, on_step)
        check_finite(latents, "UNet")

        # 6. Decode
        with self.timed(timings, "decode"):
            images = self.decode_latents(latents)
        return RadEditGenerationOutput(
            images=images,
            latents=latents,
            prompts=prompts,
            unet_calls=self.unet_calls - calls_before,
            timings=timings,
        )

