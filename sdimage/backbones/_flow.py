"""Shared base of the rectified-flow families: velocity output turned into a :class:`diffsamplers.Prediction`,
flow-matching sigmas (fixed shift, or the resolution-dependent shift μ), the flow-matching LoRA loss, a
transformer cost model, and 2×2 latent packing for the families whose transformer reads packed tokens."""
from __future__ import annotations

import torch
from torch import Tensor

from diffsamplers import Grid, flow_prediction
from diffsamplers.steps import ModelOutput

from ..errors import SdImageError
from ._base import Backbone

__all__ = ["FlowBackbone", "pack2x2", "unpack2x2"]


def pack2x2(x: Tensor) -> Tensor:
    """[B, C, h, w] → [B, (h/2)(w/2), 4C] (2×2 patches in the order diffusers' packing pipelines use: the same
    reshape as ``FluxPipeline._pack_latents``, a private helper, so written here and tested equal to it)."""
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack2x2(z: Tensor, h: int, w: int) -> Tensor:
    """The inverse of :func:`pack2x2` (``FluxPipeline._unpack_latents`` on latent sizes; tested equal)."""
    b, _, c4 = z.shape
    return z.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c4 // 4, h, w)


class FlowBackbone(Backbone):
    """A rectified flow x_σ = (1 − σ) x_0 + σ ε with a velocity-predicting transformer (labels σ·T)."""

    flow = True
    packed = False  # the transformer reads 2×2-packed tokens (image sides: VAE factor × 2)
    linspace_sigmas_default = False  # its pipelines pass sigmas linspace(1, 1/N, N) to set_timesteps

    @property
    def denoiser(self):
        return self.pipe.transformer

    @property
    def patch(self) -> int:
        """Latent pixels per token side: 2 when packed, else the transformer's patch size."""
        return 2 if self.packed else int(getattr(self.denoiser.config, "patch_size", 1))

    @property
    def image_multiple(self) -> int:
        return self.vae_factor * self.patch

    def sigma_of(self, t) -> float:
        return float(t) / float(self.pipe.scheduler.config.num_train_timesteps)

    def output(self, x, raw, t) -> ModelOutput:
        return flow_prediction(x, raw, self.sigma_of(t))

    def lora_times(self, batch, g):
        """σ·T with σ uniform on the training grid {1/T, …, 1}."""
        n = int(self.pipe.scheduler.config.num_train_timesteps)
        return torch.randint(1, n + 1, (batch,), generator=g).float()

    def lora_example(self, x0, eps, t):
        """Flow matching: x_σ = (1 − σ) x_0 + σ ε with σ = t/T, target v = ε − x_0."""
        n = int(self.pipe.scheduler.config.num_train_timesteps)
        s = (t.float() / n).view(-1, *[1] * (x0.dim() - 1)).to(x0.device)
        return (1 - s) * x0 + s * eps, t.float().to(x0.device), eps - x0

    def row_flops(self, latent_px: int) -> float:
        """2 FLOPs per parameter per token; attention adds ~15 % at 1024²."""
        params = sum(p.numel() for p in self.denoiser.parameters())
        return 2.3 * params * latent_px / self.patch ** 2

    def scheduler(self, **overrides):
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler.from_config(self.pipe.scheduler.config, **overrides)

    def seq_len(self, latent_hw) -> int:
        """Image tokens of a latent of size ``latent_hw``."""
        return (int(latent_hw[0]) // self.patch) * (int(latent_hw[1]) // self.patch)

    def mu(self, latent_hw) -> float | None:
        """The resolution-dependent shift μ (``calculate_shift`` of the image sequence length), None when the
        scheduler has a fixed shift."""
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        c = self.pipe.scheduler.config
        if not c.get("use_dynamic_shifting", False):
            return None
        if latent_hw is None:
            raise SdImageError(f"{self.arch}: the resolution-dependent shift needs the latent size")
        return calculate_shift(self.seq_len(latent_hw), c.get("base_image_seq_len", 256),
                               c.get("max_image_seq_len", 4096), c.get("base_shift", 0.5), c.get("max_shift", 1.15))

    def sigmas(self, steps: int):
        """Explicit sigmas the family's pipelines pass to ``set_timesteps``: :meth:`linspace_sigmas` where the family
        declares ``linspace_sigmas_default`` (FLUX, Qwen-Image), else None (the scheduler spaces them)."""
        return self.linspace_sigmas(steps) if self.linspace_sigmas_default else None

    def reference_components(self) -> dict:
        """The flow families' reference pipelines run on this pipeline's own components (its scheduler)."""
        return {}

    def grid(self, steps, latent_hw=None, dtype=torch.float64) -> Grid:
        """The flow-matching sigmas of the pipeline's scheduler (its shift, and μ where dynamic), σ = 1 → 0."""
        sched = self.scheduler()
        kw = {}
        mu = self.mu(latent_hw)
        if mu is not None:
            kw["mu"] = mu
        sig = self.sigmas(steps)
        if sig is not None:
            sched.set_timesteps(sigmas=sig, **kw)
        else:
            sched.set_timesteps(steps, **kw)
        return Grid.from_flow_sigmas(sched.sigmas, sched.timesteps, dtype=dtype)

    def linspace_sigmas(self, steps: int):
        """``linspace(1, 1/N, N)``, as the packing families' pipelines pass (unless the config asks for
        ``use_flow_sigmas``)."""
        import numpy as np

        if self.pipe.scheduler.config.get("use_flow_sigmas", False):
            return None
        return np.linspace(1.0, 1.0 / steps, steps)
