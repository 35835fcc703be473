"""The official presets equal an independent transcription of the official code (ML-GSAI/SDE-Drag) to float64
round-off on the tiny pipeline, with the same noise draws.

The transcription below is written from ``cycle_sde.py`` (``Sampler.get_eps``, ``Sampler.sample``,
``Sampler.forward_sde``), ``utils/drag.py`` (``scale_schedule``, ``forward``, ``backward``, ``copy_and_paste``,
the drag loop) and ``diffedit.py`` (``forward``, ``backward``): the same update equations, loops, list pops,
timestep arithmetic and float32 point path, with every ``torch.randn`` replaced by draws from one explicit
generator (in the order the official code makes them).  It does not call the package's recipes or samplers.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sdimage.model import encode_prompt, make_scheduler

F64 = torch.float64


@pytest.fixture(scope="module")
def pipe64():
    from sdimage.tiny import make_tiny_pipeline

    return make_tiny_pipeline(seed=0).to(F64)


class Draws:
    """``torch.randn`` of the official code, drawn in order from one generator (float64, CPU)."""

    def __init__(self, seed: int) -> None:
        self.g = torch.Generator().manual_seed(seed)

    def __call__(self, *shape) -> torch.Tensor:
        return torch.randn(*shape, generator=self.g, dtype=F64)


class OfficialSampler:
    """Transcription of ``cycle_sde.Sampler`` (UNet called as there; noise injected)."""

    def __init__(self, unet, scheduler, num_steps, randn):
        scheduler.set_timesteps(num_steps)
        self.num_inference_steps = num_steps
        self.num_train_timesteps = len(scheduler)
        self.alphas_cumprod = scheduler.alphas_cumprod.to(F64)
        self.final_alpha_cumprod = torch.tensor(1.0, dtype=F64)
        self.initial_alpha_cumprod = torch.tensor(1.0, dtype=F64)
        self.model = unet
        self.randn = randn

    @torch.no_grad()
    def get_eps(self, img, forward_img, timestep, guidance_scale, text_embeddings, lora_scale=None, is_diffedit=False):
        latent_model_input = torch.cat([img, img, forward_img, forward_img]) if guidance_scale > 1. else torch.cat(
            [img, forward_img])
        if not is_diffedit:
            text_embeddings = torch.cat([text_embeddings] * 2) if guidance_scale > 1. else torch.cat(
                [text_embeddings.chunk(2)[1]] * 2)
        else:
            text_embeddings = torch.cat([text_embeddings[0], text_embeddings[1]]) if guidance_scale > 1. else torch.cat(
                [text_embeddings[0].chunk(2)[1], text_embeddings[1].chunk(2)[1]])
        cross_attention_kwargs = None if lora_scale is None else {"scale": lora_scale}
        noise_pred = self.model(latent_model_input, timestep, encoder_hidden_states=text_embeddings,
                                cross_attention_kwargs=cross_attention_kwargs).sample
        if guidance_scale > 1.:
            noise_pred_uncond, noise_pred_text, forward_noise_pred_uncond, forward_noise_pred_text = noise_pred.chunk(4)
        elif guidance_scale == 1.:
            noise_pred_text, forward_noise_pred_text = noise_pred.chunk(2)
            noise_pred_uncond = 0.
            forward_noise_pred_uncond = 0.
        else:
            raise NotImplementedError(guidance_scale)
        noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
        forward_noise_pred = forward_noise_pred_uncond + guidance_scale * (
            forward_noise_pred_text - forward_noise_pred_uncond)
        return noise_pred, forward_noise_pred

    def sample(self, timestep, sample, forward_sample, forward_x_prev, guidance_scale, text_embeddings, sde=False,
               eta=1., lora_scale=None, is_diffedit=False):
        eps, forward_eps = self.get_eps(sample, forward_x_prev, timestep, guidance_scale, text_embeddings, lora_scale,
                                        is_diffedit)
        prev_timestep = timestep - self.num_train_timesteps // self.num_inference_steps
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        sigma_t = eta * ((1 - alpha_prod_t_prev) / (1 - alpha_prod_t)) ** 0.5 * (
            1 - alpha_prod_t / alpha_prod_t_prev) ** 0.5 if sde else 0
        pred_original_sample = (sample - beta_prod_t ** 0.5 * eps) / alpha_prod_t ** 0.5
        pred_sample_direction_coeff = (1 - alpha_prod_t_prev - sigma_t ** 2) ** 0.5
        forward_alpha_prod_t = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.initial_alpha_cumprod
        forward_alpha_prod_t_prev = self.alphas_cumprod[timestep]
        forward_beta_prod_t_prev = 1 - forward_alpha_prod_t_prev
        forward_sigma_t_prev = eta * ((1 - forward_alpha_prod_t) / (1 - forward_alpha_prod_t_prev)) ** 0.5 * (
            1 - forward_alpha_prod_t_prev / forward_alpha_prod_t) ** 0.5
        forward_pred_original_sample = (forward_x_prev - forward_beta_prod_t_prev ** 0.5 * forward_eps) / \
            forward_alpha_prod_t_prev ** 0.5
        forward_pred_sample_direction_coeff = (1 - forward_alpha_prod_t - forward_sigma_t_prev ** 2) ** 0.5
        forward_noise = (forward_sample - forward_alpha_prod_t ** 0.5 * forward_pred_original_sample
                         - forward_pred_sample_direction_coeff * forward_eps) / forward_sigma_t_prev
        return alpha_prod_t_prev ** 0.5 * pred_original_sample + pred_sample_direction_coeff * eps + \
            sigma_t * forward_noise

    def forward_sde(self, timestep, sample):
        prev_timestep = timestep + self.num_train_timesteps // self.num_inference_steps
        alpha_prod_t = self.alphas_cumprod[timestep] if timestep >= 0 else self.initial_alpha_cumprod
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep]
        return (alpha_prod_t_prev / alpha_prod_t) ** 0.5 * sample + (1 - alpha_prod_t_prev / alpha_prod_t) ** 0.5 * \
            self.randn(*sample.shape)


def scale_schedule(begin, end, n, length, type="linear"):
    if type == "linear":
        return begin + (end - begin) * n / length
    factor = (1 - math.cos(n * math.pi / length)) / 2
    return (1 - factor) * begin + factor * end


def official_drag(sampler, scheduler, img, source, target, mask255, text_embeddings, steps, drag_t, step_size, r,
                  img_scale, scale, lora_scale_min, randn, lora=False):
    """``utils/drag.py``'s loop (``forward`` / ``copy_and_paste`` / ``backward``) on a latent, points in latent px."""
    noise_scale = (1 - img_scale ** 2) ** 0.5
    source, target = torch.tensor(source), torch.tensor(target)
    d = target - source
    d_norm_max = torch.norm(d.float(), dim=1, keepdim=True).max()
    if d_norm_max <= step_size:
        drag_num = 1
    else:
        drag_num = d_norm_max.div(torch.tensor([step_size]), rounding_mode="trunc")
        if (d_norm_max / drag_num - step_size).abs() > (d_norm_max / (drag_num + 1) - step_size).abs():
            drag_num += 1
    max_height, max_width = img.shape[2] - 1, img.shape[3] - 1
    for i in range(int(drag_num)):
        source_new = source + (i / drag_num * d).to(torch.int)
        target_new = source + ((i + 1) / drag_num * d).to(torch.int)
        # forward
        forward_sample, forward_x_prev, lora_scales, cfg_scales = [], [], [], []
        latents = img
        t0 = int(drag_t * steps)
        t_begin = steps - t0
        length = len(scheduler.timesteps[t_begin - 1:-1]) - 1
        index = 1
        forward_x_prev.append(latents)
        for t in scheduler.timesteps[t_begin:].flip(dims=[0]):
            lora_scales.append(scale_schedule(1, lora_scale_min, index, length, type="cos"))
            cfg_scales.append(scale_schedule(1, scale, index, length, type="linear"))
            forward_sample.append(latents.clone())
            latents = sampler.forward_sde(t, latents)
            forward_x_prev.append(latents.clone())
            index += 1
        # copy and paste
        for source_, target_ in zip(source_new, target_new):
            r_x_lower = min(r, source_[0], target_[0])
            r_x_upper = min(r, max_width - source_[0], max_width - target_[0])
            r_y_lower = min(r, source_[1], target_[1])
            r_y_upper = min(r, max_height - source_[1], max_height - target_[1])
            source_feature = latents[:, :, source_[1] - r_y_lower: source_[1] + r_y_upper,
                                     source_[0] - r_x_lower: source_[0] + r_x_upper].clone()
            latents[:, :, source_[1] - r_y_lower: source_[1] + r_y_upper,
                    source_[0] - r_x_lower: source_[0] + r_x_upper] = \
                img_scale * source_feature + noise_scale * randn(latents.shape[0], 4, int(r_y_lower + r_y_upper),
                                                                 int(r_x_lower + r_x_upper))
            latents[:, :, target_[1] - r_y_lower: target_[1] + r_y_upper,
                    target_[0] - r_x_lower: target_[0] + r_x_upper] = source_feature * 1.1
        # backward
        for t in scheduler.timesteps[t_begin - 1:-1]:
            latents = sampler.sample(t, latents, forward_sample.pop(), forward_x_prev.pop(), cfg_scales.pop(),
                                     text_embeddings, sde=True,
                                     lora_scale=lora_scales.pop() if lora else None)
            latents = torch.where(mask255 > 128, latents, forward_x_prev[-1])
        img = latents.clone()
    return img


