"""Task-level checks on the tiny model: Cycle-SDE exactness, DDIM inversion error, 9-channel inpainting, DiffEdit."""
from __future__ import annotations

import pytest
import torch

from sdimage import SdImageError, tasks
from sdimage.latents import encode, load_image, load_mask, mask_to_latent


@pytest.fixture(scope="module")
def image(tiny_image_path):
    return load_image(tiny_image_path, multiple=2)


def test_cycle_sde_reconstruction_float32(tiny_pipe, image):
    info = tasks.reconstruct(tiny_pipe, image, sampler="sde", steps=10, guidance=3.0, prompt="a cat").info
    assert info["latent_max_abs_error"] <= 1e-4
    assert info["nfe"] == 20


def test_cycle_sde_reconstruction_float64(image):
    from sdimage.tiny import make_tiny_pipeline

    pipe = make_tiny_pipeline(seed=0).to(dtype=torch.float64)
    info = tasks.reconstruct(pipe, image.double(), sampler="sde", steps=6, t0=0.8).info
    assert info["state_dtype"] == "torch.float64" and info["unet_dtype"] == "torch.float64"
    assert info["latent_max_abs_error"] <= 1e-10


def test_ddim_inversion_error_reported_and_decreasing(tiny_pipe, image):
    errs = [tasks.reconstruct(tiny_pipe, image, sampler="ode", steps=n, t0=0.5).info["latent_rmse"]
            for n in (4, 8, 16)]
    assert errs[0] > errs[1] > errs[2] > 0


def test_inpaint_9ch_and_solvers(tiny_inpaint_model_dir, image, tiny_mask_path):
    from sdimage.loading import load_pipeline

    pipe = load_pipeline(str(tiny_inpaint_model_dir))
    mask = load_mask(tiny_mask_path, image)
    outs = {}
    for sampler, solver in (("ode", "dpmpp"), ("sde", "dpmpp"), ("sde", "ddim")):
        res = tasks.inpaint(pipe, image, mask, "a cat", sampler=sampler, solver=solver, order=2, steps=3)
        out, info = res.image, res.info
        assert info["unet_kind"].startswith("9-channel") and info["nfe"] == 3
        assert out.shape == image.shape and torch.isfinite(out).all()
        outs[(sampler, solver)] = res.latents
    assert not torch.allclose(outs[("ode", "dpmpp")], outs[("sde", "dpmpp")])


def test_inpaint_sde_keeps_known_region_and_empty_mask_errors(tiny_pipe, image, tiny_mask_path):
    mask = load_mask(tiny_mask_path, image)
    res = tasks.inpaint(tiny_pipe, image, mask, "", sampler="sde", solver="dpmpp", order=1, steps=3, renoise="fresh")
    y0 = encode(tiny_pipe, image)
    m = mask_to_latent(mask, y0.shape[-2:], "nearest")
    assert torch.equal(res.mask, m)
    torch.testing.assert_close(res.latents * (1 - m), y0 * (1 - m))
    with pytest.raises(SdImageError, match="empty"):
        tasks.inpaint(tiny_pipe, image, torch.zeros_like(mask), "", steps=2)


@pytest.mark.parametrize("preset", ["official", "clean"])
@pytest.mark.parametrize("sampler", ["ode", "sde"])
def test_diffedit_keeps_unmasked_region(tiny_pipe, image, sampler, preset):
    res = tasks.diffedit(tiny_pipe, image, "a cat", "a dog", t0=0.5, sampler=sampler, steps=6, mask_draws=2,
                         preset=preset)
    m, info = res.mask, res.info
    assert 0 < info["mask_ratio"] < 1
    lat, y0 = res.latents, encode(tiny_pipe, image)
    if (preset, sampler) == ("official", "ode"):  # diffusers' DiffEdit: reset one level noisier, ends 1 step away
        assert info["reset_lag"] == 1 and 0 < float(((lat - y0) * (1 - m)).abs().max()) < 0.5
    else:  # unmasked region: the reference trajectory's clean end = the input latent
        torch.testing.assert_close(lat * (1 - m), y0 * (1 - m))
    assert info["nfe"] == 2 + 2 * 3  # mask: source and target model once each; then 3 encode + 3 decode steps
    assert info["target_negative_prompt"] == ("" if (preset, sampler) == ("official", "sde") else "a cat")
    assert info["encode_guidance"] == (7.5 if preset == "official" else 1.0)


def test_translate_eta_between(tiny_pipe, image):
    a = tasks.translate(tiny_pipe, image, "a dog", t0=0.5, eta=0.0, steps=4, seed=1).latents
    b = tasks.translate(tiny_pipe, image, "a dog", t0=0.5, sampler="ode", steps=4, seed=1).latents
    c = tasks.translate(tiny_pipe, image, "a dog", t0=0.5, eta=0.5, steps=4, seed=1).latents
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    with pytest.raises(SdImageError, match="eta"):
        tasks.translate(tiny_pipe, image, "a dog", eta=2.0, steps=4)
