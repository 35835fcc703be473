"""SDE-Drag / ODE-Drag core: copy-and-paste, drag-operation count, exact replay, mask reset, LoRA cache."""
from __future__ import annotations

import math

import pytest
import torch

from diffsamplers import num_drag_ops
from sdimage.drag import DragConfig, drag, drag_latents, drag_schedules, official_nfe
from sdimage.latents import mask_to_latent
from sdimage.errors import SdImageError


@pytest.fixture(scope="module")
def pipe(tiny_pipe):
    return tiny_pipe  # shared, read-only


@pytest.fixture()
def own_pipe():
    """A private tiny pipeline for tests that add adapters."""
    from sdimage.tiny import make_tiny_pipeline

    return make_tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def pipe64():
    from sdimage.tiny import make_tiny_pipeline

    return make_tiny_pipeline(seed=0).to(torch.float64)


# ------------------------------------------------------------------------------------------ schedules


@pytest.mark.parametrize("preset", ["official", "clean"])
def test_drag_schedules_and_official_count(preset):
    n = 120
    cfg = DragConfig(preset=preset)
    sch = drag_schedules(cfg, lora=True)
    g, s = sch["guidance"], sch["lora_scale"]
    if preset == "clean":  # exactly 3 at t0 (k = 0), 1 at the last step
        assert g(0, n) == 3.0 and g(n - 1, n) == 1.0 and g(60, n) == pytest.approx(1 + 2 * 59 / 119)
        assert s(0, n) == pytest.approx(0.5) and s(n - 1, n) == pytest.approx(1.0)
    else:  # the official ramp is one ramp step above: index j = K - k over length K - 1
        assert g(0, n) == pytest.approx(1 + 2 * 120 / 119) and g(n - 1, n) == pytest.approx(1 + 2 / 119)
        assert s(n - 1, n) == pytest.approx(1 - 0.5 * (1 - math.cos(math.pi / 119)) / 2)
    assert "lora_scale" not in drag_schedules(cfg, lora=False)
    assert official_nfe(DragConfig(), 3) == {"unet_calls": 360, "eps_evals": 720, "unet_rows": 1440,
                                              "lora_train_steps": 100}
    with pytest.raises(SdImageError):
        DragConfig(t0=0).validate()
    with pytest.raises(SdImageError):
        DragConfig(preset="mine").validate()
    with pytest.raises(SdImageError):
        DragConfig(alpha=float("nan")).validate()


# ------------------------------------------------------------------------------------------ the loop


class ToyEps:
    """A cheap nonlinear ε-model standing in for the UNet (loop logic checks)."""

    nfe = 0

    def __call__(self, x, t):
        self.nfe += 1
        return torch.tanh(0.7 * x + 1e-3 * float(t)) + 0.1 * x.roll(1, dims=-1)