def _latent_mask(h=32, w=32):
    m = torch.zeros(1, 1, h, w, dtype=torch.bool)
    m[..., 4:28, 3:30] = True
    return m


@pytest.fixture(scope="module")
def pipe64_lora():
    """The tiny float64 pipeline with a random (non-zero) LoRA adapter, so the LoRA-scale ramp matters."""
    from peft import LoraConfig

    from sdimage.tiny import make_tiny_pipeline

    pipe = make_tiny_pipeline(seed=0)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                         target_modules=["to_q", "to_k", "to_v", "to_out.0"]), adapter_name="test")
    return pipe.to(F64)


@pytest.mark.parametrize("t0, lora", [(0.45, False), (0.6, False), (0.6, True)])
def test_sde_drag_official_preset_equals_transcription(pipe64, pipe64_lora, t0, lora):
    from diffusers import DPMSolverMultistepScheduler

    from sdimage.drag import DragConfig, drag_grids, drag_latents, drag_schedules
    from sdimage.model import make_eps_model

    pipe64 = pipe64_lora if lora else pipe64
    steps, seed = 20, 1234
    cfg = DragConfig(steps=steps, t0=t0, lora_steps=0, seed=seed, preset="official")
    cond, unc = encode_prompt(pipe64, "a photo of a cat", "")
    x0 = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(7), dtype=F64)
    src, tgt = [(6, 9), (20, 25)], [(11, 12), (18, 26)]  # (x, y) latent px; D = 5.83 -> 3 operations
    keep = _latent_mask()
    grid, fgrid = drag_grids(pipe64, cfg)
    model = make_eps_model(pipe64, cond, unc)
    ours = drag_latents(model, x0, grid, src, tgt, keep, "sde", cfg, generator=torch.Generator().manual_seed(seed),
                        forward_grid=fgrid, schedules=drag_schedules(cfg, lora=lora)).x

    sched = DPMSolverMultistepScheduler.from_config(pipe64.scheduler.config)
    randn = Draws(seed)
    sampler = OfficialSampler(pipe64.unet, sched, steps, randn)
    mask255 = (keep.to(torch.uint8) * 255).expand(1, 4, 32, 32)
    ref = official_drag(sampler, sched, x0.clone(), src, tgt, mask255, torch.cat([unc.embeds, cond.embeds]), steps, t0,
                        cfg.step_size, cfg.r, cfg.beta, cfg.guidance_max, cfg.lora_scale_min, randn, lora=lora)
    assert len(ours.shape) == 4 and (ours - x0).abs().max() > 1e-2  # the drag did something
    err = float((ours - ref).abs().max())
    assert err <= 1e-10, err
    if t0 == 0.6:  # the inconsistent step (549 -> 499, then 500 -> ...) is inside the edited range
        assert not grid.consistent
    if lora:  # the LoRA-scale ramp reaches the UNet: without it the result differs
        plain = drag_latents(model, x0, grid, src, tgt, keep, "sde", cfg, forward_grid=fgrid,
                             schedules=drag_schedules(cfg, lora=False)).x
        assert (plain - ours).abs().max() > 1e-6


