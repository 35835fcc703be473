"""Backbone adapters: one class per model family, chosen from the pipeline (or its ``model_index.json``).

An adapter is all that differs between Stable Diffusion 1.x/2.x, SDXL, SD3/3.5 and FLUX.1; the samplers and edit
recipes (:mod:`diffsamplers`) are the same for all four.  It provides

- ``encode_prompt``: the text conditioning (:class:`Cond`: token embeddings, pooled embeddings, FLUX text ids);
- ``forward``: one call of the denoiser (UNet or transformer) on an unpacked latent batch [B, C, h, w] at a
  label t, returning its raw output (ε, v or the flow velocity); SDXL's ``time_ids``, FLUX's 2×2 packing, position
  ids and guidance embedding happen here, so copy-and-paste and masks act on the plain h × w latent grid;
- ``output``: raw output → what the samplers take: ε (VP models; v-prediction converted) or, for the rectified
  flows SD3 and FLUX, a :class:`diffsamplers.Prediction` (x̂_0 = x − σ v, ε̂ = x + (1 − σ) v), valid at σ = 1;
- ``grid``: the sampling :class:`diffsamplers.Grid` built from the pipeline's scheduler config (VP: the DDIM
  timesteps; SD3: the flow-matching sigmas with its ``shift``; FLUX: with the resolution-dependent shift μ);
- ``image_multiple``: what image sides must be divisible by (VAE factor × transformer patch / packing).

======  ===================  ==========================  ==========================  ===========================
family  denoiser             conditioning                guidance                    path
======  ===================  ==========================  ==========================  ===========================
sd      UNet (ε or v)        CLIP tokens                 CFG, one batched call       VP, DDIM grid
sdxl    UNet (ε or v)        2× CLIP tokens + pooled,    CFG, one batched call;      VP, DDIM grid
                             ``time_ids`` (H, W, 0, 0,   empty negative prompt →
                             H, W)                       zeros (as diffusers)
sd3     SD3 transformer (v)  CLIP-L/G + T5 + pooled      CFG, one batched call       flow, shift from config
flux    FLUX transformer (v) CLIP pooled + T5 tokens     guidance *embedding* (no    flow, μ from the latent
                                                         uncond branch)              size (``calculate_shift``)
======  ===================  ==========================  ==========================  ===========================
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from diffsamplers import Grid, eps_from_v, flow_prediction
from diffsamplers.steps import ModelOutput

from .errors import SdImageError

__all__ = ["ARCHS", "Cond", "Backbone", "SDBackbone", "SDXLBackbone", "SD3Backbone", "FluxBackbone", "backbone",
           "detect_arch", "arch_of_folder", "execution_device"]

ARCHS = ("sd", "sdxl", "sd3", "flux")

# diffusers pipeline class (model_index.json "_class_name") → family
_CLASS_ARCH = {
    "StableDiffusionPipeline": "sd", "StableDiffusionImg2ImgPipeline": "sd", "StableDiffusionInpaintPipeline": "sd",
    "StableDiffusionDiffEditPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl", "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "StableDiffusionXLInpaintPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3", "StableDiffusion3Img2ImgPipeline": "sd3", "StableDiffusion3InpaintPipeline": "sd3",
    "FluxPipeline": "flux", "FluxImg2ImgPipeline": "flux", "FluxInpaintPipeline": "flux",
}
SUPPORTED = "Stable Diffusion 1.x/2.x, SDXL, SD3/3.5 and FLUX.1 (text-to-image, img2img and inpaint pipelines)"


def arch_of_folder(path: str | Path) -> str:
    """The family of a diffusers folder from its ``model_index.json`` (``_class_name``)."""
    p = Path(path) / "model_index.json"
    try:
        name = json.loads(p.read_text(encoding="utf-8")).get("_class_name", "")
    except (OSError, ValueError) as err:
        raise SdImageError(f"cannot read {str(p)!r}: {err}") from None
    if name not in _CLASS_ARCH:
        raise SdImageError(f"model {str(path)!r} is a {name or 'unknown'} pipeline; supported families: {SUPPORTED}")
    return _CLASS_ARCH[name]


def detect_arch(pipe) -> str:
    """The family of a loaded pipeline (by its components, so a pipeline built from parts works too)."""
    name = type(pipe).__name__
    if name in _CLASS_ARCH:
        return _CLASS_ARCH[name]
    den = getattr(pipe, "transformer", None)
    if den is not None:
        kind = type(den).__name__
        if kind.startswith("Flux"):
            return "flux"
        if kind.startswith("SD3"):
            return "sd3"
    if getattr(pipe, "unet", None) is not None:
        return "sdxl" if getattr(pipe, "text_encoder_2", None) is not None else "sd"
    raise SdImageError(f"unsupported pipeline {name}; supported families: {SUPPORTED}")


@dataclass(frozen=True)
class Cond:
    """Text conditioning of one prompt (batch 1): token embeddings, pooled embeddings, FLUX's text position ids."""

    embeds: Tensor
    pooled: Tensor | None = None
    text_ids: Tensor | None = None

    def to(self, device, dtype) -> "Cond":
        cast = (lambda t: None if t is None else t.to(device=device, dtype=dtype))
        return Cond(cast(self.embeds), cast(self.pooled), None if self.text_ids is None else self.text_ids.to(device))

    def expand(self, b: int) -> "Cond":
        return replace(self, embeds=self.embeds.expand(b, *self.embeds.shape[1:]),
                       pooled=None if self.pooled is None else self.pooled.expand(b, *self.pooled.shape[1:]))

    @staticmethod
    def cat(a: "Cond", b: "Cond") -> "Cond":
        return Cond(torch.cat([a.embeds, b.embeds]), None if a.pooled is None else torch.cat([a.pooled, b.pooled]),
                    a.text_ids)


