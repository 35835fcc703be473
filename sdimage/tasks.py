"""Editing tasks on a loaded pipeline, each returning ``(image, info)``: ``image`` a [1, 3, H, W] tensor in [-1, 1],
``info`` a JSON-able dict (parameters, NFE, wall time, peak memory, task-specific numbers).

Every sampler update comes from ``diffsamplers``; this module builds the ε-model, the grid, the noise and the
``post_step`` hooks (inpainting blend, DiffEdit's reset of the unmasked region).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Literal

import torch
from torch import Tensor

from diffsamplers import GaussianNoise, Grid, cycle_encode, cycle_replay, invert_ddim, sample_ddim, sample_dpmpp

from .errors import SdImageError
from .latents import decode, encode, mask_to_latent
from .model import EpsModel, _device, encode_prompt, make_grid
from .runinfo import RunTimer

__all__ = ["inpaint", "translate", "diffedit", "reconstruct", "diffedit_mask", "run_sampler", "state_dtype_for"]

Sampler = Literal["ode", "sde"]
Solver = Literal["ddim", "dpmpp"]


def state_dtype_for(pipe) -> torch.dtype:
    """Sampler state dtype: float64 when the UNet runs in float64, else float32."""
    return torch.float64 if pipe.unet.dtype == torch.float64 else torch.float32


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def _randn(like: Tensor, g: torch.Generator) -> Tensor:
    """Initial noise drawn on CPU in float32 (float64 if the state is float64), as diffusers' ``randn_tensor``."""
    dt = torch.float64 if like.dtype == torch.float64 else torch.float32
    return torch.randn(like.shape, generator=g, dtype=dt).to(device=like.device, dtype=like.dtype)


def _check_sampler(sampler: str, solver: str, order: int, eta: float | None) -> None:
    if sampler not in ("ode", "sde"):
        raise SdImageError(f"sampler must be 'ode' or 'sde', got {sampler!r}")
    if solver not in ("ddim", "dpmpp"):
        raise SdImageError(f"solver must be 'ddim' or 'dpmpp', got {solver!r}")
    if order not in (1, 2):
        raise SdImageError(f"order must be 1 or 2, got {order}")
    if eta is not None:
        if eta < 0:
            raise SdImageError(f"eta must be >= 0, got {eta}")
        if solver != "ddim":
            raise SdImageError("--eta applies to the ddim solver only")


def run_sampler(model, x: Tensor, grid: Grid, sampler: str = "sde", solver: str = "ddim", order: int = 2,
                eta: float | None = None, noise=None, post_step=None, progress: bool = False) -> Tensor:
    """ODE: DDIM (η = 0) or DPM-Solver++; SDE: DDPM (η = 1) or SDE-DPM-Solver++; ``eta`` set: η-DDIM in between."""
    _check_sampler(sampler, solver, order, eta)
    if solver == "ddim":
        e = float(eta) if eta is not None else (0.0 if sampler == "ode" else 1.0)
        return sample_ddim(model, x, grid, eta=e, noise=noise if e > 0 else None, post_step=post_step, progress=progress)
    return sample_dpmpp(model, x, grid, order=order, sde=sampler == "sde", noise=noise if sampler == "sde" else None,
                        post_step=post_step, progress=progress)


def _sampler_name(sampler, solver, order, eta) -> str:
    if solver == "ddim":
        e = eta if eta is not None else (0.0 if sampler == "ode" else 1.0)
        return "DDIM (ODE)" if e == 0 else ("DDPM (SDE)" if e == 1 else f"DDIM eta={e:g}")
    return f"{'SDE-' if sampler == 'sde' else ''}DPM-Solver++ order {order}"


