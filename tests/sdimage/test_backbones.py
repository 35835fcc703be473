"""Every registered family but the first (SD 1.x/2.x, which test_equivalence / test_tasks cover) through its
backbone adapter: the same samplers and recipes equal diffusers' own pipelines on tiny random models (same inputs,
same initial noise), Cycle-SDE reconstructs exactly, every task runs with both samplers, and the loading code
refuses other families with one clear line.  The families are read from the registry, so a new family module is
tested here without editing this file."""
from __future__ import annotations

import json
import math

import pytest
import torch

import diffsamplers as ds
from sdimage import tasks
from sdimage.backbones import ARCHS as ALL_ARCHS
from sdimage.backbones import SUPPORTED, backbone, families
from sdimage.errors import SdImageError
from sdimage.latents import encode, load_image, load_mask
from sdimage.model import EpsModel, encode_prompt, make_grid

ARCHS = list(ALL_ARCHS[1:])


@pytest.fixture(scope="module", params=ARCHS)
def arch_pipe(request, tmp_path_factory):
    from sdimage.loading import load_pipeline
    from sdimage.tiny import save_tiny_model

    d = save_tiny_model(tmp_path_factory.mktemp(f"tiny-{request.param}") / "model", seed=0, arch=request.param)
    pipe = load_pipeline(str(d))
    assert backbone(pipe).arch == request.param
    return pipe


def _image(tiny_image_path, pipe):
    return load_image(tiny_image_path, multiple=backbone(pipe).image_multiple)


def _img2img_reference(pipe, y0, prompt, strength, steps, guidance, seed):
    """diffusers' own img2img pipeline of the family (the adapter names it: ``reference_pipeline``)."""
    bb = backbone(pipe)
    hw = tuple(y0.shape[-2:])
    ref = bb.reference_pipeline("img2img")
    out = ref(prompt=prompt, image=y0, strength=strength, num_inference_steps=steps,
              generator=torch.Generator().manual_seed(seed), output_type="latent",
              **bb.reference_kwargs(hw, guidance)).images
    return bb.reference_latents(out, hw)


def test_translate_ode_equals_diffusers_img2img(arch_pipe, tiny_image_path):
    pipe = arch_pipe
    image = _image(tiny_image_path, pipe)
    steps, t0, seed, g = 10, 0.5, 7, 3.0
    res = tasks.translate(pipe, image, "a red square", t0=t0, sampler="ode", steps=steps, guidance=g, seed=seed)
    ref = _img2img_reference(pipe, encode(pipe, image), "a red square", t0, steps, g, seed)
    assert res.info["arch"] == backbone(pipe).arch and res.info["nfe"] == int(steps * t0)
    torch.testing.assert_close(res.latents, ref, atol=1e-4, rtol=1e-4)


def test_stochastic_member_equals_diffusers_scheduler(arch_pipe):
    """Flows: η = ∞ (x_s = α_s x̂_0 + σ_s w) on the real transformer equals
    FlowMatchEulerDiscreteScheduler(stochastic_sampling=True); SDXL (VP): η = 1 equals DDIMScheduler(eta=1).
    Same generator, so the same draws."""
    from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

    pipe = arch_pipe
    bb = backbone(pipe)
    z = pipe.vae.config.get("latent_channels") or pipe.vae.config.get("z_dim")
    lat = torch.randn(1, z, 16, 16, generator=torch.Generator().manual_seed(1))
    model = EpsModel(pipe, *encode_prompt(pipe, "a cat", ""), guidance=2.0)
    grid = make_grid(pipe, 6, latent_hw=(16, 16))
    x, gen = lat.clone(), torch.Generator().manual_seed(5)
    if bb.flow:
        sched = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, stochastic_sampling=True)
        if sched.config.use_dynamic_shifting:  # as FluxPipeline sets them: linspace sigmas, mu from the packed
            # sequence length of the 16×16 latent (8×8 tokens of 2×2)
            import numpy as np
            from diffusers.pipelines.flux.pipeline_flux import calculate_shift

            c = sched.config
            mu = calculate_shift(8 * 8, c.base_image_seq_len, c.max_image_seq_len, c.base_shift, c.max_shift)
            sched.set_timesteps(sigmas=np.linspace(1.0, 1 / 6, 6), mu=mu)
        else:  # as StableDiffusion3Pipeline: the scheduler's own spacing and fixed shift
            sched.set_timesteps(6)
        torch.testing.assert_close(grid.sigmas.float(), sched.sigmas.float())
        for t in sched.timesteps:
            p = model(x, t)
            x = sched.step(p.eps - p.x0, t, x, generator=gen).prev_sample  # the velocity v = ε̂ − x̂_0
        eta = math.inf
    else:
        sched = DDIMScheduler.from_config(pipe.scheduler.config)
        sched.set_timesteps(6)
        for t in sched.timesteps:
            x = sched.step(model(x, t), t, x, eta=1.0, generator=gen).prev_sample
        eta = 1.0
    ours = ds.sample_ddim(model, lat, grid, eta=eta, noise=ds.GaussianNoise(torch.Generator().manual_seed(5)))
    torch.testing.assert_close(ours, x, atol=1e-4, rtol=1e-4)