def execution_device(pipe):
    """Where the pipeline's models run (accelerate's offload hooks set ``_execution_device``)."""
    return getattr(pipe, "_execution_device", None) or pipe.device


def _labels(t, b: int, device, dtype, scale: float = 1.0) -> Tensor:
    """The denoiser's timestep input for a batch of b: one label t broadcast, or a [b] tensor of labels."""
    if torch.is_tensor(t) and t.dim() == 1:
        return (t.to(device=device, dtype=torch.float64) / scale).to(dtype) if scale != 1.0 else t.to(device, dtype)
    v = (float(t) / scale) if dtype.is_floating_point else int(t)
    return torch.full((b,), v, device=device, dtype=dtype)


class Backbone:
    """Stable Diffusion 1.x/2.x: a UNet on CLIP tokens, ε- or v-prediction, DDIM grid (VP path)."""

    arch = "sd"
    flow = False
    cfg_batch = True  # classifier-free guidance runs both branches in one batched call
    default_guidance = 7.5  # the CLI's default --guidance (diffusers' pipeline default)

    def __init__(self, pipe) -> None:
        self.pipe = pipe

    # ------------------------------------------------------------------ components
    @property
    def denoiser(self):
        return self.pipe.unet

    @property
    def device(self):
        return execution_device(self.pipe)

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.dtype

    @property
    def vae_factor(self) -> int:
        return int(getattr(self.pipe, "vae_scale_factor", 2 ** (len(self.pipe.vae.config.block_out_channels) - 1)))

    @property
    def image_multiple(self) -> int:
        """Image sides must be multiples of this (the VAE factor; × patch size or 2×2 packing for transformers)."""
        return self.vae_factor

    @property
    def prediction_type(self) -> str:
        return "flow" if self.flow else self.pipe.scheduler.config.get("prediction_type", "epsilon")

    def lora_modules(self) -> list[str]:
        return ["to_q", "to_k", "to_v", "to_out.0"]

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def encode_prompt(self, prompt: str, negative: str | None = "") -> tuple[Cond, Cond | None]:
        """(cond, uncond); ``negative=None`` gives no unconditional branch."""
        cond, uncond = self.pipe.encode_prompt(prompt, self.device, 1, do_classifier_free_guidance=negative is not None,
                                               negative_prompt=negative)
        return Cond(cond), (Cond(uncond) if negative is not None else None)

    # ------------------------------------------------------------------ denoiser
    def forward(self, x: Tensor, t, cond: Cond, guidance: float | None = None, attn: dict | None = None) -> Tensor:
        """Raw denoiser output on a latent batch ``x`` [B, C, h, w] (model dtype) at label ``t``; ``cond`` has batch B."""
        tin = _labels(t, x.shape[0], x.device, torch.long)
        return self.denoiser(x, tin, encoder_hidden_states=cond.embeds, cross_attention_kwargs=attn,
                             return_dict=False)[0]

    def forward_batch(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        """``forward`` with one label per row (LoRA training); grads flow."""
        return self.forward(x, t, cond)

    def output(self, x: Tensor, raw: Tensor, t) -> ModelOutput:
        """Raw output (state dtype) → ε (v-prediction: ``eps_from_v`` at the label's ᾱ)."""
        if self.prediction_type == "v_prediction":
            abar = float(self.pipe.scheduler.alphas_cumprod[int(t)])
            return eps_from_v(x, raw, abar ** 0.5, (1.0 - abar) ** 0.5)
        if self.prediction_type != "epsilon":
            raise SdImageError(f"unsupported prediction_type {self.prediction_type!r} (epsilon and v_prediction work)")
        return raw

    def lora_times(self, batch: int, g: torch.Generator) -> Tensor:
        """Training timesteps of one LoRA step: integers uniform in [0, T) (drawn first, as the official script)."""
        return torch.randint(0, int(self.pipe.scheduler.config.num_train_timesteps), (batch,), generator=g)

    def lora_example(self, x0: Tensor, eps: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(x_t, label t, target of the raw output) for one denoising-score-matching step at timesteps ``t``."""
        sched = self.pipe.scheduler
        abar = sched.alphas_cumprod.to(torch.float64)[t]
        a = abar.sqrt().float().view(-1, *[1] * (x0.dim() - 1)).to(x0.device)
        s = (1 - abar).sqrt().float().view(-1, *[1] * (x0.dim() - 1)).to(x0.device)
        target = a * eps - s * x0 if self.prediction_type == "v_prediction" else eps
        return a * x0 + s * eps, t.to(x0.device), target

    # ------------------------------------------------------------------ grids
    def scheduler(self, **overrides):
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self.pipe.scheduler.config, **overrides)

    def grid(self, steps: int, latent_hw: tuple[int, int] | None = None, dtype: torch.dtype = torch.float64) -> Grid:
        """The ``steps``-step DDIM timestep grid of the pipeline's scheduler config (all steps)."""
        sched = self.scheduler()
        sched.set_timesteps(steps)
        return Grid.from_alphas_cumprod(sched.timesteps, sched.alphas_cumprod, sched.final_alpha_cumprod, dtype=dtype)

    def describe(self) -> dict:
        return {"arch": self.arch, "denoiser": type(self.denoiser).__name__, "prediction_type": self.prediction_type}


class SDXLBackbone(Backbone):
    """SDXL: two CLIP encoders (tokens concatenated, pooled from the second), ``time_ids`` = (H, W, 0, 0, H, W)."""

    arch = "sdxl"

    @torch.no_grad()
    def encode_prompt(self, prompt: str, negative: str | None = "") -> tuple[Cond, Cond | None]:
        # diffusers' SDXL default: an empty negative prompt means zero embeddings (force_zeros_for_empty_prompt)
        neg = None if negative == "" else negative
        pe, npe, pooled, npooled = self.pipe.encode_prompt(prompt=prompt, device=self.device, num_images_per_prompt=1,
                                                           do_classifier_free_guidance=negative is not None,
                                                           negative_prompt=neg)
        return Cond(pe, pooled), (Cond(npe, npooled) if negative is not None else None)

    def time_ids(self, x: Tensor) -> Tensor:
        h, w = (int(v) * self.vae_factor for v in x.shape[-2:])
        return torch.tensor([[h, w, 0, 0, h, w]], device=x.device, dtype=x.dtype).expand(x.shape[0], -1)

    def forward(self, x, t, cond, guidance=None, attn=None):
        tin = _labels(t, x.shape[0], x.device, torch.long)
        added = {"text_embeds": cond.pooled, "time_ids": self.time_ids(x)}
        return self.denoiser(x, tin, encoder_hidden_states=cond.embeds, added_cond_kwargs=added,
                             cross_attention_kwargs=attn, return_dict=False)[0]


class SD3Backbone(Backbone):
    """SD3/3.5: MM-DiT on CLIP-L/G + T5 tokens and pooled CLIP, velocity output, flow-matching sigmas with shift."""

    arch = "sd3"
    flow = True
    default_guidance = 7.0

    @property
    def denoiser(self):
        return self.pipe.transformer

    @property
    def image_multiple(self) -> int:
        return self.vae_factor * int(getattr(self.denoiser.config, "patch_size", 1))

    @torch.no_grad()
    def encode_prompt(self, prompt: str, negative: str | None = "") -> tuple[Cond, Cond | None]:
        pe, npe, pooled, npooled = self.pipe.encode_prompt(prompt=prompt, prompt_2=None, prompt_3=None,
                                                           device=self.device, num_images_per_prompt=1,
                                                           do_classifier_free_guidance=negative is not None,
                                                           negative_prompt=negative)
        return Cond(pe, pooled), (Cond(npe, npooled) if negative is not None else None)

    def forward(self, x, t, cond, guidance=None, attn=None):
        tin = _labels(t, x.shape[0], x.device, x.dtype)
        return self.denoiser(hidden_states=x, timestep=tin, encoder_hidden_states=cond.embeds,
                             pooled_projections=cond.pooled, joint_attention_kwargs=None if attn is None else dict(attn),
                             return_dict=False)[0]

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

    def scheduler(self, **overrides):
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler.from_config(self.pipe.scheduler.config, **overrides)

    def _seq_len(self, latent_hw) -> int:
        p = int(getattr(self.denoiser.config, "patch_size", 1))
        return (int(latent_hw[0]) // p) * (int(latent_hw[1]) // p)

    def _mu(self, latent_hw) -> float | None:
        c = self.pipe.scheduler.config
        if not c.get("use_dynamic_shifting", False):
            return None
        if latent_hw is None:
            raise SdImageError(f"{self.arch}: the resolution-dependent shift needs the latent size")
        n = self._seq_len(latent_hw)
        b0, b1 = c.get("base_image_seq_len", 256), c.get("max_image_seq_len", 4096)
        s0, s1 = c.get("base_shift", 0.5), c.get("max_shift", 1.15)
        m = (s1 - s0) / (b1 - b0)
        return n * m + (s0 - m * b0)

    def _sigmas(self, steps: int):
        return None  # SD3 pipelines let the scheduler space the timesteps

    def grid(self, steps, latent_hw=None, dtype=torch.float64) -> Grid:
        """The flow-matching sigmas of the pipeline's scheduler (its shift, and μ where dynamic), σ = 1 → 0."""
        sched = self.scheduler()
        kw = {}
        mu = self._mu(latent_hw)
        if mu is not None:
            kw["mu"] = mu
        sig = self._sigmas(steps)
        if sig is not None:
            sched.set_timesteps(sigmas=sig, **kw)
        else:
            sched.set_timesteps(steps, **kw)
        return Grid.from_flow_sigmas(sched.sigmas, sched.timesteps, dtype=dtype)


class FluxBackbone(SD3Backbone):
    """FLUX.1: MM-DiT on T5 tokens + pooled CLIP, 2×2-packed latents with position ids, guidance *embedding*
    (distilled; no unconditional branch), flow-matching sigmas linspace(1, 1/N) with μ from the image size."""

    arch = "flux"
    cfg_batch = False
    default_guidance = 3.5  # FLUX.1 [dev]'s guidance embedding

    @property
    def image_multiple(self) -> int:
        return self.vae_factor * 2

    @torch.no_grad()
    def encode_prompt(self, prompt: str, negative: str | None = "") -> tuple[Cond, Cond | None]:
        pe, pooled, text_ids = self.pipe.encode_prompt(prompt=prompt, prompt_2=None, device=self.device,
                                                       num_images_per_prompt=1)
        return Cond(pe, pooled, text_ids), None

    @staticmethod
    def pack(x: Tensor) -> Tensor:
        """[B, C, h, w] → [B, (h/2)(w/2), 4C] (2×2 patches, as FLUX's transformer reads them)."""
        b, c, h, w = x.shape
        return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)

    @staticmethod
    def unpack(z: Tensor, h: int, w: int) -> Tensor:
        b, _, c4 = z.shape
        return z.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c4 // 4, h, w)

    @staticmethod
    def image_ids(h: int, w: int, device, dtype) -> Tensor:
        ids = torch.zeros(h // 2, w // 2, 3)
        ids[..., 1] += torch.arange(h // 2)[:, None]
        ids[..., 2] += torch.arange(w // 2)[None, :]
        return ids.reshape(-1, 3).to(device=device, dtype=dtype)

    def forward(self, x, t, cond, guidance=None, attn=None):
        b, _, h, w = x.shape
        if h % 2 or w % 2:
            raise SdImageError(f"FLUX needs an even latent size (image sides multiple of {self.image_multiple}); "
                               f"got a {h}x{w} latent")
        tin = _labels(t, b, x.device, x.dtype, float(self.pipe.scheduler.config.num_train_timesteps))
        g = None
        if getattr(self.denoiser.config, "guidance_embeds", False):
            g = torch.full((b,), 3.5 if guidance is None else float(guidance), device=x.device, dtype=torch.float32)
        out = self.denoiser(hidden_states=self.pack(x), timestep=tin, guidance=g, pooled_projections=cond.pooled,
                            encoder_hidden_states=cond.embeds, txt_ids=cond.text_ids,
                            img_ids=self.image_ids(h, w, x.device, x.dtype),
                            joint_attention_kwargs=None if attn is None else dict(attn), return_dict=False)[0]
        return self.unpack(out, h, w)

    def _seq_len(self, latent_hw) -> int:
        return (int(latent_hw[0]) // 2) * (int(latent_hw[1]) // 2)

    def _sigmas(self, steps: int):
        import numpy as np

        if self.pipe.scheduler.config.get("use_flow_sigmas", False):
            return None
        return np.linspace(1.0, 1.0 / steps, steps)


_CLASSES = {"sd": Backbone, "sdxl": SDXLBackbone, "sd3": SD3Backbone, "flux": FluxBackbone}


def backbone(pipe) -> Backbone:
    """The adapter for a loaded pipeline."""
    return _CLASSES[detect_arch(pipe)](pipe)


SDBackbone = Backbone