def _base_info(pipe, task: str, **kw) -> dict:
    return {"task": task, **kw, "unet_dtype": str(pipe.unet.dtype), "device": str(pipe.device),
            "prediction_type": pipe.scheduler.config.get("prediction_type", "epsilon")}


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
        info["timesteps"] = [int(t) for t in grid.timesteps[:-1]]
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
    state_dtype: torch.dtype | None = None,
) -> tuple[Tensor, dict]:
    """Inpaint where ``mask`` is 1 ([1, 1, H, W] pixel mask; 1 = inpaint).

    4-channel UNet (the paper's setting, as diffusers' inpainting pipeline with a base model): after every step the
    known region is replaced by the encoded image re-noised to the new level with the forward kernel,
    α_s y_0 + σ_s z (``renoise="fixed"``: z = the initial noise, as diffusers; ``"fresh"``: a new draw per step),
    and by y_0 itself after the last step.  9-channel inpainting UNet: the model sees [x, mask, masked-image
    latents] (masked image = image where mask < 0.5) and nothing is blended.
    """
    _check_sampler(sampler, solver, order, eta)
    if renoise not in ("fixed", "fresh"):
        raise SdImageError(f"renoise must be 'fixed' or 'fresh', got {renoise!r}")
    if mask.shape[-2:] != image.shape[-2:]:
        raise SdImageError(f"mask is {tuple(mask.shape[-2:])} but image is {tuple(image.shape[-2:])}")
    if float(mask.sum()) == 0:
        raise SdImageError("the mask is empty (no white pixels): nothing to inpaint")
    sdt = state_dtype or state_dtype_for(pipe)
    nine = pipe.unet.config.in_channels == 9
    times: dict = {}
    with RunTimer(_device(pipe)) as timer:
        grid = make_grid(pipe, steps, strength)
        g = _generator(seed)
        cond, uncond = encode_prompt(pipe, prompt, negative_prompt)
        y0 = encode(pipe, image).to(sdt)
        m = mask_to_latent(mask, y0.shape[-2:]).to(device=y0.device, dtype=sdt)
        z = _randn(y0, g)
        x = z if strength >= 1.0 else float(grid.alphas[0]) * y0 + float(grid.sigmas[0]) * z
        post = None
        if nine:
            masked = encode(pipe, image * (mask < 0.5).to(image.dtype))
            extra = torch.cat([m.to(masked.dtype), masked], dim=1)
            model = EpsModel(pipe, cond, uncond, guidance, extra_channels=extra)
        else:
            model = EpsModel(pipe, cond, uncond, guidance)
            blend_g = _generator(seed + 1)

            def post(i: int, xs: Tensor) -> Tensor:
                if i < grid.num_steps - 1:
                    zz = z if renoise == "fixed" else _randn(y0, blend_g)
                    known = float(grid.alphas[i + 1]) * y0 + float(grid.sigmas[i + 1]) * zz
                else:
                    known = y0
                return (1 - m) * known + m * xs

        with _timed(times):
            lat = run_sampler(model, x, grid, sampler, solver, order, eta, GaussianNoise(g), post, progress)
        out = decode(pipe, lat)
    info = _base_info(pipe, "inpaint", sampler=sampler, sampler_name=_sampler_name(sampler, solver, order, eta),
                      solver=solver, order=order, eta=eta, steps=steps, strength=strength, guidance=guidance,
                      prompt=prompt, negative_prompt=negative_prompt, seed=seed, renoise=renoise,
                      unet_kind="9-channel inpainting" if nine else "4-channel base (re-noise + blend)",
                      mask_ratio=float(mask.mean()), height=image.shape[-2], width=image.shape[-1],
                      state_dtype=str(sdt))
    info["_latents"] = lat
    return out, _finish_info(info, [model], timer, grid, times)


# ---------------------------------------------------------------------------------------------------- translate
@torch.no_grad()
def translate(
    pipe, image: Tensor, prompt: str, t0: float = 0.5, sampler: Sampler = "sde", solver: Solver = "ddim",
    order: int = 2, eta: float | None = None, steps: int = 50, guidance: float = 7.5, negative_prompt: str = "",
    seed: int = 0, progress: bool = False, state_dtype: torch.dtype | None = None,
) -> tuple[Tensor, dict]:
    """SDEdit: noise the encoded image to t0 (x = α y_0 + σ z, diffusers' img2img 'strength' = t0) and denoise with
    the SDE (DDPM / SDE-DPM-Solver++) or its ODE counterpart (DDIM / DPM-Solver++) from the same noised latent."""
    _check_sampler(sampler, solver, order, eta)
    sdt = state_dtype or state_dtype_for(pipe)
    times: dict = {}
    with RunTimer(_device(pipe)) as timer:
        grid = make_grid(pipe, steps, t0)
        g = _generator(seed)
        cond, uncond = encode_prompt(pipe, prompt, negative_prompt)
        y0 = encode(pipe, image).to(sdt)
        x = float(grid.alphas[0]) * y0 + float(grid.sigmas[0]) * _randn(y0, g)
        model = EpsModel(pipe, cond, uncond, guidance)
        with _timed(times):
            lat = run_sampler(model, x, grid, sampler, solver, order, eta, GaussianNoise(g), None, progress)
        out = decode(pipe, lat)
    info = _base_info(pipe, "translate", sampler=sampler, sampler_name=_sampler_name(sampler, solver, order, eta),
                      solver=solver, order=order, eta=eta, steps=steps, t0=t0, guidance=guidance, prompt=prompt,
                      negative_prompt=negative_prompt, seed=seed, height=image.shape[-2], width=image.shape[-1],
                      state_dtype=str(sdt))
    info["_latents"] = lat
    return out, _finish_info(info, [model], timer, grid, times)


