"""Two-object scenes of the shapes drag test bed (issue 13): the exact pair mixture, the tasks whose right answer moves
one object and keeps the other, the measures (perfect on the right answer, bad on the unedited input and when the
other object moves), and the drag through the recipes."""
import math

import numpy as np
import pytest
import torch

from diffsamplers import GaussianNoise, recipes
from toy.shapes import (PairConfig, PairTask, TemplateBank, build_pairs, editable_box, exact_model, make_pair_tasks,
                        make_schedule, measure, nll_data_range)

SMALL = PairConfig(side=24, border=5)          # 14² lattice centres: a dense reference over all scenes is cheap


@pytest.fixture(scope="module")
def pairs():
    return build_pairs()


@pytest.fixture(scope="module")
def small():
    return build_pairs(SMALL)


def _dense_log_prob(p, x, alpha, sigma):
    """log p_t(x) as a sum over every scene, each rendered in full (float64)."""
    mix = p.mixture
    means = mix.means_of(mix.flat(mix.pairs[:, 0], mix.pairs[:, 1]))
    c = alpha * alpha * mix.iso_var + sigma * sigma
    d2 = (x * x).sum(-1, keepdim=True) - 2 * alpha * x @ means.T + alpha * alpha * (means * means).sum(-1)
    return torch.logsumexp(-d2 / (2 * c), -1) - 0.5 * mix.dim * math.log(2 * math.pi * c) - math.log(len(means))


def test_scenes_are_two_disjoint_objects(pairs, small):
    cfg = pairs.config
    n = len(cfg.centres()) ** 2
    assert 0.5 * n * n < len(pairs) < n * n                 # most pairs of lattice centres are ≥ gap px apart
    g = torch.Generator().manual_seed(0)
    x0, k = pairs.mixture.sample(32, g, return_components=True)
    scenes = pairs.images_of(k)
    assert scenes.min() >= -1 and scenes.max() <= 1          # disjoint supports: an exact rendering, never > 1
    # a scene holds one disc and one square: 2 objects' worth of foreground
    fg = (scenes + 1).sum(-1) / 2
    disc3, sq3 = math.pi * 3.5 ** 2, 49
    assert torch.allclose(fg, torch.full_like(fg, disc3 + sq3), rtol=0.02)
    i = pairs.find(("disc", 3, (10, 10)), ("square", 3, (10, 20)))
    assert i == pairs.find(("square", 3, (10, 20)), ("disc", 3, (10, 10)))
    with pytest.raises(KeyError):                            # boxes touching: not a data scene
        pairs.find(("disc", 3, (10, 10)), ("square", 3, (10, 16)))
    with pytest.raises(KeyError):
        pairs.find(("disc", 3, (10, 10)), ("disc", 3, (20, 20)))
    with pytest.raises(ValueError):
        PairConfig(kinds=("disc", "disc"))


@pytest.mark.parametrize("alpha,sigma", [(1.0, 0.0), (0.9995, 0.03), (0.4, 0.92), (0.07, 0.998)])
def test_pair_mixture_matches_dense_reference(small, alpha, sigma):
    """log p_t and ε of the bilinear closed form equal a dense sum over every scene (and autograd of it); at t = 0
    the bilinear form underflows and the exact fallback takes over."""
    mix = small.mixture
    x = mix.sample(3, torch.Generator().manual_seed(1), alpha=alpha, sigma=sigma)
    xr = x.clone().requires_grad_(True)
    ref = _dense_log_prob(small, xr, alpha, sigma)
    assert torch.allclose(mix.log_prob(x, alpha, sigma), ref.detach(), rtol=0, atol=1e-8)
    if sigma > 0:
        (grad,) = torch.autograd.grad(ref.sum(), xr)
        assert torch.allclose(mix.eps(x, alpha, sigma), -sigma * grad, rtol=0, atol=1e-9)


def test_pair_eps_model_on_images(pairs):
    sched = make_schedule("sd")
    a, s = sched.alpha_sigma(600)
    x = pairs.mixture.sample(2, torch.Generator().manual_seed(2), a, s).to(torch.float32)
    eps = exact_model(pairs, sched)(x.reshape(2, 1, 32, 32), torch.tensor(600))
    assert eps.shape == (2, 1, 32, 32) and eps.dtype == torch.float32
    assert torch.allclose(eps.reshape(2, -1).double(), pairs.mixture.eps(x.double(), a, s), atol=1e-5)


