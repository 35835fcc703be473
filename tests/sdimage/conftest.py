"""Shared fixtures for the sdimage tests (the drag tests reuse ``tiny_model_dir`` and ``tiny_pipe``).

The tiny pipeline is created once per session, saved to a temporary folder in diffusers format and loaded back
with ``sdimage.loading.load_pipeline``.  Tests must not modify ``tiny_pipe`` (copy it, or build another one).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    # the CI/dev boxes are small and shared: one intra-op thread is much faster for the tiny model
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from sdimage.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-sd") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_inpaint_model_dir(tmp_path_factory):
    from sdimage.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-sd-inpaint") / "model", seed=0, inpaint=True)


@pytest.fixture(scope="session")
def tiny_pipe(tiny_model_dir):
    from sdimage.loading import load_pipeline

    return load_pipeline(str(tiny_model_dir))


@pytest.fixture(scope="session")
def tiny_image_path(tmp_path_factory):
    """A smooth 64×64 RGB test picture (PNG)."""
    from PIL import Image

    y, x = np.mgrid[0:64, 0:64] / 63.0
    arr = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], -1)
    p = tmp_path_factory.mktemp("img") / "image.png"
    Image.fromarray((arr * 255).astype(np.uint8)).save(p)
    return p


@pytest.fixture(scope="session")
def tiny_mask_path(tmp_path_factory):
    """A binary 64×64 mask with a white (edit) square in the middle."""
    from PIL import Image

    m = np.zeros((64, 64), np.uint8)
    m[16:48, 20:44] = 255
    p = tmp_path_factory.mktemp("mask") / "mask.png"
    Image.fromarray(m).save(p)
    return p