# ----------------------------------------------------------------------------------------------------- diffedit
class _CallCounter:
    """NFE bookkeeping for direct UNet calls (same attributes as :class:`EpsModel`)."""

    def __init__(self) -> None:
        self.nfe = 0
        self.unet_rows = 0


@torch.no_grad()
def diffedit_mask(
    pipe, latents: Tensor, source_prompt: str, target_prompt: str, guidance: float = 7.5, draws: int = 10,
    mask_t0: float = 0.5, steps: int = 50, seed: int = 0, thresholding_ratio: float = 3.0,
) -> tuple[Tensor, list]:
    """DiffEdit's mask (as diffusers' ``generate_mask``): noise the latents ``draws`` times to t = mask_t0, take
    |ε_target − ε_source| (both with CFG, empty negative prompt) averaged over draws and channels, clamp at
    ``thresholding_ratio`` × its mean, normalise to [0, 1] and binarise (> 0.5 → 1).  ONE UNet call with
    3 × ``draws`` rows (uncond, source, target).  Returns the latent-size mask [1, 1, h, w] and a call counter."""

    grid = make_grid(pipe, steps, mask_t0)
    t = int(grid.timesteps[0])
    g = _generator(seed)
    lat = latents.expand(draws, -1, -1, -1)
    noised = float(grid.alphas[0]) * lat + float(grid.sigmas[0]) * _randn(lat, g)
    src, unc = encode_prompt(pipe, source_prompt, "")
    tgt, _ = encode_prompt(pipe, target_prompt, None)
    unet, dev = pipe.unet, _device(pipe)
    emb = torch.cat([e.to(device=dev, dtype=unet.dtype).expand(draws, -1, -1) for e in (unc, src, tgt)])
    xin = noised.to(device=dev, dtype=unet.dtype).repeat(3, 1, 1, 1)
    tin = torch.full((xin.shape[0],), t, device=dev, dtype=torch.long)
    out = unet(xin, tin, encoder_hidden_states=emb, return_dict=False)[0].to(latents.dtype)
    counter = _CallCounter()
    counter.nfe, counter.unet_rows = 1, xin.shape[0]
    e_u, e_s, e_t = out.chunk(3)
    if pipe.scheduler.config.get("prediction_type", "epsilon") == "v_prediction":
        from diffsamplers import eps_from_v

        a, s_ = float(grid.alphas[0]), float(grid.sigmas[0])
        nz = noised.to(out.device)
        e_u, e_s, e_t = (eps_from_v(nz, v, a, s_) for v in (e_u, e_s, e_t))
    diff = ((e_u + guidance * (e_t - e_u)) - (e_u + guidance * (e_s - e_u))).abs().mean(dim=(0, 1), keepdim=True)
    clamp = float(diff.mean()) * thresholding_ratio
    norm = diff.clamp(0, clamp) / clamp if clamp > 0 else torch.zeros_like(diff)
    return (norm > 0.5).to(latents.dtype).to(latents.device), [counter]