def test_pair_tasks_have_known_answers(pairs):
    tasks = make_pair_tasks(pairs, 6, 4, seed=0)
    assert tasks == make_pair_tasks(pairs, 6, 4, seed=0)
    assert make_pair_tasks(pairs, 3, 4, seed=0) == tasks[:6]              # fewer groups: a prefix
    cfg = pairs.config
    for t in tasks:
        assert isinstance(t, PairTask) and t.kind != t.other_kind
        d = t.displacement
        assert max(abs(d[0]), abs(d[1])) == 4 and (t.target[0] - t.handle[0], t.target[1] - t.handle[1]) == d
        # the right answer: the same scene with only the dragged object moved — itself a data scene
        assert t.answer_index == pairs.find((t.kind, t.size, t.answer_centre), (t.other_kind, t.other_size,
                                                                                 t.other_centre))
        assert t.source_index == pairs.find((t.kind, t.size, t.source_centre), (t.other_kind, t.other_size,
                                                                                 t.other_centre))
        # every scene along the path is a data scene, and the other object is near it
        for k in range(5):
            c = (t.source_centre[0] + d[0] * k // 4, t.source_centre[1] + d[1] * k // 4)
            pairs.find((t.kind, t.size, c), (t.other_kind, t.other_size, t.other_centre))
        lo = [min(t.source_centre[a], t.answer_centre[a]) - 3 for a in (0, 1)]
        hi = [max(t.source_centre[a], t.answer_centre[a]) + 3 for a in (0, 1)]
        gaps = [max(lo[a] - (t.other_centre[a] + 3), t.other_centre[a] - 3 - hi[a]) - 1 for a in (0, 1)]
        assert cfg.gap <= max(gaps) <= 3
        # the mask covers both objects, at source and at target
        m = editable_box(pairs, t, 3).flatten()
        both = (pairs.images_of([t.source_index])[0] > -1) | (pairs.images_of([t.answer_index])[0] > -1)
        assert bool(m[both].all())


def test_pair_answer_likely_and_measures_perfect_on_it(pairs):
    bank = TemplateBank(pairs)
    rng = nll_data_range(pairs, 512, 0)
    tasks = make_pair_tasks(pairs, 3, 4, seed=1)
    answers = pairs.images_of([t.answer_index for t in tasks])
    inputs = pairs.images_of([t.source_index for t in tasks])
    masks = torch.stack([editable_box(pairs, t, 3) for t in tasks]).reshape(len(tasks), -1)
    assert torch.all(-pairs.mixture.log_prob(answers) < rng["min"])      # more likely than every draw of p_0
    good = measure(pairs, bank, tasks, inputs, answers, masks, rng["max"])
    for k in ("position_error_px", "l2_to_answer", "outside_mask_change", "other_shift_px", "other_change"):
        assert np.all(good[k] == 0), k
    assert np.all(good["success_rate"] == 1) and np.all(good["outcome_moved"] == 1)
    assert np.allclose(good["drag_fraction"], 1)
    bad = measure(pairs, bank, tasks, inputs, inputs, masks, rng["max"])  # the unedited input
    dist = np.array([math.hypot(*t.displacement) for t in tasks])
    assert np.allclose(bad["position_error_px"], dist) and np.all(bad["success_rate"] == 0)
    assert np.all(bad["outcome_stayed"] == 1) and np.allclose(bad["drag_fraction"], 0)
    assert np.all(bad["other_shift_px"] == 0) and np.all(bad["l2_to_answer"] > 5)
    # the dragged object lands right but the other object went along: a data scene, still a failure
    moved_both = []
    for t in tasks:
        oc = (t.other_centre[0] + t.displacement[0], t.other_centre[1] + t.displacement[1])
        try:
            moved_both.append(pairs.find((t.kind, t.size, t.answer_centre), (t.other_kind, t.other_size, oc)))
        except KeyError:
            moved_both.append(None)
    rows = [i for i, k in enumerate(moved_both) if k is not None]
    assert rows
    sub = [tasks[i] for i in rows]
    both = measure(pairs, bank, sub, inputs[rows], pairs.images_of([moved_both[i] for i in rows]), masks[rows],
                   rng["max"])
    assert np.all(both["position_error_px"] == 0) and np.all(both["in_range"] == 1)
    assert np.allclose(both["other_shift_px"], dist[rows]) and np.all(both["other_change"] > 5)
    assert np.all(both["success_rate"] == 0) and np.all(both["outcome_other"] == 1)


def test_pair_drag_without_paste_returns_the_input(pairs):
    sched = make_schedule("sd")
    t = make_pair_tasks(pairs, 1, 4, seed=3)[0]
    x = pairs.as_image(pairs.images_of([t.source_index]))[:, None]
    res = recipes.drag(exact_model(pairs, sched, torch.float64), x, sched.grid(40).tail(0.6), [t.handle], [t.target],
                       sampler="sde", noise=GaussianNoise(0), mask=editable_box(pairs, t, 3), r=6, step_size=2.0,
                       paste=False, preset="official")
    assert len(res.ops) >= 2 and float((res.x - x).abs().max()) <= 1e-10
