"""Smoke test: a Stable-Diffusion-1.5-shaped UNet (random weights, float32, CPU) runs one CFG sampler step."""
from __future__ import annotations

import pytest
import torch


@pytest.mark.slow
def test_sd15_shaped_unet_one_step():
    from diffsamplers import GaussianNoise, sample_ddim
    from sdimage.model import EpsModel, encode_prompt, make_grid
    from sdimage.backbones.sd import make_sd15_shaped_pipeline

    pipe = make_sd15_shaped_pipeline(seed=0, text_layers=1, full_vae=False)
    assert sum(p.numel() for p in pipe.unet.parameters()) > 800e6
    assert pipe.unet.config.cross_attention_dim == 768 and pipe.unet.config.block_out_channels == (320, 640, 1280, 1280)
    model = EpsModel(pipe, *encode_prompt(pipe, "a photo", ""), guidance=7.5)
    grid = make_grid(pipe, 2, t0=0.5)  # one step
    x = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    out = sample_ddim(model, x, grid, eta=1.0, noise=GaussianNoise(1))
    assert model.nfe == 1 and model.unet_rows == 2
    assert out.shape == x.shape and torch.isfinite(out).all()