def test_clean_preset_differs_from_official(pipe64):
    from sdimage.drag import DragConfig, drag_grids, drag_latents, drag_schedules
    from sdimage.model import make_eps_model

    cond, unc = encode_prompt(pipe64, "a photo of a cat", "")
    x0 = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(7), dtype=F64)
    outs = {}
    for preset in ("official", "clean"):
        cfg = DragConfig(steps=10, t0=0.6, lora_steps=0, preset=preset)
        grid, fgrid = drag_grids(pipe64, cfg)
        outs[preset] = drag_latents(make_eps_model(pipe64, cond, unc), x0, grid, [(6, 9)], [(9, 9)], None, "sde", cfg,
                                    forward_grid=fgrid, schedules=drag_schedules(cfg, False)).x
    assert (outs["official"] - outs["clean"]).abs().max() > 1e-3


@pytest.mark.parametrize("t0", [0.45, 0.6])
def test_diffedit_sde_official_preset_equals_transcription(pipe64, t0):
    from sdimage import tasks
    from sdimage.latents import encode

    steps, seed, scale = 20, 3, 7.5
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=F64) * 2 - 1
    pmask = torch.zeros(1, 1, 64, 64)
    pmask[..., 10:50, 8:40] = 1
    res = tasks.diffedit(pipe64, image, "a bowl of fruits", "a bowl of bananas", t0=t0, sampler="sde", steps=steps,
                         guidance=scale, seed=seed, mask=pmask, preset="official")

    latents = encode(pipe64, image)
    sched = make_scheduler(pipe64)  # DDIMScheduler.from_config(pipeline.scheduler.config), as diffedit.py
    randn = Draws(seed + 1)
    sampler = OfficialSampler(pipe64.unet, sched, steps, randn)
    src_c, unc = encode_prompt(pipe64, "a bowl of fruits", "")
    tgt_c, _ = encode_prompt(pipe64, "a bowl of bananas", "")
    origin, edit = torch.cat([unc.embeds, src_c.embeds]), torch.cat([unc.embeds, tgt_c.embeds])
    mask_image = torch.nn.functional.interpolate(pmask, size=(32, 32), mode="nearest").to(F64)
    t_0 = int(t0 * steps)
    t_begin = steps - t_0
    forward_sample, forward_x_prev = [], [latents]
    for t in sched.timesteps[t_begin:].flip(dims=[0]):
        forward_sample.append(latents)
        latents = sampler.forward_sde(t, latents)
        forward_x_prev.append(latents)
    for t in sched.timesteps[t_begin - 1:-1]:
        latents = sampler.sample(t, latents, forward_sample.pop(), forward_x_prev.pop(), scale, [edit, origin],
                                 sde=True, is_diffedit=True)
        latents = latents * mask_image + forward_x_prev[-1] * (1 - mask_image)
    err = float((res.latents - latents).abs().max())
    assert err <= 1e-10, err
    assert (res.latents - encode(pipe64, image)).abs().max() > 1e-2


