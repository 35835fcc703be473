"""The toy and digits experiments reach every edit through ``diffsamplers.recipes``: each wrapper gives bit-identical
results to the direct recipe call on one shared small ε-model, grid and seed."""
import numpy as np
import pytest
import torch

from diffsamplers import GaussianNoise, recipes
from toy import editing
from toy.digits import diffedit as d_diffedit
from toy.digits import drag as d_drag
from toy.digits import inpaint as d_inpaint
from toy.digits import translate as d_translate
from toy.digits.common import SIDE, as_image, as_rows
from toy.digits.schedules import ddpm_linear

SCHED = ddpm_linear()
GRID = SCHED.grid(12).tail(0.5)


def eps(x, t):
    """The shared model: exact ε of N(0.3, 0.5 I) on ``SCHED`` plus a small non-linear term; any state shape."""
    a, s = SCHED.alpha_sigma(t)
    return s * (x - 0.3 * a) / (0.5 * a * a + s * s) + 0.05 * torch.tanh(x)


MU_T = torch.full((SIDE * SIDE,), 0.3, dtype=torch.float64)
MU_T[50:100] = -0.8


def eps_target(x, t):
    """A second model (DiffEdit's target class): the mean differs from ``eps``'s on pixels 50..99."""
    a, s = SCHED.alpha_sigma(t)
    return s * (x - MU_T * a) / (0.5 * a * a + s * s) + 0.05 * torch.tanh(x)


def _data(n, d, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("sampler", ["sde", "ode"])
def test_toy_wrappers_equal_direct_recipes(sampler):
    x = _data(16, 2)
    got = editing.inpaint(eps, x, GRID, sampler, 5)
    want = recipes.inpaint(eps, x, torch.tensor([True, False]), GRID, sampler, GaussianNoise(5), start="noised",
                           fill=0.0).x
    assert torch.equal(got, want) and torch.equal(got[:, 0], x[:, 0])
    assert torch.equal(editing.sdedit(eps, x, GRID, sampler, 6), recipes.sdedit(eps, x, GRID, sampler, GaussianNoise(6)).x)
    xd = _data(6, 8, 1)
    got = editing.drag(eps, xd, np.full(6, 2), 2, GRID, sampler, 7)   # one source position: one recipe call
    want = recipes.drag(eps, xd, GRID, [(2,)], [(4,)], sampler=sampler, noise=GaussianNoise(7), r=1, alpha=1.1,
                        beta=0.3, step_size=2.0, preset="clean")
    assert len(want.ops) == 1 and torch.equal(got, want.x)


@pytest.mark.parametrize("sampler", ["sde", "ode"])
def test_digits_wrappers_equal_direct_recipes(sampler):
    x = _data(3, SIDE * SIDE, 2).clamp(-1, 1)
    known = torch.ones_like(x, dtype=torch.bool)
    known[:, 40:90] = False
    assert torch.equal(d_inpaint.inpaint(eps, GRID, x, known, sampler, 11),
                       recipes.inpaint(eps, x, known, GRID, sampler, GaussianNoise(11), start="noised", fill=0.0).x)
    assert torch.equal(d_translate.sdedit(eps, GRID, x, sampler, 12),
                       recipes.sdedit(eps, x, GRID, sampler, GaussianNoise(12)).x)
    full = SCHED.grid(12)
    mask = d_diffedit.diffedit_mask(eps, eps_target, x, full, torch.Generator().manual_seed(13))
    direct = recipes.diffedit_mask(eps, eps_target, x, full.tail(0.5), GaussianNoise(torch.Generator().manual_seed(13)),
                                   draws=10, channel_dims=())
    assert torch.equal(mask, direct) and mask.shape == x.shape and mask[:, 50:100].all() and mask.sum() < 80 * 3
    assert torch.equal(d_diffedit.diffedit(eps, eps_target, GRID, x, mask, sampler, 14),
                       recipes.diffedit(eps, eps_target, x, mask, GRID, sampler, GaussianNoise(14)).x)


@pytest.mark.parametrize("sampler", ["sde", "ode"])
def test_digits_drag_wrapper_equals_direct_recipe(sampler):
    x = _data(2, SIDE * SIDE, 3).clamp(-1, 1)
    handles, targets = [(6, 6), (8, 5)], [(8, 7), (5, 5)]
    editable = torch.zeros(2, SIDE, SIDE, dtype=torch.bool)
    editable[:, 2:12, 2:11] = True
    got = d_drag.drag(eps, GRID, x, handles, targets, as_rows(editable), sampler, 20)
    for i in range(2):
        res = recipes.drag(eps, as_image(x[i])[None, None], GRID, [handles[i]], [targets[i]], sampler=sampler,
                           noise=GaussianNoise(20 + i), mask=editable[i], r=1, alpha=1.1, beta=0.3, step_size=1.0,
                           preset="official")
        assert len(res.ops) >= 2   # 2.2 / 3 px at 1 px per operation
        assert torch.equal(got[i], as_rows(res.x[0, 0]))
    if sampler == "sde":   # Cycle-SDE replays the recorded chain exactly outside the editable box
        assert torch.allclose(got[~as_rows(editable)], x[~as_rows(editable)], atol=1e-10)
