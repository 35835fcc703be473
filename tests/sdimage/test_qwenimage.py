"""Qwen-Image, the family added as one module (``sdimage/backbones/qwenimage.py``): the tiny offline instance and its
in-memory tokenizer, inpainting equal to diffusers' ``QwenImageInpaintPipeline``, true CFG as diffusers applies it,
Cycle-SDE reconstruction in float64, and the GUI with both samplers.  Translate, every task, drag, DiffEdit with a
given mask, dragbench, LoRA and the CLI (``--preset fast`` included) run on it through the registry-parametrised
tests in ``test_backbones.py``."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import diffsamplers as ds
from sdimage import tasks
from sdimage.backbones import ARCHS, backbone
from sdimage.latents import encode, load_image, load_mask
from sdimage.model import EpsModel, encode_prompt, make_grid

ARCH = "qwenimage"


@pytest.fixture(scope="module")
def pipe():
    from sdimage.tiny import make_tiny_pipeline

    return make_tiny_pipeline(seed=0, arch=ARCH)


def test_registered_and_recognised(pipe):
    assert ARCH in ARCHS
    bb = backbone(pipe)
    assert bb.arch == ARCH and type(pipe).__name__ == "QwenImagePipeline"
    assert pipe.vae_scale_factor == 4 and bb.image_multiple == 8  # VAE factor × 2×2 packing
    c = pipe.vae.config
    assert c.z_dim == 16 and len(c.latents_mean) == len(c.latents_std) == 16 and len(set(c.latents_std)) > 1


def test_tokenizer_is_built_in_memory_and_round_trips(tmp_path):
    from transformers import AutoTokenizer

    from sdimage.backbones.qwenimage import make_qwen_tokenizer

    tok = make_qwen_tokenizer()
    text = "<|im_start|>user\na photo of a cat, ünïcode 猫<|im_end|>"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and tok.convert_tokens_to_ids("<|im_end|>") in ids
    assert tok.decode(ids) == text  # byte-level: any text survives
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert again(text)["input_ids"] == ids


def test_latents_are_normalised_per_channel_as_diffusers(pipe, tiny_image_path):
    """encode = (VAE mean − latents_mean) / latents_std on the frame axis, as the img2img pipeline's
    ``_encode_vae_image`` (with the posterior mode); decode inverts it."""
    image = load_image(tiny_image_path, multiple=8)
    ours = encode(pipe, image)
    ref_pipe = backbone(pipe).reference_pipeline("img2img")
    z = ref_pipe.vae.encode(image.unsqueeze(2)).latent_dist.mode()
    c = pipe.vae.config
    ref = (z - torch.tensor(c.latents_mean).view(1, 16, 1, 1, 1)) / torch.tensor(c.latents_std).view(1, 16, 1, 1, 1)
    torch.testing.assert_close(ours, ref[:, :, 0], atol=1e-5, rtol=1e-5)


def test_inpaint_ode_equals_diffusers_inpaint_pipeline(pipe, tiny_image_path, tiny_mask_path):
    """4-channel-style inpainting (re-noise the known region with the fixed first noise, blend after every step)
    with true CFG against the empty prompt equals ``QwenImageInpaintPipeline`` at strength 1, same noise."""
    bb = backbone(pipe)
    image = load_image(tiny_image_path, multiple=bb.image_multiple)
    mask = load_mask(tiny_mask_path, image)
    steps, seed, g = 6, 5, 4.0
    res = tasks.inpaint(pipe, image, mask, "a cat", sampler="ode", steps=steps, guidance=g, seed=seed)
    y0 = encode(pipe, image)
    hw = tuple(y0.shape[-2:])
    out = bb.reference_pipeline("inpaint")(
        prompt="a cat", image=y0, mask_image=mask, masked_image_latents=y0, strength=1.0, num_inference_steps=steps,
        generator=torch.Generator().manual_seed(seed), output_type="latent", **bb.reference_kwargs(hw, g)).images
    ref = bb.reference_latents(out, hw)
    assert res.info["arch"] == ARCH and res.info["nfe"] == steps and res.info["unet_rows"] == 2 * steps
    torch.testing.assert_close(res.latents, ref, atol=1e-4, rtol=1e-4)


def test_true_cfg_rescales_each_token_to_the_conditional_norm(pipe):
    """The guided velocity keeps, per 2×2 token, the conditional velocity's norm (diffusers' Qwen-Image rule)."""
    bb = backbone(pipe)
    g = torch.Generator().manual_seed(0)
    u, c = torch.randn(1, 16, 4, 4, generator=g), torch.randn(1, 16, 4, 4, generator=g)
    out = bb.combine(u, c, 3.0)
    tok = (lambda v: v.view(1, 16, 2, 2, 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(1, 4, 64))  # 2×2 tokens
    torch.testing.assert_close(tok(out).norm(dim=-1), tok(c).norm(dim=-1))
    plain = u + 3.0 * (c - u)
    cos = torch.nn.functional.cosine_similarity(tok(out), tok(plain), dim=-1)
    torch.testing.assert_close(cos, torch.ones_like(cos))  # same direction as plain CFG
    assert not torch.allclose(out, plain)


def test_cycle_sde_reconstructs_in_float64(pipe, tiny_image_path):
    """The whole model in float64: Cycle-SDE (t0 = 1, true CFG on) returns the encoded latent to ≤ 1e-8."""
    from sdimage.tiny import make_tiny_pipeline

    p64 = make_tiny_pipeline(seed=0, arch=ARCH).to(dtype=torch.float64)
    image = load_image(tiny_image_path, multiple=8).double()
    y0 = encode(p64, image)
    assert y0.dtype == torch.float64
    model = EpsModel(p64, *encode_prompt(p64, "a photo", ""), guidance=3.0)
    grid = make_grid(p64, 6, latent_hw=tuple(y0.shape[-2:]))
    rec = ds.recipes.reconstruct(model, y0, grid, "sde", ds.GaussianNoise(3))
    assert model.nfe == 2 * 6 and float((rec.x - y0).abs().max()) <= 1e-8


def test_gui_runs_both_samplers(pipe, tiny_image_path, tiny_mask_path, tmp_path):
    from sdimage import gui_handlers as H

    image = Image.open(tiny_image_path).convert("RGB")
    mask = Image.open(tiny_mask_path).convert("L")
    ws = H.Workspace(pipe, model=f"tiny-{ARCH}", out_dir=str(tmp_path / "out"), lora_cache=str(tmp_path / "lora"))
    assert ws.factor() == 8 and ws.default_guidance() == backbone(pipe).default_guidance
    out = H.run_drag(ws, image, mask, "16,32 -> 48,32", "p", "both", steps=5, t0=0.6, step_size=16, lora_steps=2)
    a = np.asarray(out.images["sde"], dtype=float)
    b = np.asarray(out.images["ode"], dtype=float)
    assert a.shape == b.shape == (64, 64, 3) and np.abs(a - b).mean() > 0.5
    assert out.metadata["runs"]["sde"]["arch"] == ARCH and out.metadata["runs"]["ode"]["lora"]["cached"] is True
    out = H.run_diffedit(ws, image, "a cat", "a dog", "both", mask=mask, steps=4)
    assert out.metadata["runs"]["sde"]["mask_source"] == "given" and set(out.images) == {"sde", "ode"}