def test_official_mask_rule_is_pils_default_resize():
    """``mask_to_latent(..., "bicubic")`` equals the official ``Image.open(mask).resize((h, w))`` then ``> 128``."""
    from PIL import Image

    from sdimage.latents import mask_to_latent

    rng = np.random.default_rng(0)
    for _ in range(5):
        arr = np.zeros((64, 48), np.uint8)
        y0, x0 = rng.integers(0, 40, 2)
        arr[y0:y0 + rng.integers(4, 24), x0:x0 + rng.integers(4, 30)] = 255
        official = torch.from_numpy(np.array(Image.fromarray(arr).resize((24, 32))) > 128)
        ours = mask_to_latent(torch.from_numpy(arr / 255.0), (32, 24), "bicubic")[0, 0] > 0.5
        assert torch.equal(ours, official)


@pytest.mark.parametrize("t0", [0.45, 0.7])
def test_diffedit_ode_official_preset_equals_diffusers_diffedit_pipeline(pipe64, t0):
    """The official DiffEdit-ODE is diffusers' DiffEdit pipeline (``diffedit.py``: ``invert`` with CFG 7.5 and the
    source prompt, then the pipeline with the target prompt and the source as negative prompt)."""
    from diffusers import DDIMInverseScheduler, DDIMScheduler, StableDiffusionDiffEditPipeline

    from sdimage import tasks
    from sdimage.latents import encode

    steps, scale = 10, 7.5
    tiny_pipe = pipe64
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2), dtype=F64) * 2 - 1
    pmask = torch.zeros(1, 1, 64, 64)
    pmask[..., 8:40, 16:56] = 1
    res = tasks.diffedit(tiny_pipe, image, "a cat", "a dog", t0=t0, sampler="ode", steps=steps, guidance=scale,
                         mask=pmask, preset="official")
    parts = {k: v for k, v in tiny_pipe.components.items() if k != "image_encoder"}
    cfg = tiny_pipe.scheduler.config
    fwd, inv_s = DDIMScheduler.from_config(cfg), DDIMInverseScheduler.from_config(cfg)
    for sch in (fwd, inv_s):  # diffusers keeps ᾱ in float32; in float64 so that only round-off remains
        sch.alphas_cumprod = sch.alphas_cumprod.to(F64)
    fwd.final_alpha_cumprod = fwd.final_alpha_cumprod.to(F64)
    inv_s.initial_alpha_cumprod = inv_s.initial_alpha_cumprod.to(F64)
    ref = StableDiffusionDiffEditPipeline(**{**parts, "scheduler": fwd, "inverse_scheduler": inv_s,
                                             "requires_safety_checker": False})
    ref.set_progress_bar_config(disable=True)
    y0 = encode(tiny_pipe, image)
    inv = ref.invert(prompt="a cat", image=y0, guidance_scale=scale, inpaint_strength=t0,
                     num_inference_steps=steps).latents
    m = torch.nn.functional.interpolate(pmask, size=(32, 32), mode="nearest").to(F64)
    out = ref(prompt="a dog", mask_image=m, image_latents=inv, negative_prompt="a cat", guidance_scale=scale,
              inpaint_strength=t0, num_inference_steps=steps, output_type="latent").images
    err = float((res.latents - out).abs().max())
    assert err <= 1e-10, err
    assert res.info["reset_lag"] == 1