@torch.no_grad()
def diffedit(
    pipe, image: Tensor, source_prompt: str, target_prompt: str, t0: float = 0.7, sampler: Sampler = "sde",
    steps: int = 50, guidance: float = 7.5, seed: int = 0, mask: Tensor | None = None, mask_draws: int = 10,
    mask_t0: float = 0.5, inversion_guidance: float = 1.0, progress: bool = False,
    state_dtype: torch.dtype | None = None,
) -> tuple[Tensor, dict]:
    """DiffEdit with the ODE (DDIM inversion with the source prompt, then DDIM with the target prompt and the
    source as negative prompt) or the SDE (Cycle-SDE: record with the source prompt on the forward chain, replay
    with the target prompt).  After every step the region outside the mask is reset to the inverted trajectory
    (ODE) / the recorded chain (SDE).  ``mask`` ([1, 1, H, W], 1 = edit) replaces the automatic mask."""
    if sampler not in ("ode", "sde"):
        raise SdImageError(f"sampler must be 'ode' or 'sde', got {sampler!r}")
    sdt = state_dtype or state_dtype_for(pipe)
    times: dict = {}
    with RunTimer(_device(pipe)) as timer:
        grid = make_grid(pipe, steps, t0)
        y0 = encode(pipe, image).to(sdt)
        models: list[EpsModel] = []
        if mask is None:
            with _timed(times):
                m, mm = diffedit_mask(pipe, y0, source_prompt, target_prompt, guidance, mask_draws, mask_t0, steps,
                                      seed)
            models += mm
            mask_source = "automatic"
        else:
            if mask.shape[-2:] != image.shape[-2:]:
                raise SdImageError(f"mask is {tuple(mask.shape[-2:])} but image is {tuple(image.shape[-2:])}")
            m = mask_to_latent(mask, y0.shape[-2:])
            mask_source = "given"
        m = m.to(device=y0.device, dtype=sdt)
        if float(m.sum()) == 0:
            raise SdImageError("the edit mask is empty: source and target prompts do not differ anywhere "
                               "(try other prompts or pass --mask)")
        target = EpsModel(pipe, *encode_prompt(pipe, target_prompt, source_prompt), guidance=guidance)
        models.append(target)
        g = _generator(seed + 1)
        if sampler == "ode":
            inv = EpsModel(pipe, *encode_prompt(pipe, source_prompt, ""), guidance=inversion_guidance)
            models.append(inv)
            with _timed(times):
                ref = invert_ddim(inv, y0, grid, progress=progress)
            x = ref[0]

            def post(i, xs):
                return m * xs + (1 - m) * ref[i + 1]

            with _timed(times):
                lat = sample_ddim(target, x, grid, eta=0.0, post_step=post, progress=progress)
        else:
            rec = EpsModel(pipe, *encode_prompt(pipe, source_prompt, ""), guidance=guidance)
            models.append(rec)
            with _timed(times):
                trace = cycle_encode(rec, y0, grid, GaussianNoise(g), variant="markov", progress=progress)
            ref = trace.chain

            def post(i, xs):
                return m * xs + (1 - m) * ref[i + 1]

            with _timed(times):
                lat = cycle_replay(target, ref[0], grid, trace.noises, post_step=post, progress=progress)
        out = decode(pipe, lat)
    info = _base_info(pipe, "diffedit", sampler=sampler,
                      sampler_name="DDIM inversion + DDIM (ODE)" if sampler == "ode" else "Cycle-SDE (SDE)",
                      steps=steps, t0=t0, guidance=guidance, inversion_guidance=inversion_guidance,
                      source_prompt=source_prompt, target_prompt=target_prompt, seed=seed, mask_source=mask_source,
                      mask_draws=mask_draws, mask_t0=mask_t0, mask_ratio=float(m.mean()),
                      height=image.shape[-2], width=image.shape[-1], state_dtype=str(sdt))
    info["_mask_latent"] = m
    info["_latents"] = lat
    return out, _finish_info(info, models, timer, grid, times)


# -------------------------------------------------------------------------------------------------- reconstruct
@torch.no_grad()
def reconstruct(
    pipe, image: Tensor, method: Literal["cycle-sde", "ddim-inversion"] = "cycle-sde", steps: int = 50,
    t0: float = 1.0, prompt: str = "", guidance: float = 1.0, seed: int = 0, progress: bool = False,
    state_dtype: torch.dtype | None = None,
) -> tuple[Tensor, dict]:
    """Encode to t0 and decode back with the same prompt: Cycle-SDE (exact up to float error) or DDIM inversion +
    DDIM (approximate; the error shrinks with more steps).  ``info`` holds the latent error (max |·| and RMSE
    against the encoded latent) and the pixel RMSE of the decoded result against the decoded input latent and
    against the input image (the latter includes the VAE's own error).  Load the pipeline with dtype float64 on CPU
    for a float64 UNet."""
    if method not in ("cycle-sde", "ddim-inversion"):
        raise SdImageError(f"method must be 'cycle-sde' or 'ddim-inversion', got {method!r}")
    sdt = state_dtype or state_dtype_for(pipe)
    times: dict = {}
    with RunTimer(_device(pipe)) as timer:
        grid = make_grid(pipe, steps, t0)
        y0 = encode(pipe, image).to(sdt)
        model = EpsModel(pipe, *encode_prompt(pipe, prompt, "" if guidance != 1.0 else None), guidance=guidance)
        with _timed(times):
            if method == "cycle-sde":
                trace = cycle_encode(model, y0, grid, GaussianNoise(_generator(seed)), progress=progress)
                lat = cycle_replay(model, trace.chain[0], grid, trace.noises, progress=progress)
            else:
                traj = invert_ddim(model, y0, grid, progress=progress)
                lat = sample_ddim(model, traj[0], grid, eta=0.0, progress=progress)
        out = decode(pipe, lat)
        ref = decode(pipe, y0)
    err = (lat - y0).double()
    info = _base_info(pipe, "reconstruct", method=method, steps=steps, t0=t0, prompt=prompt, guidance=guidance,
                      seed=seed, state_dtype=str(sdt), height=image.shape[-2], width=image.shape[-1])
    info.update(
        latent_max_abs_error=float(err.abs().max()), latent_rmse=float(err.pow(2).mean().sqrt()),
        pixel_rmse=float((out.double() - ref.double()).pow(2).mean().sqrt()),
        pixel_rmse_vs_input=float((out.double().cpu() - image.double().cpu()).pow(2).mean().sqrt()),
    )
    info["_latents"] = lat
    return out, _finish_info(info, [model], timer, grid, times)