def _grid(steps=8, t0=0.5):
    from diffsamplers import Grid

    ts = torch.arange(steps - 1, -1, -1) * (1000 // steps) + 1
    ac = torch.cumprod(1 - torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2, 0)
    return Grid.from_alphas_cumprod(ts, ac, float(ac[0])).tail(t0)


@pytest.mark.parametrize("sampler", ["sde", "ode"])
def test_loop_nfe_and_mask_with_toy_model(sampler):
    x0 = torch.randn(1, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grid = _grid()
    keep = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    keep[..., :, :9] = True
    model = ToyEps()
    cfg = DragConfig(step_size=2.0, r=2)
    res = drag_latents(model, x0, grid, [(2, 3)], [(7, 3)], keep, sampler, cfg)
    m = num_drag_ops([(2, 3)], [(7, 3)], 2.0)
    assert len(res.intermediates) == m == 3  # D = 5 -> 3 operations
    assert model.nfe == m * 2 * grid.num_steps  # record + replay, or inversion + sampling
    assert torch.equal(res.x[~keep.expand_as(x0)], x0[~keep.expand_as(x0)])
    assert not torch.allclose(res.x, x0)


def test_sde_loop_without_paste_is_exact_toy():
    x0 = torch.randn(1, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    res = drag_latents(ToyEps(), x0, _grid(), [(1, 1), (9, 3)], [(8, 8), (3, 12)], None, "sde",
                       DragConfig(paste=False))
    assert len(res.intermediates) == 5  # D = |(-6, 9)| = 10.8 -> 5 operations
    assert (res.x - x0).abs().max() < 1e-10


def _sd_model(pipe, prompt="a photo", guidance=3.0, steps=4, t0=0.5):
    from sdimage.model import encode_prompt, make_eps_model, make_grid

    cfg = DragConfig(steps=steps, t0=t0, guidance_max=guidance, preset="clean")
    grid = make_grid(pipe, steps, t0)
    cond, unc = encode_prompt(pipe, prompt)
    return make_eps_model(pipe, cond, unc), grid, cfg


def test_sde_drag_without_paste_returns_input_latent_float64(pipe64):
    model, grid, cfg = _sd_model(pipe64)
    cfg.paste = False
    x0 = torch.randn(1, 4, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    res = drag_latents(model, x0, grid, [(4, 4)], [(6, 5)], None, "sde", cfg, schedules=drag_schedules(cfg, False))
    assert model.nfe == 2 * grid.num_steps
    assert (res.x - x0).abs().max() < 1e-10


def test_outside_mask_equals_input_after_real_drag(pipe):
    model, grid, cfg = _sd_model(pipe)
    cfg.r = 2
    x0 = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(3))
    pmask = torch.zeros(64, 64)
    pmask[:, :40] = 1  # white (editable) left part of a 64x64 image
    keep = mask_to_latent(pmask, (32, 32), "area") > 0.5
    assert keep.shape == (1, 1, 32, 32) and int(keep.sum()) == 32 * 20
    res = drag_latents(model, x0, grid, [(5, 10)], [(7, 10)], keep, "sde", cfg, schedules=drag_schedules(cfg, False))
    outside = ~keep.expand_as(x0)
    assert torch.equal(res.x[outside], x0[outside])
    assert (res.x[~outside] - x0[~outside]).abs().max() > 1e-3


# ------------------------------------------------------------------------------------------ LoRA


def test_lora_trains_and_cache_is_reused(own_pipe, tmp_path, monkeypatch):
    from sdimage import lora as lora_mod
    from sdimage.model import encode_prompt

    img = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4)) * 2 - 1
    lat = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(5))
    cond, _ = encode_prompt(own_pipe, "a cat")
    x = torch.randn(1, 4, 32, 32)
    t = torch.tensor([500])
    with torch.no_grad():
        base = own_pipe.unet(x, t, encoder_hidden_states=cond.embeds).sample
    kw = dict(steps=2, rank=4, lr=1e-2, seed=0, cache_dir=tmp_path)
    info = lora_mod.ensure_lora(own_pipe, lat, img, "a cat", cond, **kw)
    assert info["cached"] is False and info["final_loss"] is not None
    assert "sdedrag" in own_pipe.unet.peft_config
    with torch.no_grad():
        tuned = own_pipe.unet(x, t, encoder_hidden_states=cond.embeds).sample
        half = own_pipe.unet(x, t, encoder_hidden_states=cond.embeds, cross_attention_kwargs={"scale": 0.5}).sample
    assert (tuned - base).abs().max() > 0
    assert (half - base).abs().max() < (tuned - base).abs().max()
    lora_mod.remove_lora(own_pipe)

    def boom(*a, **k):
        raise AssertionError("cached LoRA must not be retrained")

    monkeypatch.setattr(lora_mod, "train_lora", boom)
    info2 = lora_mod.ensure_lora(own_pipe, lat, img, "a cat", cond, **kw)
    assert info2["cached"] is True and info2["key"] == info["key"]
    with torch.no_grad():
        again = own_pipe.unet(x, t, encoder_hidden_states=cond.embeds).sample
    assert torch.equal(again, tuned)
    lora_mod.remove_lora(own_pipe)
    with torch.no_grad():
        assert torch.equal(own_pipe.unet(x, t, encoder_hidden_states=cond.embeds).sample, base)
    # another prompt is another cache entry
    key = lora_mod.lora_cache_key
    assert key(img, "a dog", {}, own_pipe) != key(img, "a cat", {}, own_pipe)


