"""Editing tasks on a loaded pipeline, each returning a :class:`TaskResult` (image [1, 3, H, W] in [-1, 1], a
JSON-able ``info`` dict with parameters, NFE, wall time and peak memory, and the final latents).

Each task builds the ε-model, the grid, the noise and the masks and calls the one editing recipe of
:mod:`diffsamplers.recipes`; nothing here composes an edit or a sampler update.

DiffEdit has two presets (``preset=``), line by line:

======================  ============================================  ==========================================
                        ``"official"`` (default; ML-GSAI/SDE-Drag       ``"clean"`` (ODE and SDE differ only in
                        ``diffedit.py``)                                the sampler)
======================  ============================================  ==========================================
encode model            source prompt, CFG ``guidance`` against ""     source prompt, CFG 1 (no guidance)
ODE target model        target prompt, negative = source prompt        the same
SDE target model        target prompt, CFG against "" (the official    target prompt, negative = source prompt
                        ``get_eps(..., is_diffedit=True)``)
SDE time grid           :func:`diffsamplers.official_grids` over the   the ODE's grid (diffusers' DiffEdit:
                        DDIM timesteps (starts one step earlier, ends   last int(t0·S) DDIM steps)
                        at ᾱ of the last timestep)
ODE reset outside mask  to the inverted latent one level noisier        to the inverted latent at the same level
                        (diffusers' DiffEdit pipeline: after step i,     (so the unmasked region ends at the input)
                        ``image_latents[i]``)
given mask → latent     nearest (diffusers' DiffEdit pipeline)          area average > 0.5
======================  ============================================  ==========================================
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Literal

import torch
from torch import Tensor

from diffsamplers import GaussianNoise, Grid, check_preset, recipes
from diffsamplers.presets import method_label

from .errors import SdImageError
from .results import TaskResult
from .backbones import backbone, execution_device
from .latents import decode, encode, mask_to_latent, vae_factor
from .model import EpsModel, encode_prompt, grid_labels, make_grid, make_official_grids
from .runinfo import RunTimer

__all__ = ["TaskResult", "inpaint", "translate", "diffedit", "reconstruct", "diffedit_mask"]

Sampler = Literal["ode", "sde"]
Solver = Literal["ddim", "dpmpp"]


def _state_dtype(pipe) -> torch.dtype:
    """Sampler state dtype: float64 when the denoiser runs in float64, else float32."""
    return torch.float64 if backbone(pipe).dtype == torch.float64 else torch.float32


def _latent_hw(pipe, image: Tensor) -> tuple[int, int]:
    f = vae_factor(pipe)
    return image.shape[-2] // f, image.shape[-1] // f


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def _check(sampler: str, solver: str = "ddim", order: int = 2, eta: float | None = None) -> None:
    """The recipes' one check of the ODE/SDE switch, as an :class:`SdImageError` (one line in the CLI)."""
    try:
        recipes.check_sampler(sampler, solver, order, eta)
    except ValueError as err:
        raise SdImageError(str(err)) from None


def _sampler_name(sampler, solver, order, eta) -> str:
    return method_label("sample", sampler, solver, order, eta)


def _edit_name(sampler: str, solver: str, order: int) -> str:
    """The encode + decode pair of an edit at t0, for the JSON."""
    return method_label("edit", sampler, solver, order)


def _base_info(pipe, task: str, **kw) -> dict:
    bb = backbone(pipe)
    return {"task": task, **kw, "arch": bb.arch, "denoiser": type(bb.denoiser).__name__,
            "unet_dtype": str(bb.dtype), "device": str(bb.pipe.device), "prediction_type": bb.prediction_type}


@contextmanager
def _timed(acc: dict, key: str = "sampling_s"):
    """Accumulate the wall time of a block (the sampler loops) into ``acc[key]``."""
    t = time.perf_counter()
    try:
        yield
    finally:
        acc[key] = acc.get(key, 0.0) + time.perf_counter() - t


def _finish_info(info: dict, models: list, timer: RunTimer, grid: Grid | None = None, times: dict | None = None) -> dict:
    info["nfe"] = sum(m.nfe for m in models)
    info["unet_rows"] = sum(m.unet_rows for m in models)
    if grid is not None:
        info["sampling_steps"] = grid.num_steps
        info["timesteps"] = grid_labels(grid)
    info.update(timer.as_dict())
    for k, v in (times or {}).items():
        info[k] = round(v, 4)
    return info


