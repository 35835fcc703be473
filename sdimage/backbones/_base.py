"""The adapter base class every family module subclasses, and the text conditioning it passes around.

:class:`Backbone` declares, as class attributes and class methods, everything the rest of :mod:`sdimage` may
ask about a family (its diffusers classes, folders, tiny builder, guidance, LoRA, cost model, VAE), and
implements the behaviour most families share: a UNet on token embeddings with ε- or v-prediction on the DDIM grid
(VP path).  A family module overrides what differs and registers its class (:func:`sdimage.backbones.register`).
"""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor

from diffsamplers import Grid, eps_from_v
from diffsamplers.steps import ModelOutput

from ..errors import SdImageError

__all__ = ["Cond", "Backbone", "execution_device", "labels", "unet_flops"]


def unet_flops(params: int, latent_px: int) -> float:
    """FLOPs of one UNet row (batch element) with ``params`` parameters on ``latent_px`` latent pixels: fitted to
    ``torch.utils.flop_counter`` counts of the SD-1.5 UNet at 256² … 1024² (within 2 %); the quadratic term is
    self-attention at the finest attention level."""
    return params * latent_px * (0.19 + 8.4e-6 * latent_px)


@dataclass(frozen=True)
class Cond:
    """Text conditioning of one prompt (batch 1): token embeddings, pooled embeddings, text position ids and the
    token attention mask (1 = a real token; None = all tokens count)."""

    embeds: Tensor
    pooled: Tensor | None = None
    text_ids: Tensor | None = None
    mask: Tensor | None = None

    def to(self, device, dtype) -> "Cond":
        cast = (lambda t: None if t is None else t.to(device=device, dtype=dtype))
        move = (lambda t: None if t is None else t.to(device))
        return Cond(cast(self.embeds), cast(self.pooled), move(self.text_ids), move(self.mask))

    def expand(self, b: int) -> "Cond":
        grow = (lambda t: None if t is None else t.expand(b, *t.shape[1:]))
        return replace(self, embeds=grow(self.embeds), pooled=grow(self.pooled), mask=grow(self.mask))

    @staticmethod
    def cat(a: "Cond", b: "Cond") -> "Cond":
        """Two conditionings of the same token length stacked on the batch axis (batched CFG)."""
        both = (lambda x, y: None if x is None else torch.cat([x, y]))
        return Cond(both(a.embeds, b.embeds), both(a.pooled, b.pooled), a.text_ids, both(a.mask, b.mask))


def execution_device(pipe) -> torch.device:
    """Where the pipeline's models run (accelerate's offload hooks set ``_execution_device``); an adapter is
    accepted too."""
    if isinstance(pipe, Backbone):
        pipe = pipe.pipe
    return getattr(pipe, "_execution_device", None) or pipe.device


def labels(t, b: int, device, dtype, scale: float = 1.0) -> Tensor:
    """The denoiser's timestep input for a batch of b: one label t broadcast, or a [b] tensor of labels."""
    if torch.is_tensor(t) and t.dim() == 1:
        return (t.to(device=device, dtype=torch.float64) / scale).to(dtype) if scale != 1.0 else t.to(device, dtype)
    v = (float(t) / scale) if dtype.is_floating_point else int(t)
    return torch.full((b,), v, device=device, dtype=dtype)


@contextmanager
def vae_precision(vae):
    """A float16 VAE whose config says ``force_upcast`` runs in float32 for the call (as diffusers does)."""
    up = vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
    if up:
        vae.to(dtype=torch.float32)
    try:
        yield vae.dtype
    finally:
        if up:
            vae.to(dtype=torch.float16)