def test_cycle_sde_reconstructs_float64(arch_pipe, tiny_image_path):
    pipe = arch_pipe
    image = _image(tiny_image_path, pipe)
    y0 = encode(pipe, image).double()
    model = EpsModel(pipe, *encode_prompt(pipe, "a photo", ""), guidance=3.0)
    grid = make_grid(pipe, 8, latent_hw=tuple(y0.shape[-2:]))  # t0 = 1: from pure noise (σ = 1 for flows)
    rec = ds.recipes.reconstruct(model, y0, grid, "sde", ds.GaussianNoise(3))
    # the model runs in float32 but the sampler state is float64: replay uses the same ε, so the error is round-off
    assert float((rec.x - y0).abs().max()) <= 1e-10


@pytest.mark.parametrize("sampler", ["ode", "sde"])
def test_every_task_runs(arch_pipe, tiny_image_path, tiny_mask_path, sampler):
    pipe = arch_pipe
    image = _image(tiny_image_path, pipe)
    mask = load_mask(tiny_mask_path, image)
    kw = dict(sampler=sampler, steps=4, seed=1)
    outs = [tasks.translate(pipe, image, "a dog", t0=0.5, **kw),
            tasks.inpaint(pipe, image, mask, "a dog", **kw),
            tasks.diffedit(pipe, image, "a cat", "a dog", t0=0.5, mask=mask, sampler=sampler, steps=4, seed=1),
            tasks.reconstruct(pipe, image, sampler=sampler, steps=4)]
    for r in outs:
        assert r.image.shape == image.shape and torch.isfinite(r.image).all()
        assert r.info["arch"] == backbone(pipe).arch
        json.dumps(r.info)


@pytest.mark.parametrize("sampler", ["ode", "sde"])
def test_drag_runs_and_paste_off_returns_input(arch_pipe, sampler):
    from sdimage.drag import DragConfig, drag, drag_grids, drag_latents

    pipe = arch_pipe
    m = backbone(pipe).image_multiple
    img = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4)) * 2 - 1
    cfg = DragConfig(steps=10, t0=0.6, lora_steps=2, preset="official")
    res = drag(pipe, img, [(20, 20)], [(28, 24)], "a photo", sampler=sampler, config=cfg)
    out, info = res.pil(), res.info
    assert out.size == (64, 64) and info["arch"] == backbone(pipe).arch and info["num_drag_ops"] >= 1
    assert 64 % m == 0
    # paste off: the drag is the encode/decode round trip, exact for Cycle-SDE
    y0 = encode(pipe, img).double()
    model = EpsModel(pipe, *encode_prompt(pipe, "a photo", ""), guidance=1.0)
    off = DragConfig(steps=10, t0=0.6, preset="clean")
    off.paste = False
    grid, _ = drag_grids(pipe, off, tuple(y0.shape[-2:]))
    if sampler == "sde":
        res = drag_latents(model, y0, grid, [(4, 4)], [(6, 5)], None, "sde", off,
                           generator=torch.Generator().manual_seed(0))
        assert model.nfe == 2 * grid.num_steps
        assert float((res.x - y0).abs().max()) <= 1e-10


def test_lora_trains_on_the_denoiser(arch_pipe, tmp_path):
    from sdimage.lora import ensure_lora, remove_lora

    pipe = arch_pipe
    img = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4)) * 2 - 1
    lat = encode(pipe, img)
    cond, _ = encode_prompt(pipe, "a cat", None)
    model = EpsModel(pipe, cond)
    x = torch.randn_like(lat)
    t = make_grid(pipe, 10, latent_hw=tuple(lat.shape[-2:])).timesteps[3]
    base = ds.as_eps(model(x, t))
    info = ensure_lora(pipe, lat, img, "a cat", cond, steps=2, lr=1e-2, cache_dir=tmp_path)
    tuned = ds.as_eps(model(x, t))
    assert info["cached"] is False and float((tuned - base).abs().max()) > 0
    remove_lora(pipe)
    torch.testing.assert_close(ds.as_eps(model(x, t)), base, rtol=0, atol=0)
    again = ensure_lora(pipe, lat, img, "a cat", cond, steps=2, lr=1e-2, cache_dir=tmp_path)
    assert again["cached"] is True
    remove_lora(pipe)