def test_drag_api_warns_on_empty_mask_and_keeps_image(pipe):
    import numpy as np

    from sdimage.latents import SdImageWarning, decode, encode, to_pil

    img = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(6)) * 2 - 1
    cfg = DragConfig(steps=2, t0=0.5, lora_steps=0)
    with pytest.warns(SdImageWarning, match="no editable"):
        res = drag(pipe, img, [(10, 10)], [(20, 12)], "x", mask=np.zeros((64, 64), bool), config=cfg)
    out, info = res.pil(), res.info
    assert info["mask"]["latent_editable_pixels"] == 0 and info["nfe"] == info["num_drag_ops"] * 2
    recon = to_pil(decode(pipe, encode(pipe, img)))  # nothing editable: the latent is kept exactly
    assert np.array_equal(np.asarray(out), np.asarray(recon))
    with pytest.raises(SdImageError, match="outside"):
        drag(pipe, img, [(10, 10)], [(64, 12)], "x", config=cfg)
    with pytest.raises(SdImageError, match="mask is 32x32"):
        drag(pipe, img, [(10, 10)], [(20, 12)], "x", mask=np.ones((32, 32)), config=cfg)


@pytest.mark.parametrize("preset", ["official", "clean"])
def test_drag_latents_is_the_recipe_bit_for_bit(preset):
    """sdimage's (x, y) wrapper adds nothing to diffsamplers.recipes.drag ((row, col) points, same noise)."""
    from diffsamplers import GaussianNoise, recipes

    x0 = torch.randn(1, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    keep = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    keep[..., 2:14, 1:15] = True
    cfg = DragConfig(step_size=2.0, r=3, preset=preset, seed=5)
    a = drag_latents(ToyEps(), x0, _grid(), [(3, 4), (12, 10)], [(8, 6), (10, 13)], keep, "sde", cfg)
    b = recipes.drag(ToyEps(), x0, _grid(), [(4, 3), (10, 12)], [(6, 8), (13, 10)], sampler="sde", mask=keep,
                     noise=GaussianNoise(torch.Generator().manual_seed(5)), preset=preset, r=3, step_size=2.0)
    assert torch.equal(a.x, b.x) and len(a.intermediates) == len(b.intermediates)
    assert [op.sources for op in a.ops] == [op.sources for op in b.ops]
    assert [op.targets for op in a.ops] == [op.targets for op in b.ops]


def test_lora_training_depends_only_on_its_seed():
    """PEFT initialises the adapter from torch's global generator; train_lora seeds it from ``seed`` (and restores
    the caller's state), so the adapter does not depend on what ran before."""
    from sdimage.lora import train_lora
    from sdimage.model import encode_prompt
    from sdimage.tiny import make_tiny_pipeline

    lat = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(5))
    weights = []
    for k in range(2):
        pipe = make_tiny_pipeline(seed=0)
        torch.randn(k + 3)  # a different global RNG state each time
        state = torch.random.get_rng_state()
        cond, _ = encode_prompt(pipe, "a cat", None)
        train_lora(pipe, lat, cond, steps=2, lr=1e-2, seed=7)
        assert torch.equal(torch.random.get_rng_state(), state)
        weights.append(torch.cat([p.detach().flatten() for n, p in pipe.unet.named_parameters() if "lora_" in n]))
    assert torch.equal(weights[0], weights[1])