class Backbone:
    """Base adapter: a UNet on token embeddings, ε- or v-prediction, the DDIM grid (VP path).

    Class-level declarations (a family module sets them):

    - ``arch`` (the id used on the command line and in JSON), ``label`` (what the family covers, for messages),
      ``order`` (position in every list of families);
    - ``pipeline_classes``: diffusers pipeline class names whose ``model_index.json`` means this family (the first
      is the one loaded, then its img2img and inpaint pipelines: :meth:`reference_pipeline`); ``model_classes``:
      its denoiser class names;
    - ``subfolders``: what a complete pipeline folder holds; :meth:`load_kwargs`: extra ``from_pretrained`` args;
    - ``tiny_inpaint`` / ``tiny_prediction_types``: the options of :meth:`build_tiny` (``make-tiny-model``);
    - ``flow``, ``cfg_batch`` (CFG branches in one batched call), ``guidance_embedded`` (guidance is a model input,
      no unconditional branch), ``default_guidance``, ``guidance_note`` (for the CLI help);
    - ``lora_targets``: the attention projections the drag LoRA adapts.
    """

    arch: ClassVar[str] = ""
    label: ClassVar[str] = ""
    order: ClassVar[int] = 100
    pipeline_classes: ClassVar[tuple[str, ...]] = ()
    model_classes: ClassVar[tuple[str, ...]] = ()
    subfolders: ClassVar[tuple[str, ...]] = ()
    tiny_inpaint: ClassVar[bool] = False
    tiny_prediction_types: ClassVar[tuple[str, ...]] = ("epsilon",)
    flow: ClassVar[bool] = False
    cfg_batch: ClassVar[bool] = True
    guidance_embedded: ClassVar[bool] = False
    default_guidance: ClassVar[float] = 7.5
    lora_targets: ClassVar[tuple[str, ...]] = ("to_q", "to_k", "to_v", "to_out.0")

    def __init__(self, pipe) -> None:
        self.pipe = pipe

    # ------------------------------------------------------------------ declarations (class level)
    @classmethod
    def load_kwargs(cls) -> dict[str, Any]:
        """Extra keyword arguments of the family's ``from_pretrained``."""
        return {}

    @classmethod
    def pipeline_class(cls):
        """The diffusers class that loads a folder of this family (the text-to-image pipeline)."""
        import diffusers

        return getattr(diffusers, cls.pipeline_classes[0])

    @classmethod
    def matches(cls, pipe) -> bool:
        """Whether a loaded pipeline (possibly built from parts) is of this family, by its denoiser's class."""
        den = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        return den is not None and type(den).__name__ in cls.model_classes

    @classmethod
    def build_tiny(cls, inpaint: bool = False, prediction_type: str = "epsilon"):
        """A tiny random-weight pipeline of the family (weights drawn from torch's global generator: the caller
        seeds it, :func:`sdimage.tiny.make_tiny_pipeline`)."""
        raise NotImplementedError(f"{cls.arch}: no tiny builder")

    # ------------------------------------------------------------------ components
    @property
    def denoiser(self):
        return self.pipe.unet

    @property
    def vae(self):
        return self.pipe.vae

    @property
    def device(self):
        return execution_device(self.pipe)

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.dtype

    @property
    def vae_factor(self) -> int:
        f = getattr(self.pipe, "vae_scale_factor", None)
        return int(f) if f is not None else 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def image_multiple(self) -> int:
        """Image sides must be multiples of this (the VAE factor; × patch size or 2×2 packing for transformers)."""
        return self.vae_factor

    @property
    def latent_channels(self) -> int:
        return int(getattr(self.vae.config, "latent_channels", 4))

    @property
    def prediction_type(self) -> str:
        return "flow" if self.flow else self.pipe.scheduler.config.get("prediction_type", "epsilon")

    @property
    def inpaint_channels(self) -> bool:
        """An inpainting denoiser that reads [x, mask, masked-image latents] (a 9-channel UNet)."""
        return not self.flow and int(self.denoiser.config.in_channels) == 2 * self.latent_channels + 1

    def lora_modules(self) -> list[str]:
        return list(self.lora_targets)

    def describe(self) -> dict:
        return {"arch": self.arch, "denoiser": type(self.denoiser).__name__, "prediction_type": self.prediction_type}

    # ------------------------------------------------------------------ VAE
    def _vae_scale(self):
        """(shift, scale) of the latents: latents = (z − shift)·scale (tensors or floats)."""
        c = self.vae.config
        return getattr(c, "shift_factor", None) or 0.0, c.scaling_factor

    @torch.no_grad()
    def encode_image(self, image: Tensor, generator: torch.Generator | None = None, sample: bool = False) -> Tensor:
        """Image [B, 3, H, W] in [−1, 1] → the sampler's latents [B, C, h, w]: the latent distribution's mean (or a
        sample), shifted and scaled as the family's pipelines do."""
        vae = self.vae
        with vae_precision(vae) as dt:
            dist = vae.encode(image.to(device=self.device, dtype=dt)).latent_dist
            z = dist.sample(generator=generator) if sample else dist.mean
        shift, scale = self._vae_scale()
        return (z - shift) * scale

    @torch.no_grad()
    def decode_latents(self, latents: Tensor) -> Tensor:
        """Latents → decoded image [B, 3, H, W] in [−1, 1] (float32, on the VAE's device)."""
        vae = self.vae
        with vae_precision(vae) as dt:
            shift, scale = self._vae_scale()
            z = latents.to(device=self.device, dtype=dt) / scale + shift
            return vae.decode(z).sample.float().clamp(-1, 1)

    @torch.no_grad()
    def latent_std(self, image: Tensor) -> Tensor:
        """The VAE posterior's std on the latent scale (LoRA training draws fresh posterior samples)."""
        vae = self.vae
        dist = vae.encode(image.to(device=vae.device, dtype=vae.dtype)).latent_dist
        return dist.std.float() * self._vae_scale()[1]

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def encode_prompt(self, prompt: str, negative: str | None = "") -> tuple[Cond, Cond | None]:
        """(cond, uncond); ``negative=None`` gives no unconditional branch."""
        cond, uncond = self.pipe.encode_prompt(prompt, self.device, 1, do_classifier_free_guidance=negative is not None,
                                               negative_prompt=negative)
        return Cond(cond), (Cond(uncond) if negative is not None else None)

    # ------------------------------------------------------------------ denoiser
    def forward(self, x: Tensor, t, cond: Cond, guidance: float | None = None, attn: dict | None = None) -> Tensor:
        """Raw denoiser output on a latent batch ``x`` [B, C, h, w] (model dtype) at label ``t``; ``cond`` has batch
        B; ``guidance`` is passed only to families with ``guidance_embedded``."""
        tin = labels(t, x.shape[0], x.device, torch.long)
        return self.denoiser(x, tin, encoder_hidden_states=cond.embeds, cross_attention_kwargs=attn,
                             return_dict=False)[0]

    def forward_batch(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        """``forward`` with one label per row (LoRA training); grads flow."""
        return self.forward(x, t, cond)

    def combine(self, uncond: Tensor, cond: Tensor, g: float) -> Tensor:
        """Classifier-free guidance of the two raw outputs: u + g (c − u)."""
        return uncond + g * (cond - uncond)

    def output(self, x: Tensor, raw: Tensor, t) -> ModelOutput:
        """Raw output (state dtype) → ε (v-prediction: ``eps_from_v`` at the label's ᾱ)."""
        if self.prediction_type == "v_prediction":
            abar = float(self.pipe.scheduler.alphas_cumprod[int(t)])
            return eps_from_v(x, raw, abar ** 0.5, (1.0 - abar) ** 0.5)
        if self.prediction_type != "epsilon":
            raise SdImageError(f"unsupported prediction_type {self.prediction_type!r} (epsilon and v_prediction work)")
        return raw

    # ------------------------------------------------------------------ LoRA
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

    @torch.no_grad()
    def fingerprint(self) -> str:
        """Cheap identity of the base denoiser (LoRA cache key): its config plus the bytes of its first and last
        base (non-LoRA) parameters."""
        den = self.denoiser
        h = hashlib.sha256(json.dumps(dict(den.config), sort_keys=True, default=str).encode())
        for w in self._fingerprint_tensors():
            h.update(w.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def _fingerprint_tensors(self) -> list[Tensor]:
        base = [p for n, p in self.denoiser.named_parameters() if "lora_" not in n]
        return [base[0], base[-1]]

    # ------------------------------------------------------------------ cost model (run-time estimate)
    def row_flops(self, latent_px: int) -> float:
        """FLOPs of one denoiser row (batch element) on ``latent_px`` latent pixels (a UNet: :func:`unet_flops`)."""
        return unet_flops(sum(p.numel() for p in self.denoiser.parameters()), latent_px)

    # ------------------------------------------------------------------ grids
    def scheduler(self, **overrides):
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self.pipe.scheduler.config, **overrides)

    def grid(self, steps: int, latent_hw: tuple[int, int] | None = None, dtype: torch.dtype = torch.float64) -> Grid:
        """The ``steps``-step DDIM timestep grid of the pipeline's scheduler config (all steps)."""
        sched = self.scheduler()
        sched.set_timesteps(steps)
        return Grid.from_alphas_cumprod(sched.timesteps, sched.alphas_cumprod, sched.final_alpha_cumprod, dtype=dtype)

    # ------------------------------------------------------------------ the diffusers pipelines it equals (tests)
    def reference_pipeline(self, kind: str):
        """diffusers' own ``kind`` pipeline ("img2img" or "inpaint": ``pipeline_classes[1]`` / ``[2]``) on this
        pipeline's components, with :meth:`reference_components` and the family's load arguments (the tests compare
        against it)."""
        import diffusers

        index = {"img2img": 1, "inpaint": 2}.get(kind)
        if index is None or index >= len(self.pipeline_classes):
            raise NotImplementedError(f"{self.arch}: no {kind} reference pipeline")
        cls = getattr(diffusers, self.pipeline_classes[index])
        ref = cls(**{**self.pipe.components, **self.reference_components(), **self.load_kwargs()})
        ref.set_progress_bar_config(disable=True)
        return ref

    def reference_components(self) -> dict[str, Any]:
        """Components the reference pipeline takes instead of this pipeline's: the scheduler whose deterministic
        steps the ODE sampler reproduces (DDIM for the UNet families)."""
        return {"scheduler": self.scheduler()}

    def reference_kwargs(self, latent_hw: tuple[int, int], guidance: float) -> dict[str, Any]:
        """Call arguments of :meth:`reference_pipeline` for a latent of size ``latent_hw`` and the guidance weight
        ``guidance`` (with the empty negative prompt this package uses by default)."""
        return {"guidance_scale": guidance}

    def reference_latents(self, out: Tensor, latent_hw: tuple[int, int]) -> Tensor:
        """A reference pipeline's ``output_type="latent"`` result as [B, C, h, w] latents."""
        return out