# ------------------------------------------------------------------------------------------------------ inpaint
@torch.no_grad()
def inpaint(
    pipe, image: Tensor, mask: Tensor, prompt: str = "", sampler: Sampler = "sde", solver: Solver = "ddim",
    order: int = 2, eta: float | None = None, steps: int = 50, guidance: float = 7.5, negative_prompt: str = "",
    seed: int = 0, strength: float = 1.0, renoise: Literal["fixed", "fresh"] = "fixed", progress: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> TaskResult:
    """Inpaint where ``mask`` is 1 ([1, 1, H, W] pixel mask; 1 = inpaint) by :func:`diffsamplers.recipes.inpaint`.

    4-channel UNet (the paper's setting, as diffusers' inpainting pipeline with a base model): the known region is
    re-noised and blended after every step (z fixed as diffusers, or ``renoise="fresh"``).  9-channel inpainting
    UNet: the model sees [x, mask, masked-image latents] (masked image = image where mask < 0.5); no blend.
    """
    _check(sampler, solver, order, eta)
    if renoise not in ("fixed", "fresh"):
        raise SdImageError(f"renoise must be 'fixed' or 'fresh', got {renoise!r}")
    if mask.shape[-2:] != image.shape[-2:]:
        raise SdImageError(f"mask is {tuple(mask.shape[-2:])} but image is {tuple(image.shape[-2:])}")
    if float(mask.sum()) == 0:
        raise SdImageError("the mask is empty (no white pixels): nothing to inpaint")
    bb = backbone(pipe)
    sdt = _state_dtype(bb)
    nine = bb.inpaint_channels
    times: dict = {}
    with RunTimer(execution_device(bb)) as timer:
        grid = make_grid(bb, steps, strength, latent_hw=_latent_hw(bb, image))
        cond, uncond = encode_prompt(bb, prompt, negative_prompt)
        y0 = encode(bb, image).to(sdt)
        m = mask_to_latent(mask, y0.shape[-2:], "nearest").to(device=y0.device, dtype=sdt)
        extra = None
        if nine:
            masked = encode(bb, image * (mask < 0.5).to(image.dtype))
            extra = torch.cat([m.to(masked.dtype), masked], dim=1)
        model = EpsModel(bb, cond, uncond, guidance, extra_channels=extra)
        model.should_stop = should_stop
        with _timed(times):
            res = recipes.inpaint(model, y0, m < 0.5, grid, sampler, GaussianNoise(_generator(seed)),
                                  start="noise" if strength >= 1.0 else "noised", renoise=renoise, blend=not nine,
                                  solver=solver, order=order, eta=eta, progress=progress)
        out = decode(bb, res.x)
    info = _base_info(bb, "inpaint", sampler=sampler, sampler_name=_sampler_name(sampler, solver, order, eta),
                      solver=solver, order=order, eta=eta, steps=steps, strength=strength, guidance=guidance,
                      prompt=prompt, negative_prompt=negative_prompt, seed=seed, renoise=renoise,
                      unet_kind="9-channel inpainting" if nine else "4-channel base (re-noise + blend)",
                      mask_ratio=float(mask.mean()), height=image.shape[-2], width=image.shape[-1],
                      state_dtype=str(sdt), recipe="diffsamplers.recipes.inpaint")
    return TaskResult(out, _finish_info(info, [model], timer, grid, times), res.x, m)


# ---------------------------------------------------------------------------------------------------- translate
@torch.no_grad()
def translate(
    pipe, image: Tensor, prompt: str, t0: float = 0.5, sampler: Sampler = "sde", solver: Solver = "ddim",
    order: int = 2, eta: float | None = None, steps: int = 50, guidance: float = 7.5, negative_prompt: str = "",
    seed: int = 0, progress: bool = False, should_stop: Callable[[], bool] | None = None,
) -> TaskResult:
    """SDEdit (:func:`diffsamplers.recipes.sdedit`): noise the encoded image to t0 (diffusers' img2img 'strength')
    and denoise with the SDE (DDPM / SDE-DPM-Solver++) or its ODE counterpart from the same noised latent."""
    _check(sampler, solver, order, eta)
    bb = backbone(pipe)
    sdt = _state_dtype(bb)
    times: dict = {}
    with RunTimer(execution_device(bb)) as timer:
        grid = make_grid(bb, steps, t0, latent_hw=_latent_hw(bb, image))
        cond, uncond = encode_prompt(bb, prompt, negative_prompt)
        y0 = encode(bb, image).to(sdt)
        model = EpsModel(bb, cond, uncond, guidance)
        model.should_stop = should_stop
        with _timed(times):
            res = recipes.sdedit(model, y0, grid, sampler, GaussianNoise(_generator(seed)), solver=solver, order=order,
                                 eta=eta, progress=progress)
        out = decode(bb, res.x)
    info = _base_info(bb, "translate", sampler=sampler, sampler_name=_sampler_name(sampler, solver, order, eta),
                      solver=solver, order=order, eta=eta, steps=steps, t0=t0, guidance=guidance, prompt=prompt,
                      negative_prompt=negative_prompt, seed=seed, height=image.shape[-2], width=image.shape[-1],
                      state_dtype=str(sdt), recipe="diffsamplers.recipes.sdedit")
    return TaskResult(out, _finish_info(info, [model], timer, grid, times), res.x)


# ----------------------------------------------------------------------------------------------------- diffedit
@torch.no_grad()
def diffedit_mask(
    pipe, latents: Tensor, source_prompt: str, target_prompt: str, guidance: float = 7.5, draws: int = 10,
    mask_t0: float = 0.5, steps: int = 50, seed: int = 0, thresholding_ratio: float = 3.0,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[Tensor, list]:
    """DiffEdit's mask (:func:`diffsamplers.recipes.diffedit_mask`, as diffusers' ``generate_mask``): ``draws``
    noisings to the level of ``mask_t0`` on the ``steps``-step DDIM grid, both prompts with CFG against "".
    Returns the latent-size float mask [1, 1, h, w] (1 = edit) and the two ε-models (for NFE bookkeeping)."""
    bb = backbone(pipe)
    grid = make_grid(bb, steps, mask_t0, latent_hw=tuple(latents.shape[-2:]))
    src = EpsModel(bb, *encode_prompt(bb, source_prompt, ""), guidance=guidance)
    tgt = EpsModel(bb, *encode_prompt(bb, target_prompt, ""), guidance=guidance)
    src.should_stop = tgt.should_stop = should_stop
    m = recipes.diffedit_mask(src, tgt, latents, grid, GaussianNoise(_generator(seed)), draws=draws,
                              threshold_ratio=thresholding_ratio)
    return m.to(latents.dtype), [src, tgt]


@torch.no_grad()
def diffedit(
    pipe, image: Tensor, source_prompt: str, target_prompt: str, t0: float = 0.7, sampler: Sampler = "sde",
    steps: int = 50, guidance: float = 7.5, seed: int = 0, mask: Tensor | None = None, mask_draws: int = 10,
    mask_t0: float = 0.5, inversion_guidance: float | None = None, preset: str = "official", solver: str = "ddim",
    order: int = 2, progress: bool = False, should_stop: Callable[[], bool] | None = None,
) -> TaskResult:
    """DiffEdit (:func:`diffsamplers.recipes.diffedit`): ODE = DDIM inversion with the source prompt, then DDIM with
    the target prompt; SDE = Cycle-SDE recorded with the source prompt, replayed with the target prompt.  Outside
    the mask the latent is reset to the encoded trajectory after every step.  ``preset``: see the module docstring.
    ``mask`` ([1, 1, H, W], 1 = edit) replaces the automatic mask; ``inversion_guidance`` overrides the preset's
    CFG of the encoding model.  ``solver`` / ``order``: DDIM (the paper) or DPM-Solver++ (SDE-DPM-Solver++ record and
    replay for the SDE); the fast preset's CLI default is ``"dpmpp"``, 2."""
    _check(sampler, solver, order)
    try:
        check_preset(preset)
    except ValueError as err:
        raise SdImageError(str(err)) from None
    bb = backbone(pipe)
    sdt = _state_dtype(bb)
    times: dict = {}
    official = preset == "official"
    with RunTimer(execution_device(bb)) as timer:
        hw = _latent_hw(bb, image)
        grid, fgrid = make_official_grids(bb, steps, t0, "ddim", latent_hw=hw) if (official and sampler == "sde") \
            else (make_grid(bb, steps, t0, latent_hw=hw), None)
        y0 = encode(bb, image).to(sdt)
        models: list = []
        if mask is None:
            with _timed(times):
                m, mm = diffedit_mask(bb, y0, source_prompt, target_prompt, guidance, mask_draws, mask_t0, steps,
                                      seed, should_stop=should_stop)
            models += mm
            mask_source = "automatic"
        else:
            if mask.shape[-2:] != image.shape[-2:]:
                raise SdImageError(f"mask is {tuple(mask.shape[-2:])} but image is {tuple(image.shape[-2:])}")
            m = mask_to_latent(mask, y0.shape[-2:], "nearest" if official else "area")
            mask_source = "given"
        m = m.to(device=y0.device, dtype=sdt)
        if float(m.sum()) == 0 and mask_source == "given":
            raise SdImageError("the given edit mask is empty (no white pixels): nothing to edit")
        if float(m.sum()) == 0:
            raise SdImageError("the edit mask is empty: source and target prompts do not differ anywhere "
                               "(try other prompts or pass --mask)")
        enc_g = inversion_guidance if inversion_guidance is not None else (guidance if official else 1.0)
        enc = EpsModel(bb, *encode_prompt(bb, source_prompt, "" if enc_g != 1.0 else None), guidance=enc_g)
        negative = "" if (official and sampler == "sde") else source_prompt
        target = EpsModel(bb, *encode_prompt(bb, target_prompt, negative), guidance=guidance)
        enc.should_stop = target.should_stop = should_stop
        models += [enc, target]
        lag = 1 if (official and sampler == "ode") else 0
        with _timed(times):
            res = recipes.diffedit(enc, target, y0, m > 0.5, grid, sampler, GaussianNoise(_generator(seed + 1)),
                                   forward_grid=fgrid, reset_lag=lag, solver=solver, order=order, progress=progress)
        out = decode(bb, res.x)
    info = _base_info(bb, "diffedit", sampler=sampler, preset=preset, solver=solver, order=order,
                      sampler_name=_edit_name(sampler, solver, order),
                      steps=steps, t0=t0, guidance=guidance, encode_guidance=enc_g,
                      target_negative_prompt=negative, reset_lag=lag, source_prompt=source_prompt,
                      target_prompt=target_prompt,
                      seed=seed, mask_source=mask_source, mask_draws=mask_draws, mask_t0=mask_t0,
                      mask_ratio=float(m.mean()), height=image.shape[-2], width=image.shape[-1], state_dtype=str(sdt),
                      recipe="diffsamplers.recipes.diffedit")
    return TaskResult(out, _finish_info(info, models, timer, grid, times), res.x, m)


# -------------------------------------------------------------------------------------------------- reconstruct
@torch.no_grad()
def reconstruct(
    pipe, image: Tensor, sampler: Sampler = "sde", steps: int = 50, t0: float = 1.0, prompt: str = "",
    guidance: float = 1.0, seed: int = 0, solver: str = "ddim", order: int = 2, progress: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> TaskResult:
    """Encode to t0 and decode back with the same prompt (:func:`diffsamplers.recipes.reconstruct`): Cycle-SDE
    (``sampler="sde"``, exact up to float error) or DDIM inversion + DDIM (``"ode"``, approximate).  ``info``
    holds the latent error (max |·| and RMSE against the encoded latent) and the pixel RMSE of the decoded result
    against the decoded input latent and against the input image (the latter includes the VAE's own error).
    Load the pipeline with dtype float64 on CPU for a float64 UNet.  ``solver="dpmpp"``: SDE-DPM-Solver++ record and
    replay (exact too) / DPM-Solver++ inversion + sampling."""
    _check(sampler, solver, order)
    bb = backbone(pipe)
    sdt = _state_dtype(bb)
    times: dict = {}
    with RunTimer(execution_device(bb)) as timer:
        grid = make_grid(bb, steps, t0, latent_hw=_latent_hw(bb, image))
        y0 = encode(bb, image).to(sdt)
        model = EpsModel(bb, *encode_prompt(bb, prompt, "" if guidance != 1.0 else None), guidance=guidance)
        model.should_stop = should_stop
        with _timed(times):
            res = recipes.reconstruct(model, y0, grid, sampler, GaussianNoise(_generator(seed)), solver=solver,
                                      order=order, progress=progress)
        lat = res.x
        out = decode(bb, lat)
        ref = decode(bb, y0)
    err = (lat - y0).double()
    info = _base_info(bb, "reconstruct", sampler=sampler, solver=solver, order=order,
                      method=_edit_name(sampler, solver, order), steps=steps, t0=t0,
                      prompt=prompt, guidance=guidance, seed=seed, state_dtype=str(sdt), height=image.shape[-2],
                      width=image.shape[-1], recipe="diffsamplers.recipes.reconstruct")
    info.update(
        latent_max_abs_error=float(err.abs().max()), latent_rmse=float(err.pow(2).mean().sqrt()),
        pixel_rmse=float((out.double() - ref.double()).pow(2).mean().sqrt()),
        pixel_rmse_vs_input=float((out.double().cpu() - image.double().cpu()).pow(2).mean().sqrt()),
    )
    return TaskResult(out, _finish_info(info, [model], timer, grid, times), lat)
