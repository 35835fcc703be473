"""One edit, three layers: the digits lab and Stable Diffusion's drag wrapper reach the same recipe, so on one
shared small ε-model, grid and seed they give bit-identical results (the toy/digits wrappers are checked against
the recipes themselves in tests/toy/test_recipe_wrappers.py, sdimage's in tests/sdimage/test_drag.py)."""
from __future__ import annotations

import pytest
import torch

from sdimage.drag import DragConfig, drag_latents
from toy.digits import drag as d_drag
from toy.digits.common import SIDE, as_image, as_rows
from toy.digits.schedules import ddpm_linear

SCHED = ddpm_linear()


def eps(x, t):
    """Exact ε of N(0.3, 0.5 I) plus a small non-linear term; any state shape."""
    a, s = SCHED.alpha_sigma(t)
    return s * (x - 0.3 * a) / (0.5 * a * a + s * s) + 0.05 * torch.tanh(x)


@pytest.mark.parametrize("sampler", ["sde", "ode"])
def test_digits_drag_equals_sdimage_drag_bit_for_bit(sampler):
    grid = SCHED.grid(12).tail(0.5)
    x = torch.randn(1, SIDE * SIDE, generator=torch.Generator().manual_seed(3), dtype=torch.float64).clamp(-1, 1)
    handle, target = (6, 6), (8, 8)  # (row, col)
    editable = torch.zeros(SIDE, SIDE, dtype=torch.bool)
    editable[2:13, 2:12] = True
    digits = d_drag.drag(eps, grid, x, [handle], [target], as_rows(editable)[None], sampler, 20)
    cfg = DragConfig(r=d_drag.HALF_SIZE, step_size=d_drag.STEP_SIZE, alpha=d_drag.ALPHA, beta=d_drag.BETA,
                     preset=d_drag.PRESET, seed=20)
    sd = drag_latents(eps, as_image(x[0])[None, None], grid, [handle[::-1]], [target[::-1]], editable[None, None],
                      sampler, cfg, generator=torch.Generator().manual_seed(20))
    assert len(sd.intermediates) == 3  # |(2, 2)| = 2.83 px at 1 px per operation
    assert torch.equal(digits[0], as_rows(sd.x[0, 0]))