def test_unsupported_family_is_one_line(tmp_path):
    from sdimage.loading import load_pipeline

    d = tmp_path / "m"
    d.mkdir()
    (d / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyV22Pipeline"}))
    with pytest.raises(SdImageError) as err:
        load_pipeline(str(d))
    msg = str(err.value)
    assert "KandinskyV22Pipeline" in msg and f"supported families: {SUPPORTED}" in msg
    assert "\n" not in msg and all(c.label in msg for c in families())


def test_image_multiple_is_vae_factor_times_token_side(arch_pipe):
    """A UNet needs sides divisible by the VAE factor; a transformer by the VAE factor × the latent pixels per
    token side: 2 where it reads 2×2-packed tokens (in_channels = 4 × latent channels), else its patch size.  All
    read from the diffusers configs, not from the adapter."""
    pipe = arch_pipe
    bb = backbone(pipe)
    c = bb.denoiser.config
    z = pipe.vae.config.get("latent_channels") or pipe.vae.config.get("z_dim")
    if not bb.flow:
        assert bb.image_multiple == pipe.vae_scale_factor
    else:
        side = int(round((c.in_channels / z) ** 0.5)) if c.in_channels > z else int(c.patch_size)
        assert bb.image_multiple == pipe.vae_scale_factor * side


def test_sdxl_4ch_inpaint_ode_equals_diffusers(tiny_image_path, tiny_mask_path):
    from diffusers import DDIMScheduler, StableDiffusionXLInpaintPipeline

    from sdimage.tiny import make_tiny_pipeline

    pipe = make_tiny_pipeline(seed=0, arch="sdxl")
    image = load_image(tiny_image_path, multiple=2)
    mask = load_mask(tiny_mask_path, image)
    steps, seed, g = 8, 5, 4.0
    res = tasks.inpaint(pipe, image, mask, "a cat", sampler="ode", steps=steps, guidance=g, seed=seed)
    y0 = encode(pipe, image)
    ref = StableDiffusionXLInpaintPipeline(**{**pipe.components,
                                              "scheduler": DDIMScheduler.from_config(pipe.scheduler.config)},
                                           add_watermarker=False)
    ref.set_progress_bar_config(disable=True)
    # latents in place of the image, strength 1 (diffusers' default is 0.9999, one step fewer, from a noised image)
    out = ref(prompt="a cat", image=y0, mask_image=mask, masked_image_latents=y0, height=64, width=64, strength=1.0,
              num_inference_steps=steps, guidance_scale=g, generator=torch.Generator().manual_seed(seed),
              output_type="latent").images
    torch.testing.assert_close(res.latents, out, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_cli_commands_accept_every_family(arch, tmp_path, tiny_image_path, tiny_mask_path, capsys):
    from sdimage.cli import main

    d = tmp_path / arch
    assert main(["make-tiny-model", str(d), "--arch", arch]) == 0
    runs = [["translate", "--prompt", "a dog"], ["inpaint", "--prompt", "a dog", "--mask", str(tiny_mask_path)],
            ["reconstruct"], ["diffedit", "--source-prompt", "a cat", "--target-prompt", "a dog", "--mask",
                              str(tiny_mask_path)],
            ["drag", "--source", "20,20", "--target", "28,24", "--prompt", "a cat", "--lora-steps", "0"]]
    for k, r in enumerate(runs):
        out = tmp_path / f"o{k}.png"
        argv = [r[0], "--model", str(d), "--image", str(tiny_image_path), *r[1:], "--steps", "4", "--no-progress",
                "--sampler", "sde" if k % 2 else "ode", "--out", str(out)]
        assert main(argv) == 0, capsys.readouterr().err
        meta = json.loads(out.with_suffix(".json").read_text())
        assert meta["arch"] == arch or meta.get("info", {}).get("arch") == arch


def test_image_size_not_divisible_is_resized_or_refused(tmp_path, capsys):
    """FLUX packs 2×2 latents: sides must be multiples of VAE factor × 2 (16 for FLUX.1, 4 for the tiny model);
    other sizes are resized down with a warning, or refused with --strict-size."""
    from PIL import Image

    from sdimage.cli import main

    d = tmp_path / "flux"
    assert main(["make-tiny-model", str(d), "--arch", "flux"]) == 0
    img = tmp_path / "odd.png"
    Image.new("RGB", (66, 70), (120, 30, 200)).save(img)
    out = tmp_path / "o.png"
    base = ["translate", "--model", str(d), "--image", str(img), "--prompt", "x", "--steps", "2", "--no-progress"]
    assert main([*base, "--out", str(out)]) == 0
    assert Image.open(out).size == (64, 68)
    capsys.readouterr()
    assert main([*base, "--strict-size", "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not divisible by" in err and "4" in err
    assert not (tmp_path / "p.png").exists()


def test_dragbench_runs_on_every_family(arch_pipe, tmp_path):
    import numpy as np
    from PIL import Image

    from sdimage.drag import DragConfig
    from sdimage.dragbench import DragSample, run_dragbench, write_sample

    rng = np.random.default_rng(3)
    mask = np.zeros((64, 64), bool)
    mask[8:56, 4:60] = True
    sample = DragSample(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "a photo of a cat",
                        [(10, 20)], [(30, 22)], mask)
    root = tmp_path / "bench"
    write_sample(sample, root / "a", "sde-drag")
    cfg = DragConfig(steps=4, t0=0.5, lora_steps=0, step_size=20.0)
    summary = run_dragbench(arch_pipe, root, tmp_path / "out", sampler="sde", config=cfg, progress=False)
    assert summary["ran"] == 1
    meta = json.loads((tmp_path / "out" / "a.json").read_text())
    assert meta["arch"] == backbone(arch_pipe).arch


def test_fast_solver_record_replay_exact_on_every_family(arch_pipe, tiny_image_path):
    """SDE-DPM-Solver++ 2M record and replay (the fast preset's SDE) returns the input on VP and flow grids."""
    pipe = arch_pipe
    image = _image(tiny_image_path, pipe)
    y0 = encode(pipe, image).double()
    model = EpsModel(pipe, *encode_prompt(pipe, "a photo", ""), guidance=3.0)
    grid = make_grid(pipe, 8, 0.6, latent_hw=tuple(y0.shape[-2:]))
    rec = ds.recipes.reconstruct(model, y0, grid, "sde", ds.GaussianNoise(3), solver="dpmpp", order=2)
    assert float((rec.x - y0).abs().max()) <= 1e-10


@pytest.mark.parametrize("sampler", ["ode", "sde"])
def test_fast_preset_drag_on_every_family(arch_pipe, sampler):
    from diffsamplers.presets import preset_defaults

    from sdimage.drag import DragConfig, drag

    pipe = arch_pipe
    img = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4)) * 2 - 1
    f = preset_defaults("fast")
    cfg = DragConfig(preset="fast", steps=10, t0=0.6)  # the fast solver, step size and LoRA; a shorter grid
    res = drag(pipe, img, [(16, 16)], [(40, 28)], "a photo", sampler=sampler, config=cfg)
    out, info = res.pil(), res.info
    assert out.size == (64, 64) and info["solver"] == f.solver and info["preset"] == "fast"
    assert info["lora"] is None if f.lora_steps == 0 else info["lora"] is not None
    k = int(0.6 * 10)
    assert info["nfe"] == 2 * k * info["num_drag_ops"]
    assert info["official_defaults_nfe"]["eps_evals"] == 2 * 120 * info["official_defaults_nfe"]["num_drag_ops"]


@pytest.mark.parametrize("arch", ARCHS)
def test_cli_preset_fast_on_every_family(arch, tmp_path, tiny_image_path, tiny_mask_path, capsys):
    """``--preset fast`` in every entry point that has it, on every family: the fast solver is what ran."""
    from diffsamplers.presets import preset_defaults

    from sdimage.cli import main

    f = preset_defaults("fast")
    d = tmp_path / arch
    assert main(["make-tiny-model", str(d), "--arch", arch]) == 0
    runs = [["translate", "--prompt", "a dog"], ["reconstruct"],
            ["diffedit", "--source-prompt", "a cat", "--target-prompt", "a dog", "--mask", str(tiny_mask_path)],
            ["drag", "--source", "20,20", "--target", "28,24", "--prompt", "a cat"]]
    for k, r in enumerate(runs):
        out = tmp_path / f"o{k}.png"
        argv = [r[0], "--model", str(d), "--image", str(tiny_image_path), *r[1:], "--preset", "fast", "--steps", "5",
                "--no-progress", "--sampler", "sde" if k % 2 else "ode", "--out", str(out)]
        assert main(argv) == 0, capsys.readouterr().err
        meta = json.loads(out.with_suffix(".json").read_text())
        assert meta["preset"] == "fast" and meta["solver"] == f.solver, (r[0], meta.get("solver"))
        assert meta["steps"] == 5 if r[0] != "drag" else meta["config"]["steps"] == 5


def test_pack2x2_equals_diffusers_packing():
    """The 2×2 packing is written here (diffusers' is a private helper) and equals FluxPipeline's both ways."""
    from diffusers import FluxPipeline

    from sdimage.backbones._flow import pack2x2, unpack2x2

    x = torch.randn(2, 16, 12, 8, generator=torch.Generator().manual_seed(0))
    z = pack2x2(x)
    assert torch.equal(z, FluxPipeline._pack_latents(x, 2, 16, 12, 8))
    assert torch.equal(unpack2x2(z, 12, 8), FluxPipeline._unpack_latents(z, 12 * 8, 8 * 8, 8))
    assert torch.equal(unpack2x2(z, 12, 8), x)
