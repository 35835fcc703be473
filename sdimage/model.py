"""The ε-model callable ``model(x, t) -> ε`` that ``diffsamplers`` integrates, built from a diffusers pipeline.

- Classifier-free guidance evaluates both branches in ONE batched UNet call; the unconditional branch is skipped
  on calls where the guidance weight is exactly 1 (or no negative embeddings are given).
- v-prediction models are converted to ε with ``diffsamplers.eps_from_v`` (ᾱ_t from the pipeline's scheduler).
- The UNet runs in the pipeline's dtype/device; the sampler state may be float64 (inputs and outputs are cast).
- ``.nfe`` counts ε evaluations (one UNet call each, whatever the CFG batch); ``.unet_rows`` counts batch rows.
"""
from __future__ import annotations

from typing import Callable, Union

import torch
from torch import Tensor

from diffsamplers import Grid, eps_from_v, official_grids, official_num_steps

from .errors import SdImageError

__all__ = ["EpsModel", "make_eps_model", "encode_prompt", "make_scheduler", "make_grid", "make_official_grids",
           "check_official_steps"]

Guidance = Union[float, Callable[[int], float]]
AttnKwargs = Union[dict, Callable[[int], dict], None]


def _device(pipe):
    return getattr(pipe, "_execution_device", None) or pipe.device


@torch.no_grad()
def encode_prompt(pipe, prompt: str, negative: str | None = "") -> tuple[Tensor, Tensor | None]:
    """(prompt_embeds, negative_embeds) from the pipeline's text encoder; ``negative=None`` gives no uncond branch."""
    cond, uncond = pipe.encode_prompt(
        prompt, _device(pipe), 1, do_classifier_free_guidance=negative is not None,
        negative_prompt=negative if negative is not None else None,
    )
    return cond, (uncond if negative is not None else None)


def make_scheduler(pipe, **overrides):
    """A ``DDIMScheduler`` built with ``from_config`` from the pipeline's scheduler config (inherits clip_sample etc.)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(pipe.scheduler.config, **overrides)


def make_grid(pipe, steps: int, t0: float = 1.0, dtype: torch.dtype = torch.float64) -> Grid:
    """The ``steps``-step DDIM timestep grid of the pipeline's scheduler; ``t0 < 1`` keeps the last round(t0·steps) steps."""
    if not isinstance(steps, int) or steps < 1:
        raise SdImageError(f"--steps must be an integer >= 1, got {steps!r}")
    if not 0.0 < float(t0) <= 1.0:
        raise SdImageError(f"--t0 must be in (0, 1], got {t0}")
    sched = make_scheduler(pipe)
    sched.set_timesteps(steps)
    grid = Grid.from_alphas_cumprod(sched.timesteps, sched.alphas_cumprod, sched.final_alpha_cumprod, dtype=dtype)
    return grid.tail(float(t0)) if float(t0) < 1.0 else grid


def check_official_steps(t0: float, steps: int, what: str = "the official preset") -> int:
    """:func:`diffsamplers.official_num_steps` as one CLI line naming ``what`` (checked before any model loads)."""
    try:
        return official_num_steps(t0, steps)
    except ValueError as err:
        raise SdImageError(str(err).replace("the official preset", what).replace("clean preset", "--preset clean")) \
            from None


def make_official_grids(pipe, steps: int, t0: float, scheduler: str = "ddim",
                        dtype: torch.dtype = torch.float64) -> tuple[Grid, Grid]:
    """(backward, forward) grids of the official Cycle-SDE code (:func:`diffsamplers.official_grids`) over the
    timesteps of the scheduler that code used: ``"dpmsolver"`` (SDE-Drag: ``DPMSolverMultistepScheduler``) or
    ``"ddim"`` (DiffEdit-SDE: ``DDIMScheduler``), both built ``from_config`` from the pipeline's scheduler."""
    if not isinstance(steps, int) or steps < 2:
        raise SdImageError(f"--steps must be an integer >= 2 for the official preset, got {steps!r}")
    check_official_steps(t0, steps)
    if scheduler == "dpmsolver":
        from diffusers import DPMSolverMultistepScheduler

        sched = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    elif scheduler == "ddim":
        sched = make_scheduler(pipe)
    else:
        raise SdImageError(f"scheduler must be 'dpmsolver' or 'ddim', got {scheduler!r}")
    sched.set_timesteps(steps)
    return official_grids(sched.timesteps, sched.alphas_cumprod, float(t0), int(sched.config.num_train_timesteps),
                          dtype=dtype)


