"""How many edits share one pipeline pass: ``batch_size: auto``."""

from __future__ import annotations

from typing import Any

#: A step call of (1 + P) * 16 samples keeps an H100-class GPU's matrix units busy on a 64 x 64
#: UNet; larger batches add latency per batch and padding waste, not throughput.
AUTO_BATCH_LIMIT = 16
#: Share of the free GPU memory the step calls' activations may take (the inversion's calls, at
#: most ``GPU_INVERSION_SAMPLES`` samples whatever the batch, and the VAE, one image at a time,
#: need the rest).
AUTO_MEMORY_FRACTION = 0.5


def auto_batch_size(pipe: Any, num_prompts: int = 1) -> int:
    """``batch_size: auto`` for a loaded :class:`~radedit_core.pipelines.pipeline_radedit.RadEditPipeline`.

    The rule: 1 on the CPU (and MPS), where batching saves nothing.  On a CUDA
    GPU, one UNet call on two samples at the model's latent size measures the
    activation memory per sample (peak minus resident, halved); the batch is
    the largest power of two up to :data:`AUTO_BATCH_LIMIT` whose step call of
    (1 + ``num_prompts``) samples per image fits in
    :data:`AUTO_MEMORY_FRACTION` of the free memory, and at least 1.
    """
    import torch  # noqa: PLC0415

    device = pipe.unet.device
    if device.type != "cuda":
        return 1
    unet = pipe.unet
    size = int(unet.config.sample_size)
    cross = int(unet.config.cross_attention_dim)
    length = int(pipe.text_settings.max_length)
    with torch.no_grad():
        sample = torch.zeros(2, unet.config.in_channels, size, size, device=device, dtype=unet.dtype)
        text = torch.zeros(2, length, cross, device=device, dtype=unet.dtype)
        steps = torch.full((2,), 500, device=device, dtype=torch.long)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        resident = torch.cuda.memory_allocated(device)
        unet(sample, steps, encoder_hidden_states=text, return_dict=False)
        torch.cuda.synchronize(device)
        per_sample = max(1, (torch.cuda.max_memory_allocated(device) - resident) // 2)
    free, _ = torch.cuda.mem_get_info(device)
    fits = int(AUTO_MEMORY_FRACTION * free // (per_sample * (1 + num_prompts)))
    batch = 1
    while batch * 2 <= min(fits, AUTO_BATCH_LIMIT):
        batch *= 2
    return batch


__all__ = ["AUTO_BATCH_LIMIT", "AUTO_MEMORY_FRACTION", "auto_batch_size"]
