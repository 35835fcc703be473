"""The project's samplers on SD plumbing equal diffusers' schedulers and pipelines where the algorithms coincide."""
from __future__ import annotations

import pytest
import torch

from diffsamplers import ddim_step
from sdimage import tasks
from sdimage.latents import encode, load_image, load_mask, mask_to_latent
from sdimage.model import EpsModel, encode_prompt, make_grid, make_scheduler


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step_equals_diffusers(tiny_pipe, eta):
    sched = make_scheduler(tiny_pipe)
    sched.set_timesteps(10)
    grid = make_grid(tiny_pipe, 10)
    g = torch.Generator().manual_seed(3)
    for i in (0, 4, 9):
        x = torch.randn(1, 4, 8, 8, generator=g)
        eps = torch.randn(1, 4, 8, 8, generator=g)
        w = torch.randn(1, 4, 8, 8, generator=g)
        t = sched.timesteps[i]
        ref = sched.step(eps, t, x, eta=eta, variance_noise=w if eta > 0 else None).prev_sample
        ours = ddim_step(x.double(), eps.double(), grid.alphas[i], grid.sigmas[i], grid.alphas[i + 1],
                         grid.sigmas[i + 1], eta, w.double() if eta > 0 else None)
        assert int(grid.timesteps[i]) == int(t)
        torch.testing.assert_close(ours.float(), ref, atol=2e-5, rtol=1e-5)


def test_translate_ode_equals_img2img(tiny_pipe, tiny_image_path):
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    image = load_image(tiny_image_path, multiple=2)
    steps, t0, seed, g = 10, 0.6, 7, 3.0
    res = tasks.translate(tiny_pipe, image, "a red square", t0=t0, sampler="ode", steps=steps, guidance=g, seed=seed)
    y0 = encode(tiny_pipe, image)
    ref = StableDiffusionImg2ImgPipeline(**{**tiny_pipe.components,
                                            "scheduler": DDIMScheduler.from_config(tiny_pipe.scheduler.config)})
    ref.set_progress_bar_config(disable=True)
    out = ref(prompt="a red square", image=y0, strength=t0, num_inference_steps=steps, guidance_scale=g,
              generator=torch.Generator().manual_seed(seed), output_type="latent").images
    assert res.info["nfe"] == int(steps * t0)
    torch.testing.assert_close(res.latents, out, atol=1e-4, rtol=1e-4)


def test_inpaint_4ch_ode_equals_diffusers(tiny_pipe, tiny_image_path, tiny_mask_path):
    from diffusers import DDIMScheduler, StableDiffusionInpaintPipeline

    image = load_image(tiny_image_path, multiple=2)
    mask = load_mask(tiny_mask_path, image)
    steps, seed, g = 8, 5, 4.0
    res = tasks.inpaint(tiny_pipe, image, mask, "a cat", sampler="ode", steps=steps, guidance=g, seed=seed)
    y0 = encode(tiny_pipe, image)
    ref = StableDiffusionInpaintPipeline(**{**tiny_pipe.components,
                                            "scheduler": DDIMScheduler.from_config(tiny_pipe.scheduler.config)})
    ref.set_progress_bar_config(disable=True)
    # latents in place of the image (no VAE sampling), so the generator's first draw is the initial noise, as ours
    out = ref(prompt="a cat", image=y0, mask_image=mask, masked_image_latents=y0, height=64, width=64,
              num_inference_steps=steps, guidance_scale=g, generator=torch.Generator().manual_seed(seed),
              output_type="latent").images
    torch.testing.assert_close(res.latents, out, atol=1e-4, rtol=1e-4)
    # the known region is the clean image latent exactly
    m = mask_to_latent(mask, y0.shape[-2:], "nearest")
    torch.testing.assert_close(res.latents * (1 - m), y0 * (1 - m))


def test_cfg_is_one_batched_call_and_v_prediction(tiny_pipe):
    cond, uncond = encode_prompt(tiny_pipe, "a dog", "")
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    m = EpsModel(tiny_pipe, cond, uncond, guidance=lambda t: 1.0 if t < 500 else 5.0)
    e = m(x, 801)
    assert m.nfe == 1 and m.unet_rows == 2
    m(x, 101)
    assert m.nfe == 2 and m.unet_rows == 3  # guidance 1: the uncond branch is skipped
    u = EpsModel(tiny_pipe, uncond)(x, 801)
    c = EpsModel(tiny_pipe, cond)(x, 801)
    torch.testing.assert_close(e, u + 5.0 * (c - u), atol=1e-5, rtol=1e-5)
    # float64 state with a float32 UNet: cast in and out
    assert EpsModel(tiny_pipe, cond)(x.double(), 801).dtype == torch.float64


def test_v_prediction_is_converted_to_eps():
    from diffsamplers import eps_from_v
    from sdimage.tiny import make_tiny_pipeline

    pipe = make_tiny_pipeline(seed=1, prediction_type="v_prediction")
    cond, _ = encode_prompt(pipe, "x", None)
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    t = 601
    with torch.no_grad():
        v = pipe.unet(x, t, encoder_hidden_states=cond.embeds).sample
    abar = float(pipe.scheduler.alphas_cumprod[t])
    torch.testing.assert_close(EpsModel(pipe, cond)(x, t), eps_from_v(x, v, abar ** 0.5, (1 - abar) ** 0.5))


def test_diffedit_mask_equals_diffusers_generate_mask(tiny_pipe, tiny_image_path):
    from diffusers import DDIMScheduler, StableDiffusionDiffEditPipeline

    y0 = encode(tiny_pipe, load_image(tiny_image_path, multiple=2))
    ours, counters = tasks.diffedit_mask(tiny_pipe, y0, "a cat", "a dog", guidance=7.5, draws=4, mask_t0=0.5,
                                         steps=20, seed=11)
    parts = {k: v for k, v in tiny_pipe.components.items() if k != "image_encoder"}
    ref = StableDiffusionDiffEditPipeline(**{**parts, "scheduler": DDIMScheduler.from_config(tiny_pipe.scheduler.config),
                                             "inverse_scheduler": None, "requires_safety_checker": False})
    ref.set_progress_bar_config(disable=True)
    theirs = ref.generate_mask(image=y0, source_prompt="a cat", target_prompt="a dog", num_maps_per_mask=4,
                               mask_encode_strength=0.5, num_inference_steps=20, guidance_scale=7.5,
                               generator=torch.Generator().manual_seed(11), output_type="np")
    assert [c.nfe for c in counters] == [1, 1] and sum(c.unet_rows for c in counters) == 16  # CFG-batched, 4 draws
    assert 0 < ours.mean() < 1
    agree = (ours[0, 0].numpy() == theirs[0]).mean()
    assert agree >= 0.99, agree  # identical up to float ties at the 0.5 threshold
