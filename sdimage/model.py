"""The model callable ``model(x, t)`` that ``diffsamplers`` integrates, built from a diffusers pipeline of any
registered family through its adapter (:mod:`sdimage.backbones`).  Every function taking ``pipe`` also takes the
adapter itself (``backbone(pipe)``), so a caller builds it once and passes it on.

- Classifier-free guidance evaluates both branches in ONE batched denoiser call (``cfg_batch``), or in two calls
  where the two prompts' token lengths differ, and combines them by the adapter's ``combine``; the unconditional
  branch is skipped on calls where the guidance weight is exactly 1 (or no negative embeddings are given).
  Families whose guidance is an embedding (``guidance_embedded``) get the weight as a model input (one branch).
- v-prediction models are converted to ε with ``diffsamplers.eps_from_v`` (ᾱ_t from the pipeline's scheduler);
  flows return ``diffsamplers.Prediction`` (x̂_0 = x − σ v, ε̂ = x + (1 − σ) v), valid at σ = 1.
- The UNet runs in the pipeline's dtype/device; the sampler state may be float64 (inputs and outputs are cast).
- ``.nfe`` counts ε evaluations (one UNet call each, whatever the CFG batch); ``.unet_rows`` counts batch rows.
"""
from __future__ import annotations

from typing import Callable, Union

import torch
from torch import Tensor

from diffsamplers import Grid, official_grids, official_num_steps

from .backbones import Cond, backbone
from .errors import SdImageError

__all__ = ["EpsModel", "make_eps_model", "encode_prompt", "make_scheduler", "make_grid", "make_official_grids",
           "check_official_steps", "grid_labels"]

Guidance = Union[float, Callable[[int], float]]
AttnKwargs = Union[dict, Callable[[int], dict], None]


def _as_cond(c) -> Cond:
    return c if isinstance(c, Cond) else Cond(c)


@torch.no_grad()
def encode_prompt(pipe, prompt: str, negative: str | None = "") -> tuple[Cond, Cond | None]:
    """(cond, uncond) from the pipeline's text encoders (:class:`~sdimage.backbones.Cond`); ``negative=None`` gives
    no unconditional branch (families whose guidance is an embedding never have one)."""
    return backbone(pipe).encode_prompt(prompt, negative)


def make_scheduler(pipe, **overrides):
    """The sampling scheduler built ``from_config`` from the pipeline's: DDIM for VP models, flow-matching Euler for
    flows (it only supplies the timesteps / sigmas; the steps are :mod:`diffsamplers`')."""
    return backbone(pipe).scheduler(**overrides)


def make_grid(pipe, steps: int, t0: float = 1.0, dtype: torch.dtype = torch.float64,
              latent_hw: tuple[int, int] | None = None) -> Grid:
    """The ``steps``-step grid of the pipeline's scheduler; ``t0 < 1`` keeps the last int(t0·steps) steps.
    ``latent_hw``: the latent size, needed by a resolution-dependent shift."""
    if not isinstance(steps, int) or steps < 1:
        raise SdImageError(f"--steps must be an integer >= 1, got {steps!r}")
    if not 0.0 < float(t0) <= 1.0:
        raise SdImageError(f"--t0 must be in (0, 1], got {t0}")
    grid = backbone(pipe).grid(steps, latent_hw, dtype=dtype)
    return grid.tail(float(t0)) if float(t0) < 1.0 else grid


def grid_labels(grid: Grid) -> list:
    """The model labels of a grid's steps for JSON: integers for DDPM timesteps, floats (σ·T) for flows."""
    out = []
    for t in grid.timesteps[:-1].tolist():
        out.append(int(t) if float(t).is_integer() else round(float(t), 6))
    return out


def check_official_steps(t0: float, steps: int, what: str = "the official preset") -> int:
    """:func:`diffsamplers.official_num_steps` as one CLI line naming ``what`` (checked before any model loads)."""
    try:
        return official_num_steps(t0, steps)
    except ValueError as err:
        raise SdImageError(str(err).replace("the official preset", what).replace("clean preset", "--preset clean")) \
            from None


def make_official_grids(pipe, steps: int, t0: float, scheduler: str = "ddim",
                        dtype: torch.dtype = torch.float64,
                        latent_hw: tuple[int, int] | None = None) -> tuple[Grid, Grid | None]:
    """(backward, forward) grids of the official Cycle-SDE code (:func:`diffsamplers.official_grids`) over the
    timesteps of the scheduler that code used: ``"dpmsolver"`` (SDE-Drag: ``DPMSolverMultistepScheduler``) or
    ``"ddim"`` (DiffEdit-SDE: ``DDIMScheduler``), both built ``from_config`` from the pipeline's scheduler.
    The official code is SD-1.5 only; on a flow backbone this is the consistent flow grid (forward grid None),
    keeping the official step count."""
    if not isinstance(steps, int) or steps < 2:
        raise SdImageError(f"--steps must be an integer >= 2 for the official preset, got {steps!r}")
    check_official_steps(t0, steps)
    bb = backbone(pipe)
    if bb.flow:
        return make_grid(bb, steps, t0, dtype, latent_hw), None
    if scheduler == "dpmsolver":
        from diffusers import DPMSolverMultistepScheduler

        sched = DPMSolverMultistepScheduler.from_config(bb.pipe.scheduler.config)
    elif scheduler == "ddim":
        sched = bb.scheduler()  # DDIMScheduler.from_config (a VP family here)
    else:
        raise SdImageError(f"scheduler must be 'dpmsolver' or 'ddim', got {scheduler!r}")
    sched.set_timesteps(steps)
    return official_grids(sched.timesteps, sched.alphas_cumprod, float(t0), int(sched.config.num_train_timesteps),
                          dtype=dtype)