class EpsModel:
    """``model(x, t) -> ε`` for ``diffsamplers`` (see the module docstring).

    ``guidance`` is a number or a function of the integer timestep t; ``cross_attention_kwargs`` a dict, a function
    of t returning a dict (e.g. ``{"scale": lora_scale(t)}``) or None.  ``extra_channels`` ([1, C, h, w]) are
    concatenated after x on the channel axis (9-channel inpainting UNets: mask + masked-image latents).
    """

    def __init__(
        self,
        pipe,
        prompt_embeds: Tensor,
        negative_embeds: Tensor | None = None,
        guidance: Guidance = 1.0,
        cross_attention_kwargs: AttnKwargs = None,
        extra_channels: Tensor | None = None,
    ) -> None:
        self.unet = pipe.unet
        self.device = _device(pipe)
        self.dtype = self.unet.dtype
        self.prompt_embeds = prompt_embeds.to(device=self.device, dtype=self.dtype)
        self.negative_embeds = None if negative_embeds is None else negative_embeds.to(device=self.device, dtype=self.dtype)
        self.guidance = guidance
        self.cross_attention_kwargs = cross_attention_kwargs
        self.extra_channels = None if extra_channels is None else extra_channels.to(device=self.device, dtype=self.dtype)
        self.prediction_type = pipe.scheduler.config.get("prediction_type", "epsilon")
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise SdImageError(f"unsupported prediction_type {self.prediction_type!r} (epsilon and v_prediction work)")
        self.alphas_cumprod = pipe.scheduler.alphas_cumprod.to(torch.float64)
        expected = self.unet.config.in_channels - (0 if extra_channels is None else extra_channels.shape[1])
        if expected not in (4, getattr(pipe.vae.config, "latent_channels", 4)):
            raise SdImageError(
                f"the UNet takes {self.unet.config.in_channels} input channels; "
                + ("a 9-channel inpainting UNet needs mask + masked-image latents" if extra_channels is None else "extra channels do not fit")
            )
        self.nfe = 0
        self.unet_rows = 0

    def guidance_at(self, t: int) -> float:
        return float(self.guidance(t)) if callable(self.guidance) else float(self.guidance)

    def attn_kwargs_at(self, t: int) -> dict | None:
        c = self.cross_attention_kwargs
        return c(t) if callable(c) else c

    @torch.no_grad()
    def __call__(self, x: Tensor, t, guidance: float | None = None, lora_scale: float | None = None) -> Tensor:
        """ε at label t; ``guidance`` / ``lora_scale`` override the model's own for this call (drag schedules)."""
        tt = int(t)
        b = x.shape[0]
        g = self.guidance_at(tt) if guidance is None else float(guidance)
        attn = self.attn_kwargs_at(tt) if lora_scale is None else {"scale": float(lora_scale)}
        xin = x.to(device=self.device, dtype=self.dtype)
        if self.extra_channels is not None:
            xin = torch.cat([xin, self.extra_channels.expand(b, -1, -1, -1)], dim=1)
        cond = self.prompt_embeds.expand(b, -1, -1)
        cfg = self.negative_embeds is not None and g != 1.0
        if cfg:
            xin = torch.cat([xin, xin])
            emb = torch.cat([self.negative_embeds.expand(b, -1, -1), cond])
        else:
            emb = cond
        tin = torch.full((xin.shape[0],), tt, device=self.device, dtype=torch.long)
        out = self.unet(xin, tin, encoder_hidden_states=emb, cross_attention_kwargs=attn, return_dict=False)[0]
        self.nfe += 1
        self.unet_rows += xin.shape[0]
        out = out.to(device=x.device, dtype=x.dtype)
        if cfg:
            u, c = out.chunk(2)
            out = u + g * (c - u)
        if self.prediction_type == "v_prediction":
            abar = float(self.alphas_cumprod[tt])
            out = eps_from_v(x, out, abar ** 0.5, (1.0 - abar) ** 0.5)
        return out


def make_eps_model(
    pipe,
    prompt_embeds: Tensor,
    negative_embeds: Tensor | None = None,
    guidance: Guidance = 1.0,
    cross_attention_kwargs: AttnKwargs = None,
    extra_channels: Tensor | None = None,
) -> EpsModel:
    """Functional alias of :class:`EpsModel`."""
    return EpsModel(pipe, prompt_embeds, negative_embeds, guidance, cross_attention_kwargs, extra_channels)
