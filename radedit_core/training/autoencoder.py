"""The VAE stage: an AutoencoderKL trained on model-space images (the demo model's recipe).

Loss per sample: mean absolute plus mean squared reconstruction error of a
reparameterised posterior sample, plus ``vae_kl_weight`` times the KL
divergence to N(0, I) (per element), on whole images or random square crops
(the network is fully convolutional, so crops keep it cheap).  Grayscale
model-space images are repeated over the VAE's input channels, as the editing
path does, and the target is the same repeated image.

After training, :func:`fold_latent_normalisation` rescales the latent space so
that ``mode() * scaling_factor`` has zero mean and unit variance per channel,
the scale the diffusion schedule is built for, by an exact
reparameterisation of ``quant_conv``/``post_quant_conv``: reconstructions do
not change and the config keeps the published ``scaling_factor``.
"""

from __future__ import annotations

from typing import Any

import torch

from .denoising import encode_latents, latent_shape
from .noise import batch_generators, stacked_randint, stacked_randn


class AutoencoderLoss(torch.nn.Module):
    """[B] per-sample loss of ``vae`` on images [B, 1, s, s] given posterior noise [B, C, s/f, s/f].

    A module of its own so that DistributedDataParallel can wrap the whole
    encode-sample-decode computation.
    """

    def __init__(self, vae, kl_weight: float):
        super().__init__()
        self.vae = vae
        self.kl_weight = float(kl_weight)

    def forward(self, images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = images.expand(-1, self.vae.config.in_channels, -1, -1)
        post = self.vae.encode(x).latent_dist
        z = post.mean + post.std * noise.to(post.mean)
        rec = self.vae.decode(z).sample.float()
        kl = 0.5 * (post.mean.pow(2) + post.var - 1.0 - post.logvar).float().mean(dim=(1, 2, 3))
        err = rec - x.float()
        return err.abs().mean(dim=(1, 2, 3)) + err.pow(2).mean(dim=(1, 2, 3)) + self.kl_weight * kl


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Model-space [N, 1, S, S] -> decoded posterior mode, channel mean, clamped to [-1, 1]."""
    out = []
    for part in images.split(chunk):
        rgb = part.to(vae.device, vae.dtype).expand(-1, vae.config.in_channels, -1, -1)
        z = vae.encode(rgb).latent_dist.mode()
        out.append(vae.decode(z).sample.float().mean(dim=1, keepdim=True).clamp(-1.0, 1.0))
    return torch.cat(out)


@torch.no_grad()
def fold_latent_normalisation(vae, images: torch.Tensor, chunk: int = 8) -> tuple[list[float], list[float]]:
    """Make ``mode() * scaling_factor`` zero-mean and unit-variance per channel; return (mean, std) before.

    With ``m``, ``s`` the per-channel mean and std of ``mode()`` over
    ``images`` and ``k = 1 / (scaling_factor s)``, ``quant_conv`` is changed
    to output ``k (z - m)`` (and ``log var + 2 log k``) and
    ``post_quant_conv`` to take it back: an exact reparameterisation (up to
    float rounding), computed in float64.
    """
    sf = vae.config.scaling_factor
    zs = [encode_latents(vae, part) / sf for part in images.split(chunk)]
    z = torch.cat(zs).double()
    mean = z.mean(dim=(0, 2, 3))
    std = z.std(dim=(0, 2, 3))
    k = 1.0 / (sf * std)
    c = mean.numel()
    qc, pqc = vae.quant_conv, vae.post_quant_conv
    w, b = qc.weight.double(), qc.bias.double()
    w[:c] *= k.view(-1, 1, 1, 1).to(w)
    b[:c] = k.to(b) * (b[:c] - mean.to(b))
    b[c:] += 2.0 * torch.log(k).to(b)  # log-variance of the rescaled posterior
    qc.weight.copy_(w.to(qc.weight.dtype))
    qc.bias.copy_(b.to(qc.bias.dtype))
    pw, pb = pqc.weight.double(), pqc.bias.double()
    pb += pw[:, :, 0, 0] @ mean.to(pw)
    pw /= k.view(1, -1, 1, 1).to(pw)
    pqc.weight.copy_(pw.to(pqc.weight.dtype))
    pqc.bias.copy_(pb.to(pqc.bias.dtype))
    return mean.tolist(), std.tolist()


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N] PSNR of images in [-1, 1] (peak-to-peak 2)."""
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(4.0 / mse.clamp_min(1e-20))


class AutoencoderObjective:
    """Loss, validation and reconstructions of the VAE stage (UNet and text encoder unused)."""

    name = "vae"

    def __init__(self, components, settings):
        self.components = components
        self.settings = settings
        self.vae = components.vae
        self.loss_module = AutoencoderLoss(self.vae, settings.vae_kl_weight)

    @property
    def trainable(self) -> torch.nn.Module:
        return self.vae

    @property
    def forward_module(self) -> torch.nn.Module:
        return self.loss_module

    def crops(self, images: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """Each image's random square crop of ``vae_crop_size`` (offsets from its own generator)."""
        size = self.settings.vae_crop_size
        full = images.shape[-1]
        if size is None or size >= full:
            return images
        rows = stacked_randint(generators, full - size + 1).tolist()
        cols = stacked_randint(generators, full - size + 1).tolist()
        return torch.stack([img[:, r : r + size, c : c + size] for img, r, c in zip(images, rows, cols)])

    def loss(self, model: torch.nn.Module, batch: dict[str, Any], epoch: int) -> torch.Tensor:
        gens = batch_generators(self.settings.seed, "train", epoch, batch["index"])
        x = self.crops(batch["image"], gens).to(self.vae.device)
        noise = stacked_randn(gens, latent_shape(self.vae, x.shape[-1]))
        return model(x, noise).mean()

    @torch.no_grad()
    def validation_sums(self, model: torch.nn.Module, batches) -> dict[str, float]:
        """Sums of the L1 + L2 error and PSNR of posterior-mode reconstructions of whole images."""
        loss, psnr, count = 0.0, 0.0, 0
        for batch in batches:
            real = batch["image"].to(self.vae.device)
            rec = reconstruct(self.vae, real)
            err = rec.double() - real.double()
            loss += float((err.abs().flatten(1).mean(1) + err.pow(2).flatten(1).mean(1)).sum())
            psnr += float(psnr_db(rec, real).sum())
            count += real.shape[0]
        return {"val_loss_sum": loss, "val_psnr_sum": psnr, "val_count": float(count)}

    @staticmethod
    def validation_metrics(sums: dict[str, float]) -> dict[str, float]:
        n = sums["val_count"]
        return {"val_loss": sums["val_loss_sum"] / n, "val_psnr_db": sums["val_psnr_sum"] / n}

    def sampling_problem(self) -> str | None:
        return None

    def grid_images(self, prompts: list[str], real: torch.Tensor) -> torch.Tensor:
        """Originals and their reconstructions, interleaved (pairs side by side)."""
        rec = reconstruct(self.vae, real).cpu()
        return torch.stack([real.cpu(), rec], dim=1).flatten(0, 1)

    def fid_images(self, real: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Reconstructions (a reconstruction FID)."""
        return reconstruct(self.vae, real)

    def finalize(self, module: torch.nn.Module, train_images: torch.Tensor) -> dict[str, Any]:
        """Fold the latent normalisation into the saved weights (if enabled); its statistics."""
        if not self.settings.normalize_latents:
            return {}
        mean, std = fold_latent_normalisation(module, train_images.to(self.vae.device))
        return {"latent_mean_before_fold": mean, "latent_std_before_fold": std}