class EpsModel:
    """``model(x, t) -> ε`` (or a :class:`diffsamplers.Prediction` for flows) for ``diffsamplers`` (module docstring).

    ``prompt_embeds`` / ``negative_embeds``: what :func:`encode_prompt` returns (a :class:`~sdimage.backbones.Cond`,
    or a plain token-embedding tensor for SD 1.x/2.x).  ``guidance`` is a number or a function of the label t
    (the guidance embedding where the family has one; else the CFG weight); ``cross_attention_kwargs`` a dict, a function of t returning
    a dict (e.g. ``{"scale": lora_scale(t)}``) or None.  ``extra_channels`` ([1, C, h, w]) are concatenated after x
    on the channel axis (9-channel inpainting UNets: mask + masked-image latents).
    """

    def __init__(
        self,
        pipe,
        prompt_embeds,
        negative_embeds=None,
        guidance: Guidance = 1.0,
        cross_attention_kwargs: AttnKwargs = None,
        extra_channels: Tensor | None = None,
    ) -> None:
        self.backbone = backbone(pipe)
        bb = self.backbone
        self.device = bb.device
        self.dtype = bb.dtype
        self.cond = _as_cond(prompt_embeds).to(self.device, self.dtype)
        self.uncond = None if negative_embeds is None else _as_cond(negative_embeds).to(self.device, self.dtype)
        self.guidance = guidance
        self.cross_attention_kwargs = cross_attention_kwargs
        self.extra_channels = None if extra_channels is None else extra_channels.to(device=self.device, dtype=self.dtype)
        self.prediction_type = bb.prediction_type
        if self.prediction_type not in ("epsilon", "v_prediction", "flow"):
            raise SdImageError(f"unsupported prediction_type {self.prediction_type!r} (epsilon and v_prediction work)")
        if not bb.flow:
            in_ch = bb.denoiser.config.in_channels
            expected = in_ch - (0 if extra_channels is None else extra_channels.shape[1])
            if expected not in (4, bb.latent_channels):
                raise SdImageError(
                    f"the UNet takes {in_ch} input channels; "
                    + ("a 9-channel inpainting UNet needs mask + masked-image latents" if extra_channels is None
                       else "extra channels do not fit")
                )
        elif extra_channels is not None:
            raise SdImageError(f"{bb.arch}: extra input channels (inpainting denoisers) are not supported")
        self.nfe = 0
        self.unet_rows = 0
        self.should_stop: Callable[[], bool] | None = None  # checked before every evaluation (Stop in the editor)

    # kept for callers that read them directly
    @property
    def prompt_embeds(self) -> Tensor:
        return self.cond.embeds

    @property
    def negative_embeds(self) -> Tensor | None:
        return None if self.uncond is None else self.uncond.embeds

    def guidance_at(self, t) -> float:
        return float(self.guidance(t)) if callable(self.guidance) else float(self.guidance)

    def attn_kwargs_at(self, t) -> dict | None:
        c = self.cross_attention_kwargs
        return c(t) if callable(c) else c

    @torch.no_grad()
    def __call__(self, x: Tensor, t, guidance: float | None = None, lora_scale: float | None = None):
        """ε (or a Prediction) at label t; ``guidance`` / ``lora_scale`` override the model's own for this call."""
        if self.should_stop is not None and self.should_stop():
            from .errors import Stopped

            raise Stopped("stopped")
        bb = self.backbone
        b = x.shape[0]
        g = self.guidance_at(t) if guidance is None else float(guidance)
        attn = self.attn_kwargs_at(t) if lora_scale is None else {"scale": float(lora_scale)}
        xin = x.to(device=self.device, dtype=self.dtype)
        if self.extra_channels is not None:
            xin = torch.cat([xin, self.extra_channels.expand(b, -1, -1, -1)], dim=1)
        emb_g = g if bb.guidance_embedded else None
        cfg = not bb.guidance_embedded and self.uncond is not None and g != 1.0
        self.nfe += 1
        if cfg and bb.cfg_batch:  # both branches in one batched call
            out = bb.forward(torch.cat([xin, xin]), t, Cond.cat(self.uncond.expand(b), self.cond.expand(b)),
                             attn=attn)
            self.unet_rows += 2 * b
            u, c = out.to(device=x.device, dtype=x.dtype).chunk(2)
            out = bb.combine(u, c, g)
        elif cfg:  # two calls (the prompts' token lengths differ)
            c = bb.forward(xin, t, self.cond.expand(b), attn=attn).to(device=x.device, dtype=x.dtype)
            u = bb.forward(xin, t, self.uncond.expand(b), attn=attn).to(device=x.device, dtype=x.dtype)
            self.unet_rows += 2 * b
            out = bb.combine(u, c, g)
        else:
            out = bb.forward(xin, t, self.cond.expand(b), guidance=emb_g, attn=attn).to(device=x.device, dtype=x.dtype)
            self.unet_rows += b
        return bb.output(x, out, t)


def make_eps_model(
    pipe,
    prompt_embeds,
    negative_embeds=None,
    guidance: Guidance = 1.0,
    cross_attention_kwargs: AttnKwargs = None,
    extra_channels: Tensor | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EpsModel:
    """Functional alias of :class:`EpsModel` (``should_stop``: checked before every evaluation; True raises
    :class:`sdimage.errors.Stopped`)."""
    model = EpsModel(pipe, prompt_embeds, negative_embeds, guidance, cross_attention_kwargs, extra_channels)
    model.should_stop = should_stop
    return model
